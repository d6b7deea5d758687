//! `multi_process/{raw,hardened,single_writer}`: two writer processes and one reader process
//! on one board, for a fixed amount of work, timed from the first spawn until all three have
//! exited.
//!
//! Each writer does `TXNS` write transactions, one `comment` on each task of its own half of
//! `2 × TXNS` tasks made once for the board (so the writers compete for SQLite's write lock,
//! not for rows); the reader does `TXNS` polls of the event log (100 events at most each,
//! from the end of the log as it was, moving its cursor like a websocket poller, so it mostly
//! sees the writers' new `commented` events). They are separate processes (`fork`+`exec` of
//! the `bench-worker` binary, started while this process has no SQLite connection open),
//! each opening its own session, so the time includes each process's open, SQLite's
//! cross-process locking (the writers take turns on the WAL write lock, waiting through the
//! busy handler), and its exit.
//!
//! - `raw`: hand-written rusqlite with the store's pragmas (`kanban_benches::raw_comment`,
//!   the store's statements).
//! - `hardened`: `Board`, the writers as workers, the reader as a dashboard. Target:
//!   hardened/raw ≤ 1.10.
//! - `single_writer`: the store's single-writer mode (`StoreConfig::single_writer`). A
//!   gateway process (`Role::Gateway`) binds the board's `WriteServer` and serves it in a
//!   loop (non-blocking `serve`, a 50 µs pause when nothing waited); the two writers are
//!   dashboards, so each `comment` is one request over `<db>.sock` that the gateway runs on
//!   its own session and answers; the reader is a dashboard too (reads are never
//!   forwarded). single_writer/hardened is shown, with no target: what it costs to send
//!   every write through one process instead of letting the writers take turns on the file.
//!
//! **Why a comment, not a claim.** Until the single-writer mode existed, the writers claimed
//! tasks (`claim_task`). A claim cannot be forwarded (the gateway's API is `create_task`,
//! `update_task`, `move_task`, `link` and `comment`), and a ratio only means something if
//! both sides do the same work, so all three flavours now post comments. A comment is, like a
//! claim, one `BEGIN IMMEDIATE` transaction with one commit and one event for the reader: a
//! status lookup, a comment insert and the `commented` event insert (a claim was a CAS
//! update, a run insert, a task update and the event insert). One comment is one forwarded
//! request, so the number of transactions per writer is the same in all three. Results of
//! `multi_process/{raw,hardened}` from before 2026-11-27 measured claims and are not
//! comparable with later ones (the hardened/raw ratio is: both sides changed together).
//!
//! **The gateway is outside the timed part.** It is started before the iteration's timer
//! (the bench waits for its `ready`, so no writer finds the socket missing) and stopped
//! (its standard input closed) and waited for after the timer. A gateway is a standing
//! process in either deployment, whose open (and single-writer bind) is not the writes'
//! cost; and its close checkpoints the WAL, work that `raw` and `hardened` do in the
//! untimed clean-up. Its serving while the writers run, including its polling, is timed.
//! The gateway reports how many requests it answered, which must be `2 × TXNS`: proof that
//! every write went through it.
//!
//! Between iterations, untimed: after the gateway (if any) has exited, remove the comments
//! and events the iteration added and truncate the WAL, through a connection closed again
//! before the next spawn.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use kanban_benches::{
    Flavor, Mark, Part, add_tasks, build_board, mark, raw_open, retire_since, scratch, truncate_wal,
};
use kanban_store::TaskId;

/// Comment transactions per writer, and polls of the reader.
const TXNS: u64 = 1000;

/// The child-process helper, built by cargo beside the benchmarks.
const WORKER: &str = env!("CARGO_BIN_EXE_bench-worker");

/// `first`: the writer's first task, or the event the reader starts after.
fn command(flavor: Flavor, part: Part, db: &Path, first: i64, name: &str) -> Command {
    let mut cmd = Command::new(WORKER);
    cmd.arg(flavor.name())
        .arg(part.name())
        .arg(db)
        .arg(first.to_string())
        .arg(TXNS.to_string())
        .arg(name);
    cmd
}

fn spawn(flavor: Flavor, part: Part, db: &Path, first: i64, name: &str) -> Child {
    command(flavor, part, db, first, name)
        .spawn()
        .expect("starting bench-worker")
}

/// A running single-writer gateway process (see `kanban_benches::Part::Gateway`).
struct Gateway {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Gateway {
    /// Starts the gateway and waits until it serves the board's socket.
    fn start(db: &Path) -> Gateway {
        let mut child = command(Flavor::SingleWriter, Part::Gateway, db, 0, "gateway")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the bench-worker gateway");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("the gateway's stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading the gateway");
        assert_eq!(line.trim(), "ready", "the gateway did not start");
        Gateway {
            child,
            stdin,
            stdout,
        }
    }

    /// Tells the gateway to stop, waits for it, and returns how many requests it answered.
    fn stop(mut self) -> usize {
        drop(self.stdin.take()); // end of input: the gateway stops serving
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading the gateway");
        let status = self.child.wait().expect("waiting for the gateway");
        assert!(status.success(), "the gateway failed: {status}");
        line.trim()
            .strip_prefix("served ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("the gateway said {line:?}"))
    }
}

/// One run: 2 writers and 1 reader, from the first spawn to the last exit (the gateway, in
/// single-writer mode, around that and untimed). The writers comment on tasks
/// `first..first + TXNS` and `first + TXNS..first + 2 × TXNS`; the reader starts after the
/// last event of `before`, the board's mark, which every run restores at its end.
fn one_run(flavor: Flavor, db: &Path, first: TaskId, before: Mark) -> Duration {
    let (first, cursor) = (first.get(), before.event.get());
    let second = first + TXNS as i64;
    let gateway = (flavor == Flavor::SingleWriter).then(|| Gateway::start(db));
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
    if let Some(gateway) = gateway {
        let served = gateway.stop();
        assert_eq!(served as u64, 2 * TXNS, "every write went to the gateway");
    }
    let mut conn = raw_open(db).expect("the clean-up connection");
    retire_since(&mut conn, before).expect("removing the iteration's comments");
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
    for flavor in [Flavor::Raw, Flavor::Hardened, Flavor::SingleWriter] {
        let db = dir.path().join(format!("{}.db", flavor.name()));
        build_board(&db, 1 << 20);
        let (first, before) = {
            let mut conn = raw_open(&db).expect("the set-up connection");
            let tasks = add_tasks(&mut conn, 2 * TXNS, "todo").expect("the writers' tasks");
            truncate_wal(&conn).expect("truncating the WAL");
            (tasks[0], mark(&conn).expect("the board's mark"))
        }; // closed before any child starts
        group.bench_function(flavor.name(), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| one_run(flavor, &db, first, before))
                    .sum()
            });
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
