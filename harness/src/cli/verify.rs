//! `kanban-harness verify`: every scenario for the variants and seeds it declares, judged
//! against its expectations.

use std::path::PathBuf;

use kanban_harness::Result;
use kanban_harness::report::table;

use super::execute::execute;
use super::scenarios::{default_paths, load_all};
use crate::Common;

/// Runs every scenario's declared variants over its seeds and prints a verdict per
/// expectation; true when every one held.
pub(crate) fn verify(paths: Vec<PathBuf>, seeds: Option<u64>, common: Common) -> Result<bool> {
    let scenarios = load_all(&default_paths(paths))?;
    let plan: Vec<_> = scenarios
        .iter()
        .flat_map(|s| {
            let first = s.first_seed;
            let n = match seeds {
                Some(n) if !s.pin_seeds => n,
                _ => s.seeds,
            };
            let seeds: Vec<u64> = (first..first + n).collect();
            s.variants().into_iter().map(move |v| (s, v, seeds.clone()))
        })
        .collect();
    let runs = execute(&plan, &common)?;
    print!("{}", table(&runs));
    let mut ok = true;
    for (run, (scenario, variant, _)) in runs.iter().zip(&plan) {
        let expect = &scenario.expect[&variant.to_string()];
        let misses = run.misses(expect);
        let verdict = if misses.is_empty() { "PASS" } else { "FAIL" };
        println!(
            "{verdict} {} {variant}: {} of {} seeds failed{}",
            scenario.name(),
            run.failed,
            run.seeds,
            if misses.is_empty() {
                String::new()
            } else {
                format!(" ({})", misses.join("; "))
            }
        );
        ok &= misses.is_empty();
    }
    Ok(ok)
}
