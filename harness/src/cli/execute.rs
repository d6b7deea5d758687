//! Running a plan of (scenario, variant, seeds) over the jobs, shared by `run` and
//! `verify`: the run options from the flags, the progress shown, the JSON report written,
//! and the replay commands of the seeds that failed.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kanban_harness::jobs::{self, Item};
use kanban_harness::report::{Report, RunSummary, table};
use kanban_harness::scenario::{Scenario, Variant};
use kanban_harness::supervisor::RunOptions;
use kanban_harness::{Error, Result};

use super::scenarios::parse_shard;
use crate::Common;

pub(crate) fn run_options(common: &Common, verbose: bool) -> RunOptions {
    let mut opts = RunOptions::new(
        common
            .work_dir
            .clone()
            .unwrap_or_else(RunOptions::default_work_dir),
    );
    opts.artifacts = common.artifacts.clone();
    opts.verbose = verbose;
    opts.shim = common.shim;
    opts.control_job_dies_after = common.control_job_dies_after;
    common.schedule.apply(&mut opts);
    opts
}

/// Runs every (scenario, variant, seeds) of `plan`; one summary each, in plan order.
pub(crate) fn execute(
    plan: &[(&Scenario, Variant, Vec<u64>)],
    common: &Common,
) -> Result<Vec<RunSummary>> {
    let shard = common.shard.as_deref().map(parse_shard).transpose()?;
    let items = items(plan, shard);
    let opts = run_options(common, false);
    let mut runs: BTreeMap<(PathBuf, Variant), (RunSummary, u64)> = plan
        .iter()
        .map(|(s, v, _)| (key(s, *v), (RunSummary::new(&s.name(), *v), 0)))
        .collect();
    for item in &items {
        runs.get_mut(&key(item.scenario, item.variant))
            .expect("planned")
            .1 += 1;
    }
    let jobs = common.jobs.clamp(1, items.len().max(1));
    let started = Instant::now();
    let progress = Progress::new(items.len() as u64);
    jobs::run(&items, jobs, &opts, |item, result| {
        let (summary, left) = runs
            .get_mut(&key(item.scenario, item.variant))
            .expect("planned");
        match result {
            Ok(outcome) => summary.add(&outcome),
            Err(e) => summary.add_error(item.seed, e),
        }
        *left -= 1;
        if *left == 0 {
            summary.finish(jobs);
            progress.line(&format!(
                "{} {}: {} of {} seeds failed ({:.1} seeds/s)",
                summary.scenario,
                summary.variant,
                summary.failed,
                summary.seeds,
                summary.seeds_per_s
            ));
        }
        progress.tick();
    })?;
    progress.done();
    eprintln!(
        "{} seeds in {:.1} s with {jobs} jobs",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    let ordered: Vec<RunSummary> = plan
        .iter()
        .map(|(s, v, _)| runs[&key(s, *v)].0.clone())
        .collect();
    if let Some(path) = &common.report {
        write_report(path, &ordered)?;
    }
    let unjudged = unjudged(&ordered, &planned(plan, &items));
    if !unjudged.is_empty() {
        print!("{}", table(&ordered));
        return Err(Error::SeedsNotJudged(unjudged));
    }
    Ok(ordered)
}

/// The items of `plan`: every seed of each (scenario, variant), or with `shard` (K of N)
/// every Nth seed from the Kth.
fn items<'a>(
    plan: &[(&'a Scenario, Variant, Vec<u64>)],
    shard: Option<(usize, usize)>,
) -> Vec<Item<'a>> {
    plan.iter()
        .flat_map(|(s, v, seeds)| {
            seeds
                .iter()
                .enumerate()
                .filter(move |(i, _)| shard.is_none_or(|(k, n)| i % n == k - 1))
                .map(|(_, &seed)| Item {
                    scenario: s,
                    variant: *v,
                    seed,
                })
        })
        .collect()
}

/// What a run of the plan is known by: its scenario's file and its variant.
fn key(s: &Scenario, v: Variant) -> (PathBuf, Variant) {
    (s.path.clone(), v)
}

/// The seeds planned for each run of `plan` (in plan order): its items.
fn planned(plan: &[(&Scenario, Variant, Vec<u64>)], items: &[Item<'_>]) -> Vec<u64> {
    plan.iter()
        .map(|(s, v, _)| {
            items
                .iter()
                .filter(|i| key(i.scenario, i.variant) == key(s, *v))
                .count() as u64
        })
        .collect()
}

/// Writes the JSON report of `runs` to `path`.
fn write_report(path: &Path, runs: &[RunSummary]) -> Result<()> {
    let report = Report {
        runs: runs.to_vec(),
    };
    let json = serde_json::to_string_pretty(&report).expect("serialisable");
    std::fs::write(path, json + "\n")
        .map_err(|e| Error::system(format!("writing {}", path.display()), e))
}

/// The runs that did not judge every seed planned for them (`planned[i]` for `runs[i]`),
/// one line each with the seeds' errors: such a run has no verdict, pass or fail.
fn unjudged(runs: &[RunSummary], planned: &[u64]) -> Vec<String> {
    runs.iter()
        .zip(planned)
        .filter(|(run, planned)| run.seeds != **planned || !run.errors.is_empty())
        .map(|(run, planned)| {
            let mut line = format!(
                "{} {}: {} of {planned} planned seeds judged",
                run.scenario, run.variant, run.seeds
            );
            for e in &run.errors {
                line.push_str(&format!("; {e}"));
            }
            line
        })
        .collect()
}

/// Prints the replay command of every failing seed (the first few per run).
pub(crate) fn print_failures(
    runs: &[RunSummary],
    plan: &[(&Scenario, Variant, Vec<u64>)],
    opts: &RunOptions,
) {
    for (run, (scenario, variant, _)) in runs.iter().zip(plan) {
        // The flags that make the replay run the same way.
        let mut flags = String::new();
        if opts.deterministic {
            flags.push_str(" --deterministic");
        }
        if let Some(name) = opts.strategy {
            flags.push_str(&format!(" --strategy {}", name.name()));
        }
        if let Some(depth) = opts.pct_depth {
            flags.push_str(&format!(" --pct-depth {depth}"));
        }
        for e in &run.errors {
            println!("error {} {variant}: {e}", scenario.name());
        }
        for seed in run.failing_seeds.iter().take(10) {
            println!(
                "replay: kanban-harness replay {} --variant {variant} --seed {seed}{flags}",
                scenario.path.display()
            );
        }
        if run.failing_seeds.len() > 10 {
            println!(
                "... and {} more failing seeds",
                run.failing_seeds.len() - 10
            );
        }
        for f in &run.sample_findings {
            println!("  e.g. {f}");
        }
    }
}

/// A progress bar on a terminal; plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta}")
                    .expect("valid template"),
            );
            bar
        });
        Progress { bar }
    }

    fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_short_of_its_planned_seeds_is_unjudged() {
        let mut run = RunSummary::new("s", Variant::Hardened);
        run.add(&kanban_harness::supervisor::Outcome::default());
        assert!(unjudged(std::slice::from_ref(&run), &[1]).is_empty());
        assert_eq!(
            unjudged(std::slice::from_ref(&run), &[2]),
            ["s hardened: 1 of 2 planned seeds judged"]
        );
        run.add_error(7, "no board".into());
        assert_eq!(
            unjudged(&[run], &[1]),
            ["s hardened: 1 of 1 planned seeds judged; seed 7: no board"]
        );
    }
}
