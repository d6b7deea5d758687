//! `lock/shared_session`: taking and releasing the store's shared session lock alone (R3:
//! an OFD lock on byte 0 of `<db>.lock`), the part of every open that raw SQLite does not do.
//!
//! The lock file is opened once; each iteration is one `lock_session(Mode::Shared, ..)`, one
//! generation check (`LockFile::word`: a `pread` of the generation and an `F_OFD_GETLK` probe
//! of the repair request; every checkout of a session pays it) and one `unlock_session()`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kanban_benches::scratch;
use kanban_benches::{BenchClock, in_process_criterion};
use kanban_store::SystemClock;
use kanban_store::hazards::{LockFile, Mode};

fn lock(c: &mut Criterion<BenchClock>) {
    let dir = scratch("kanban-bench-lock-");
    let file = LockFile::open(&dir.path().join("kanban.db")).expect("the lock file");
    let timeout = Duration::from_secs(5);
    let mut group = c.benchmark_group("lock");
    group.bench_function("shared_session", |b| {
        b.iter(|| {
            file.lock_session(Mode::Shared, timeout, &SystemClock)
                .expect("the shared lock");
            std::hint::black_box(file.word().expect("the generation"));
            file.unlock_session().expect("unlock");
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = in_process_criterion();
    targets = lock
}
criterion_main!(benches);
