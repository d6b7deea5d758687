//! `open/{raw,hardened,integrity_on_connect}/{1MB,10MB,50MB}`: what opening a board session
//! costs, and whether it stays O(1) in the board's size (R7).
//!
//! Each iteration opens a session and closes it again (open + drop), as a service that
//! connects per request would. `raw` is `Connection::open` with the store's pragmas
//! (`journal_mode=WAL`, which reads the header and schema, `busy_timeout`, `synchronous=FULL`,
//! foreign keys, no automatic checkpoints). `hardened` is `Board::open_with` as a worker: on
//! top of that the version gate, `stat` checks, the shared OFD lock on `<db>.lock`, and the
//! identity read (application id, schema version, journal mode). `integrity_on_connect` is
//! the upstream guard put back (the `integrity-on-connect` hazard): a full `integrity_check`
//! on every connect, which reads the whole file. Targets: hardened/raw ≤ 1.2 at every size;
//! integrity_on_connect/hardened ≥ 100 at 50 MB.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kanban_benches::{BenchClock, in_process_criterion};
use kanban_benches::{SIZES, build_board, raw_open, scratch};
use kanban_store::hazards::{Hazard, HazardSet};
use kanban_store::{Board, Role, StoreConfig};

fn open(c: &mut Criterion<BenchClock>) {
    let dir = scratch("kanban-bench-open-");
    let boards: Vec<_> = SIZES
        .iter()
        .map(|&(name, bytes)| {
            let path = dir.path().join(format!("board-{name}.db"));
            build_board(&path, bytes);
            (name, path)
        })
        .collect();
    let hardened = StoreConfig::new(Role::Worker);
    let integrity = StoreConfig::new(Role::Worker)
        .hazards(HazardSet::default().with(Hazard::IntegrityOnConnect));

    let mut group = c.benchmark_group("open");
    for (size, path) in &boards {
        group.bench_with_input(BenchmarkId::new("raw", size), path, |b, path| {
            b.iter(|| drop(black_box(raw_open(path).expect("raw open"))));
        });
        group.bench_with_input(BenchmarkId::new("hardened", size), path, |b, path| {
            b.iter(|| {
                drop(black_box(
                    Board::open_with(path, hardened.clone()).expect("hardened open"),
                ))
            });
        });
    }
    // A full check reads the whole file: tens to hundreds of milliseconds per iteration, so
    // the fewest samples criterion allows.
    group.sample_size(10);
    for (size, path) in &boards {
        group.bench_with_input(
            BenchmarkId::new("integrity_on_connect", size),
            path,
            |b, path| {
                b.iter(|| {
                    drop(black_box(
                        Board::open_with(path, integrity.clone()).expect("open with a full check"),
                    ))
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = in_process_criterion();
    targets = open
}
criterion_main!(benches);
