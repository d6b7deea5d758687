//! The connection-generations protocol under `loom`, which explores every interleaving of
//! the threads (up to a preemption bound) rather than a random sample of them.
//!
//! The model is `tests/model/mod.rs` (the one `tests/shuttle.rs` samples, with `loom`'s
//! primitives), cut down until loom can enumerate it: two processes and one maintainer.
//! In every interleaving the model checks that no handle of an old generation is used and
//! none is used while a maintenance works, that each process opens at most one handle per
//! generation and ends caught up on the last one, that no thread waits forever (loom
//! reports a deadlock otherwise), and that a process panicking with a checked-out handle
//! has let go of its shared lock so the maintenance after it gets the exclusive one.
//!
//! Run it in release, with its own target directory (the cfg rebuilds every dependency):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p
//! kanban-generations --release --test loom` (about a minute: 4 cases). `LOOM_MAX_PREEMPTIONS`
//! overrides the default bound below (3 takes minutes per test); on a failure,
//! `LOOM_CHECKPOINT_FILE` and `LOOM_LOG` replay and explain the interleaving (see
//! `loom::model::Builder`). A deadlock aborts the whole test binary (loom panics where it
//! cannot unwind), so run one test (`-- --exact <name>`) to see which fails.

#![cfg(loom)]

mod model;

use model::{Plan, Requests, Script, Step, run};

/// Preemptions per interleaving, unless `LOOM_MAX_PREEMPTIONS` says otherwise.
const PREEMPTION_BOUND: usize = 2;

fn explore(plan: Plan) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTION_BOUND);
    }
    builder.check(move || run(&plan));
}

const LIVES: Script = Script {
    eager: 1,
    dies_after: None,
    polls: false,
    nests: false,
};

/// Two processes and a maintenance that may come before, between or after their opens.
fn one_maintenance(requests: Requests) {
    explore(Plan {
        processes: vec![LIVES, LIVES],
        maintainers: vec![vec![Step::Maintain]],
        requests,
    });
}

/// The request a bit of the word, as `maintain` publishes it.
#[test]
fn one_maintenance_request_bit() {
    one_maintenance(Requests::Bit);
}

/// The request a lock, as the store keeps it.
#[test]
fn one_maintenance_request_lock() {
    one_maintenance(Requests::Lock);
}

/// One process panics with its handle checked out; the maintenance waits for that death,
/// then must still get the exclusive lock.
#[test]
fn a_process_dies_holding_its_handle() {
    explore(Plan {
        processes: vec![
            LIVES,
            Script {
                eager: 1,
                dies_after: Some(1),
                polls: false,
                nests: false,
            },
        ],
        maintainers: vec![vec![Step::AwaitDeaths(1), Step::Maintain]],
        requests: Requests::Bit,
    });
}

/// A process whose operation runs a second one inside it, on a second pool (a request
/// handler's second connection), beside a plain process: the nested operation goes ahead
/// while the maintenance is requested (which waits for the outer one: without
/// `Backend::under_way` in `Pool::with`, loom finds the deadlock), and the maintenance
/// gets the board only once the outer operation is over ((a): no use during its work).
#[test]
fn a_nested_operation_does_not_wait_for_a_requested_maintenance() {
    explore(Plan {
        processes: vec![
            Script {
                nests: true,
                ..LIVES
            },
            LIVES,
        ],
        maintainers: vec![vec![Step::Maintain]],
        requests: Requests::Lock,
    });
}
