//! The token protocol under `shuttle`'s randomised thread schedules.
//!
//! In deterministic mode the supervisor runs [`kanban_sched::step`] over a socket per
//! worker process; here the workers are `shuttle` threads and the sockets are mailboxes
//! (`tests/model/mod.rs`), and shuttle chooses how the threads interleave. Each test runs
//! four units (one that dies holding the token and is restarted, one killed while it sleeps
//! at a point, two that sleep and exit) under many thread schedules, and checks what the
//! harness relies on:
//!
//! - one runner at a time: a unit that starts running while another holds the token fails
//!   the run;
//! - no lost wake-up: the supervisor loop ends, otherwise shuttle reports a deadlock;
//! - a unit that dies holding the token releases it, one that dies waiting for it is found
//!   out at its next grant, and restarting a dead unit (`Scheduler::wait_until` on the
//!   absent unit) starts a new incarnation;
//! - a sleeping unit is not granted the token before its logical wake-up time;
//! - every unit ran all its points, and the scheduler took one step per event;
//! - determinism: for a given scheduler seed the `(unit, event)` trace is the same under
//!   every thread schedule, and when a schedule is replayed (shuttle's
//!   `check_uncontrolled_nondeterminism` runs each schedule twice).
//!
//! The scheduler seed of a run is drawn from shuttle's own random source, so a schedule
//! fixes it too. A failure prints `failing schedule:` and the schedule, a quoted hex string
//! that may span lines (whitespace in it is ignored); replay it, deterministically, with
//! `REPLAY_SCHEDULE='<schedule>' REPLAY_STRATEGY=random|pct cargo test -p kanban-sched
//! --test shuttle replay -- --ignored` (the test below calls `shuttle::replay`).

#![cfg(not(loom))]

mod model;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use kanban_sched::Strategy;
use model::{End, Plan, Script, Trace, run};
use shuttle::rand::{Rng, thread_rng};

/// Scheduler seeds a run draws from.
const SEEDS: u64 = 4;
/// Logical time per step.
const QUANTUM_US: u64 = 10;

const PCT: Strategy = Strategy::Pct {
    depth: 3,
    horizon: 20,
};

fn script(sleeps: &[u64], end: End) -> Script {
    Script {
        sleeps: sleeps.to_vec(),
        end,
    }
}

fn plans() -> Vec<Plan> {
    let once = |s: Script| Plan {
        incarnations: vec![s],
        restart_delay_us: 0,
    };
    vec![
        once(script(&[0, 0, 0], End::Exit)),
        // Killed while it sleeps at its second point.
        once(script(&[0, 100, 0], End::DiesWaiting(2))),
        // Dies holding the token after one point; restarted 1 ms later.
        Plan {
            incarnations: vec![
                script(&[500, 0], End::DiesRunning(1)),
                script(&[0, 0], End::Exit),
            ],
            restart_delay_us: 1_000,
        },
        once(script(&[0, 2_000, 0, 0], End::Exit)),
    ]
}

/// Traces seen so far, by scheduler seed, across the iterations of one test.
type Seen = Arc<Mutex<HashMap<u64, Trace>>>;

/// One shuttle iteration: a run with a seed drawn by shuttle, whose trace must equal every
/// earlier trace of the same seed.
fn scenario(strategy: Strategy, seen: Seen) -> impl Fn() + Send + Sync + 'static {
    move || {
        let seed = thread_rng().gen_range(0..SEEDS);
        let trace = run(&plans(), seed, strategy, QUANTUM_US);
        match seen.lock().unwrap().entry(seed) {
            Entry::Vacant(v) => {
                v.insert(trace);
            }
            Entry::Occupied(o) => assert_eq!(
                o.get(),
                &trace,
                "seed {seed}: the trace depends on the thread schedule"
            ),
        }
    }
}

/// Runs `check` on a fresh scenario, then checks the seeds gave different traces (else the
/// determinism check above proves nothing).
fn explore(strategy: Strategy, check: impl FnOnce(Box<dyn Fn() + Send + Sync>)) {
    let seen = Seen::default();
    check(Box::new(scenario(strategy, seen.clone())));
    let seen = seen.lock().unwrap();
    let traces: Vec<&Trace> = seen.values().collect();
    assert!(
        traces.iter().any(|t| *t != traces[0]),
        "{strategy:?}: every seed gave the same trace"
    );
}

#[test]
fn random_walk_under_random_schedules() {
    explore(Strategy::RandomWalk, |f| shuttle::check_random(f, 300));
}

#[test]
fn pct_under_random_schedules() {
    explore(PCT, |f| shuttle::check_random(f, 300));
}

#[test]
fn random_walk_under_pct_schedules() {
    explore(Strategy::RandomWalk, |f| shuttle::check_pct(f, 200, 3));
}

#[test]
fn pct_under_pct_schedules() {
    explore(PCT, |f| shuttle::check_pct(f, 200, 3));
}

#[test]
fn a_replayed_schedule_gives_the_same_trace() {
    explore(PCT, |f| shuttle::check_uncontrolled_nondeterminism(f, 100));
}

/// Replays a failing schedule; see the crate docs.
#[test]
#[ignore = "replays REPLAY_SCHEDULE; run by hand"]
fn replay() {
    let schedule = std::env::var("REPLAY_SCHEDULE").expect("REPLAY_SCHEDULE=<schedule>");
    let strategy = match std::env::var("REPLAY_STRATEGY").as_deref() {
        Ok("pct") => PCT,
        Ok("random") | Err(_) => Strategy::RandomWalk,
        Ok(other) => panic!("REPLAY_STRATEGY: random or pct, not {other}"),
    };
    shuttle::replay(scenario(strategy, Seen::default()), &schedule);
}
