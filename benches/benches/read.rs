//! `read/{raw,hardened}`: `events_since` over a 10 MB board, the query a dashboard's
//! websocket poller runs every few hundred milliseconds per browser tab.
//!
//! One poll asks for the 100 events after a cursor in the middle of the log. `hardened` is
//! `Board::events_since` on a dashboard session (its read-only connection); `raw` is the
//! same statement, cached as the store caches it, on a read-only connection with the same
//! pragmas, mapped into the same `Event` values (`kanban_benches::raw_events_since`).
//! Target: hardened/raw ≤ 1.05.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kanban_benches::{BenchClock, in_process_criterion};
use kanban_benches::{
    POLL_LIMIT, build_board, last_event_id, raw_events_since, raw_open_read_only, scratch,
};
use kanban_store::{Board, EventId, Role, StoreConfig};

fn read(c: &mut Criterion<BenchClock>) {
    let dir = scratch("kanban-bench-read-");
    let db = dir.path().join("board-10MB.db");
    build_board(&db, 10 << 20);
    let raw = raw_open_read_only(&db).expect("raw open");
    let cursor = EventId::from(last_event_id(&raw).expect("the last event").get() / 2);

    let mut group = c.benchmark_group("read");
    group.bench_function("raw", |b| {
        b.iter(|| black_box(raw_events_since(&raw, black_box(cursor), POLL_LIMIT).expect("read")));
    });
    let mut session = Board::open_with(&db, StoreConfig::new(Role::Dashboard)).expect("open");
    group.bench_function("hardened", |b| {
        b.iter(|| {
            black_box(
                session
                    .events_since(black_box(cursor), POLL_LIMIT)
                    .expect("read"),
            )
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = in_process_criterion();
    targets = read
}
criterion_main!(benches);
