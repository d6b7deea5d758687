//! The connection-generations protocol under `shuttle`'s randomised thread schedules.
//!
//! On a real board the processes are OS processes, the lock is a range of `<db>.lock` and
//! the word is in that file; here (`tests/model/mod.rs`, the model `tests/loom.rs`
//! enumerates) the processes are `shuttle` threads running the crate's own
//! `Pool::with`, the maintainers run the crate's own `maintain`, and the lock file is an
//! in-memory reader-writer lock. Each test runs three or four processes (some waiting on
//! the lock, some polling it as the store does) and one maintainer, with the request kept
//! either as a bit of the word (`_bit`, as `maintain` writes it) or as a lock (`_lock`, as
//! the store keeps it), under many schedules: random ones (`check_random`), then
//! probabilistic-concurrency-testing ones (`check_pct`, which finds bugs that need a few
//! unlikely preemptions). It checks what the store relies on:
//!
//! - no stale handle is used: at every use inside an operation, the handle is of the
//!   published generation and no maintenance is at work (whose `work` sees no session);
//! - one reopen per generation: a process gets a new handle exactly when `Pool::reopens`
//!   counts one, never two in one generation (but after a withdrawn request), never more
//!   than the maintenances requested, and it ends on the last generation, where one more
//!   checkout keeps its handle;
//! - no deadlock: every thread ends (shuttle fails a run where all wait, and one that
//!   spins past its step bound);
//! - a process that panics with a checked-out handle has let go of its shared lock: the
//!   maintenance that waits for its death still gets the exclusive lock;
//! - a maintenance that cannot get the lock withdraws its request, and the sessions carry
//!   on in the same generation;
//! - an operation nested in another of the same process (a second pool) goes ahead while
//!   a maintenance is requested, and the maintenance gets the board after the outer one;
//! - two maintenances at once run one after the other: each takes the request before it
//!   reads the generation, so the generation never goes back and none is published twice.
//!
//! A failure prints the schedule (`test panicked in task ... failing schedule: "…"`, over
//! several lines); replay it, deterministically, with
//! `SHUTTLE_PLAN=<test name> SHUTTLE_REPLAY='<schedule>' cargo test -p kanban-generations
//! --test shuttle replay -- --ignored --exact` (the `replay` test calls `shuttle::replay`
//! on the named test's plan, whichever of `check_random`/`check_pct` found the schedule;
//! shuttle ignores the line breaks, as any whitespace in a schedule). A `check_random`
//! failure also prints its seed: `SHUTTLE_RANDOM_SEED=<seed> cargo test -p
//! kanban-generations --test shuttle -- --exact <test name>` runs the same schedules again.
//! `SHUTTLE_ITERATIONS` sets how many schedules of each kind a test runs.

#![cfg(not(loom))]

mod model;

use model::{Plan, Requests, Script, Step, run};

/// Random schedules, then PCT schedules, per test, unless `SHUTTLE_ITERATIONS` says
/// otherwise (for a longer run: `SHUTTLE_ITERATIONS=20000`).
const ITERATIONS: usize = 500;
/// The bug depth PCT aims at (preemptions it places per schedule).
const PCT_DEPTH: usize = 3;

fn iterations() -> usize {
    std::env::var("SHUTTLE_ITERATIONS").map_or(ITERATIONS, |n| {
        n.parse().expect("SHUTTLE_ITERATIONS: a number")
    })
}

fn lives(eager: usize, polls: bool) -> Script {
    Script {
        eager,
        dies_after: None,
        polls,
        nests: false,
    }
}

fn dies(eager: usize, after: usize) -> Script {
    Script {
        eager,
        dies_after: Some(after),
        polls: false,
        nests: false,
    }
}

/// A process whose operations each run a second one inside, on a second pool.
fn nests(eager: usize, polls: bool) -> Script {
    Script {
        nests: true,
        ..lives(eager, polls)
    }
}

/// The plan of a test, by the test's name: a scenario, then how requests are kept (`_bit`:
/// in the word, as `maintain` publishes it; `_lock`: as a lock, as the store keeps them).
fn plan(test: &str) -> Plan {
    let (scenario, requests) = match test.rsplit_once('_') {
        Some((scenario, "bit")) => (scenario, Requests::Bit),
        Some((scenario, "lock")) => (scenario, Requests::Lock),
        _ => panic!("{test}: a test name ends in _bit or _lock"),
    };
    let (processes, maintainers) = match scenario {
        // Two maintenances in a row under four busy processes.
        "two_maintenances" => (
            vec![
                lives(1, false),
                lives(3, false),
                lives(2, true),
                lives(1, true),
            ],
            vec![vec![Step::Maintain, Step::Maintain]],
        ),
        // Two processes panic with their handle checked out (one may do so after the first
        // maintenance); the second maintenance comes after both deaths.
        "deaths" => (
            vec![lives(2, false), dies(1, 1), dies(3, 3), lives(1, true)],
            vec![vec![Step::Maintain, Step::AwaitDeaths(2), Step::Maintain]],
        ),
        // Maintenances that give up when a session holds the lock, around one that waits.
        "withdrawn_requests" => (
            vec![lives(2, false), lives(1, true), lives(3, false)],
            vec![vec![Step::TryMaintain, Step::Maintain, Step::TryMaintain]],
        ),
        // Two repairs at once, as two processes may start them (see the test).
        "two_maintainers_at_once" => (
            vec![lives(1, false), lives(2, true), lives(1, false)],
            vec![vec![Step::Maintain], vec![Step::Maintain]],
        ),
        // Processes whose operations run a nested one (a second pool of the same process)
        // beside plain ones, under two maintenances: the nested ones go ahead while a
        // maintenance is requested, which waits for the outer ones.
        "nested_operations" => (
            vec![nests(2, false), nests(1, true), lives(2, false)],
            vec![vec![Step::Maintain, Step::Maintain]],
        ),
        other => panic!("no scenario named {other}"),
    };
    Plan {
        processes,
        maintainers,
        requests,
    }
}

fn explore(test: &'static str) {
    let p = plan(test);
    shuttle::check_random(move || run(&p), iterations());
    let p = plan(test);
    shuttle::check_pct(move || run(&p), iterations(), PCT_DEPTH);
}

#[test]
fn two_maintenances_bit() {
    explore("two_maintenances_bit");
}

#[test]
fn two_maintenances_lock() {
    explore("two_maintenances_lock");
}

#[test]
fn deaths_bit() {
    explore("deaths_bit");
}

#[test]
fn deaths_lock() {
    explore("deaths_lock");
}

#[test]
fn withdrawn_requests_bit() {
    explore("withdrawn_requests_bit");
}

#[test]
fn withdrawn_requests_lock() {
    explore("withdrawn_requests_lock");
}

/// Two maintenances started at once (two repairers), with the request a bit of the word
/// (checked and set at once): they run one after the other. (Found by this test: when
/// `maintain` read the word before it held the request, the first maintenance's "next
/// generation, request clear" erased the second's request, and a request published from
/// a word read earlier put the generation back.)
#[test]
fn two_maintainers_at_once_bit() {
    explore("two_maintainers_at_once_bit");
}

/// Two maintenances at once with the request kept as the store keeps it (a lock, which the
/// second maintenance waits for): the generation goes up by one per maintenance.
#[test]
fn two_maintainers_at_once_lock() {
    explore("two_maintainers_at_once_lock");
}

#[test]
fn nested_operations_bit() {
    explore("nested_operations_bit");
}

#[test]
fn nested_operations_lock() {
    explore("nested_operations_lock");
}

/// Replays a failing schedule; see the crate docs.
#[test]
#[ignore = "replays SHUTTLE_REPLAY on SHUTTLE_PLAN; run by hand"]
fn replay() {
    let test = std::env::var("SHUTTLE_PLAN").expect("SHUTTLE_PLAN=<test name>");
    // Shuttle prints the schedule over several lines; `shuttle::replay` ignores whitespace.
    let schedule = std::env::var("SHUTTLE_REPLAY").expect("SHUTTLE_REPLAY=<schedule>");
    let p = plan(&test);
    shuttle::replay(move || run(&p), &schedule);
}
