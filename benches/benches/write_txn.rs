//! `write_txn/{raw,hardened,naive}`: one `claim_task` write transaction on a warm session:
//! `BEGIN IMMEDIATE`, compare-and-swap a ready task to `running`, insert its run, point the
//! task at the run, insert the `claimed` event, `COMMIT` (fsync of the WAL: `synchronous =
//! FULL`).
//!
//! `hardened` is `Board::claim_task` on a worker's session. `raw` is hand-written rusqlite
//! doing the same statements through the same calls on a connection with the same pragmas
//! (`kanban_benches::raw_claim_task`). `naive` is the store with `HazardSet::naive()`, the
//! upstream code at bug time: a new connection per operation, a plain open+read+close of the
//! db and `-shm` on each connect, `journal_mode=WAL` set on each connect. Target:
//! hardened/raw ≤ 1.05.
//!
//! The claimed task is named (not picked by `claim_next`), so the transaction's cost does
//! not depend on how many tasks wait: `claim_next`'s `ORDER BY priority DESC, id` sorts every
//! ready task of the top priority (`idx_tasks_status` is `(status, priority)`), which would
//! dilute the store's own cost with a board-dependent sort.
//!
//! Each variant has its own board (1 MB of history, nothing claimable). So that the board
//! never runs out of claimable tasks and stays the same size, iterations run in chunks: an
//! untimed step makes `CHUNK` tasks ready, their claims are timed, and an untimed step
//! removes what was claimed and truncates the WAL (no role checkpoints on its own). The timed
//! work is the same for all three: exactly one successful claim each.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kanban_benches::{BenchClock, in_process_criterion};
use kanban_benches::{
    add_ready_tasks, build_board, raw_claim_task, raw_open, retire_claimed, scratch,
};
use kanban_store::hazards::HazardSet;
use kanban_store::{Board, Role, StoreConfig, TaskId};

/// Claims timed between two untimed resets (bounds the WAL to a few MB).
const CHUNK: u64 = 200;

/// Runs `iters` claims on the board at `db` (`claim(task)` claims a ready task), timing
/// only the claims.
fn timed_claims(
    clock: &BenchClock,
    db: &Path,
    iters: u64,
    mut claim: impl FnMut(TaskId) -> bool,
) -> Duration {
    let mut helper = raw_open(db).expect("the set-up connection");
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let tasks = add_ready_tasks(&mut helper, n).expect("making tasks ready");
        let start = clock.now();
        let mut claimed = 0;
        for &task in &tasks {
            claimed += u64::from(black_box(claim(black_box(task))));
        }
        total += clock.now() - start;
        assert_eq!(claimed, n, "every claim found a ready task");
        retire_claimed(&mut helper).expect("removing the claimed tasks");
        left -= n;
    }
    total
}

fn write_txn(c: &mut Criterion<BenchClock>) {
    let dir = scratch("kanban-bench-write-");
    let board = |name: &str| {
        let path = dir.path().join(format!("{name}.db"));
        build_board(&path, 1 << 20);
        path
    };
    let clock = BenchClock::from_env();
    let mut group = c.benchmark_group("write_txn");

    let db = board("raw");
    let mut conn = raw_open(&db).expect("raw open");
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            timed_claims(&clock, &db, iters, |task| {
                raw_claim_task(&mut conn, task, "bench")
                    .expect("raw claim")
                    .is_some()
            })
        });
    });
    drop(conn);

    let naive = StoreConfig::new(Role::Worker).hazards(HazardSet::naive());
    for (name, config) in [
        ("hardened", StoreConfig::new(Role::Worker)),
        ("naive", naive),
    ] {
        let db = board(name);
        let mut session =
            Board::open_with(&db, config).unwrap_or_else(|e| panic!("open ({name}): {e:?}"));
        let claim_failed = format!("claim ({name})");
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed_claims(&clock, &db, iters, |task| {
                    session
                        .claim_task(task, "bench")
                        .expect(&claim_failed)
                        .is_some()
                })
            });
        });
        drop(session);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = in_process_criterion();
    targets = write_txn
}
criterion_main!(benches);
