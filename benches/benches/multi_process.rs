//! `multi_process/{raw,hardened}`: two writer processes and one reader process on one board,
//! for a fixed amount of work, timed from the first spawn until all three have exited.
//!
//! Each writer does `TXNS` claim transactions (`claim_task` of its own half of the tasks made
//! ready, so the writers compete for SQLite's write lock, not for rows), the reader `TXNS`
//! polls of the event log (100 events at most each, from the end of the log as it was, moving
//! its cursor like a websocket poller, so it mostly sees the writers' new events). They are separate
//! processes (`fork`+`exec` of the `bench-worker` binary, started while this process has no
//! SQLite connection open), each opening its own session, so the time includes each
//! process's open, SQLite's cross-process locking (the writers take turns on the WAL write
//! lock, waiting through the busy handler), and its exit. `raw` children use hand-written
//! rusqlite with the store's pragmas; `hardened` children use `Board` (writers as workers,
//! the reader as a dashboard). Target: hardened/raw ≤ 1.10.
//!
//! `multi_process/single_writer` (writes forwarded to one writer process) belongs here once
//! the single-writer mode exists (issue 6); it is left out until then.
//!
//! Between iterations, untimed: make `2 × TXNS` tasks ready before, remove what was claimed
//! and truncate the WAL after, each through a connection closed again before the next spawn.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use kanban_benches::{
    Flavor, Part, add_ready_tasks, build_board, last_event_id, raw_open, retire_claimed, scratch,
};
use kanban_store::TaskId;

/// Claim transactions per writer, and polls of the reader.
const TXNS: u64 = 1000;

/// The child-process helper, built by cargo beside the benchmarks.
const WORKER: &str = env!("CARGO_BIN_EXE_bench-worker");

fn spawn(flavor: Flavor, part: Part, db: &Path, first: TaskId, name: &str) -> Child {
    Command::new(WORKER)
        .arg(flavor.name())
        .arg(part.name())
        .arg(db)
        .arg(first.to_string())
        .arg(TXNS.to_string())
        .arg(name)
        .spawn()
        .expect("starting bench-worker")
}

/// One run: 2 writers and 1 reader, from the first spawn to the last exit.
fn one_run(flavor: Flavor, db: &Path) -> Duration {
    let (first, cursor) = {
        let mut conn = raw_open(db).expect("the set-up connection");
        let tasks = add_ready_tasks(&mut conn, 2 * TXNS).expect("making tasks ready");
        (tasks[0], last_event_id(&conn).expect("the last event"))
    }; // closed: no SQLite connection is open in this process while children start
    let second = first + TXNS as TaskId;
    let start = Instant::now();
    let children = [
        spawn(flavor, Part::Writer, db, first, "writer-1"),
        spawn(flavor, Part::Writer, db, second, "writer-2"),
        spawn(flavor, Part::Reader, db, cursor, "reader"),
    ];
    for mut child in children {
        let status = child.wait().expect("waiting for bench-worker");
        assert!(status.success(), "bench-worker failed: {status}");
    }
    let elapsed = start.elapsed();
    let mut conn = raw_open(db).expect("the clean-up connection");
    retire_claimed(&mut conn).expect("removing the claimed tasks");
    elapsed
}

fn multi_process(c: &mut Criterion) {
    let dir = scratch("kanban-bench-multi-");
    let mut group = c.benchmark_group("multi_process");
    // Each iteration is three processes and thousands of transactions (most of a second,
    // much of it writers waiting in SQLite's busy handler, whose sleeps of 1, 2, 5, 10 ms...
    // make single iterations vary): one iteration per sample, the fewest samples allowed.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for flavor in [Flavor::Raw, Flavor::Hardened] {
        let db = dir.path().join(format!("{}.db", flavor.name()));
        build_board(&db, 1 << 20);
        group.bench_function(flavor.name(), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| one_run(flavor, &db)).sum());
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = kanban_benches::processes_criterion();
    targets = multi_process
}
criterion_main!(benches);
