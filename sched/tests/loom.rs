//! The token protocol under `loom`, which explores every interleaving of the threads (up
//! to a preemption bound) rather than a random sample of them.
//!
//! The model is `tests/model/mod.rs`, the one `tests/shuttle.rs` samples, with `loom`'s
//! primitives, cut down until loom can enumerate it: two units, one that reaches a point
//! and exits, one that reaches a point, sleeps, and dies holding the token, then is
//! restarted and dies again before it ever takes the token. In every interleaving: no unit
//! runs while another holds the token, the supervisor loop ends (loom reports a deadlock
//! otherwise), a unit that dies holding the token releases it, one that dies waiting is
//! found out at its grant, each unit's events are exactly its script's, and the trace of a
//! scheduler seed is the same in every interleaving.
//!
//! Run it in release, with its own target directory (the cfg rebuilds every dependency):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/target-loom cargo test -p kanban-sched
//! --release --test loom`. `LOOM_MAX_PREEMPTIONS` overrides the default bound below; on a
//! failure, `LOOM_CHECKPOINT_FILE` and `LOOM_LOG` replay and explain the interleaving (see
//! `loom::model::Builder`). A deadlock prints `deadlock; threads = [...]` and then aborts
//! the test process (loom's own `Arc`s panic while the blocked threads unwind).

#![cfg(loom)]

mod model;

use std::sync::{Arc, Mutex};

use kanban_sched::Strategy;
use model::{End, Plan, Script, Trace, run};

/// Preemptions per interleaving, unless `LOOM_MAX_PREEMPTIONS` says otherwise. About 17,000
/// interleavings per test and a few seconds in release; 5 takes about 25 s, and no bound
/// does not finish in 10 minutes.
const PREEMPTION_BOUND: usize = 4;

fn plans() -> Vec<Plan> {
    vec![
        Plan {
            incarnations: vec![Script {
                sleeps: vec![0],
                end: End::Exit,
            }],
            restart_delay_us: 0,
        },
        // A point with a sleep, then death holding the token; the restart dies before its
        // first grant.
        Plan {
            incarnations: vec![
                Script {
                    sleeps: vec![5],
                    end: End::DiesRunning(1),
                },
                Script {
                    sleeps: vec![],
                    end: End::DiesWaiting(0),
                },
            ],
            restart_delay_us: 3,
        },
    ]
}

/// Explores every interleaving of one run, and checks they all give one trace.
fn explore(strategy: Strategy, seed: u64) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTION_BOUND);
    }
    let seen: Arc<Mutex<(usize, Option<Trace>)>> = Arc::default();
    let first = seen.clone();
    builder.check(move || {
        let trace = run(&plans(), seed, strategy, 1);
        let (runs, first) = &mut *seen.lock().unwrap();
        *runs += 1;
        match first {
            None => *first = Some(trace),
            Some(first) => assert_eq!(first, &trace, "the trace depends on the interleaving"),
        }
    });
    let (runs, trace) = &*first.lock().unwrap();
    println!("{strategy:?}: {runs} interleavings, each gave {trace:?}");
    assert!(*runs > 1, "loom explored a single interleaving");
}

#[test]
fn random_walk() {
    explore(Strategy::RandomWalk, 1);
}

#[test]
fn pct() {
    explore(
        Strategy::Pct {
            depth: 2,
            horizon: 4,
        },
        9,
    );
}
