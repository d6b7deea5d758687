//! `kanban-harness run`: scenarios over seeds, and a summary table.

use std::path::PathBuf;

use kanban_harness::Result;
use kanban_harness::report::table;
use kanban_harness::scenario::Variant;

use super::execute::{execute, print_failures, run_options};
use super::scenarios::{load_all, seed_list};
use crate::{Common, SeedArgs};

/// Runs the scenarios over their seeds, prints the table and the replay commands of the
/// failing seeds; true when every seed passed.
pub(crate) fn run(
    scenarios: Vec<PathBuf>,
    variants: Vec<String>,
    seeds: SeedArgs,
    common: Common,
) -> Result<bool> {
    let scenarios = load_all(&scenarios)?;
    let variants = variants
        .iter()
        .map(|v| Variant::parse(v))
        .collect::<Result<Vec<_>>>()?;
    let mut plan = Vec::new();
    for s in &scenarios {
        let vs = if variants.is_empty() {
            s.variants()
        } else {
            variants.clone()
        };
        let seeds = seed_list(&seeds, s)?;
        plan.extend(vs.into_iter().map(|v| (s, v, seeds.clone())));
    }
    let runs = execute(&plan, &common)?;
    print!("{}", table(&runs));
    print_failures(&runs, &plan, &run_options(&common, false));
    Ok(runs.iter().all(|r| r.failed == 0 && r.errors.is_empty()))
}
