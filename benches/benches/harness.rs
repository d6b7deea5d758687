//! `harness/seeds_free` and `harness/seeds_deterministic`: how many seeded multi-process
//! runs of a small scenario the fault harness gets through per second, on all cores (as
//! `kanban-harness run --jobs <cores>` would). Targets on 2 cores: ≥ 100 seeds/s free-running,
//! ≥ 20 seeds/s in deterministic mode.
//!
//! The scenario is `benches/scenarios/seeds.toml` (a gateway and an agent, one kill, a 10 ms
//! budget); each seed makes its board (a copy of the file the first seed of its job process
//! made through the store), forks its workers, kills and restarts one, stops them, and
//! checks the board and the ledgers. `seeds_deterministic` runs the same scenario
//! with `RunOptions::deterministic`: one worker at a time, scheduled from the seed over the
//! token protocol, in logical time (the 10 ms budget is then logical). Criterion's
//! throughput is one element per seed, so its `elem/s` is seeds per second.
//!
//! Fork safety: `jobs::run` forks job processes and each job forks its workers. This bench
//! process is single-threaded (criterion is built without rayon; see the workspace
//! `Cargo.toml`), is a binary of its own, and never opens a SQLite connection.

use std::path::Path;
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use kanban_harness::jobs::{self, Item};
use kanban_harness::scenario::{Scenario, Variant};
use kanban_harness::supervisor::RunOptions;

/// Benchmarks `id`: seeds of `scenario` with `opts`, in parallel jobs, one element each.
fn seeds(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    scenario: &Scenario,
    opts: &RunOptions,
) {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut next_seed = 0u64;
    let mut failed = Vec::new();
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let items: Vec<Item<'_>> = (next_seed..next_seed + iters)
                .map(|seed| Item {
                    scenario,
                    variant: Variant::Hardened,
                    seed,
                })
                .collect();
            next_seed += iters;
            let start = Instant::now();
            jobs::run(&items, jobs, opts, |item, result| match result {
                Ok(outcome) if outcome.failed() => failed.push(item.seed),
                Ok(_) => {}
                Err(e) => panic!("seed {}: {e}", item.seed),
            })
            .expect("running seeds");
            start.elapsed()
        });
    });
    if let Some(first) = failed.first() {
        // A benchmark is not a test, but a failing seed of the hardened store is news.
        eprintln!(
            "warning: harness/{id}: {} of {next_seed} seeds failed their checks; replay one with: \
             kanban-harness replay {} --variant hardened --seed {first}{}",
            failed.len(),
            scenario.path.display(),
            if opts.deterministic {
                " --deterministic"
            } else {
                ""
            },
        );
    }
}

fn harness(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seeds.toml");
    let scenario = Scenario::load(&path).expect("the benchmark scenario");
    let free = RunOptions::new(RunOptions::default_work_dir());
    let deterministic = RunOptions {
        deterministic: true,
        ..free.clone()
    };

    let mut group = c.benchmark_group("harness");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    seeds(&mut group, "seeds_free", &scenario, &free);
    seeds(&mut group, "seeds_deterministic", &scenario, &deterministic);
    group.finish();
}

criterion_group! {
    name = benches;
    config = kanban_benches::processes_criterion();
    targets = harness
}
criterion_main!(benches);
