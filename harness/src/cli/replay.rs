//! `kanban-harness replay`: one seed rerun verbosely, or twice to compare the runs.

use std::path::PathBuf;

use kanban_harness::scenario::Scenario;
use kanban_harness::supervisor::run_seed;
use kanban_harness::{Error, Result};

use crate::OneSeed;

/// Reruns one seed and prints what happened; true when it passed (with `check`: when two
/// runs were identical).
pub(crate) fn replay(
    one: OneSeed,
    artifacts: Option<PathBuf>,
    trace: Option<PathBuf>,
    check: bool,
) -> Result<bool> {
    let s = Scenario::load(&one.scenario)?;
    let seed = one.seed;
    let (variant, mut opts) = one.resolve()?;
    opts.artifacts = artifacts;
    opts.verbose = !check;
    opts.trace = trace;
    if check && opts.schedule(&s).is_none() {
        return Err(Error::Usage(
            "--check compares two deterministic runs: add --deterministic".into(),
        ));
    }
    let outcome = run_seed(&s, variant, seed, &opts)?;
    if check {
        let again = run_seed(&s, variant, seed, &opts)?;
        let diff = outcome.replay_diff(&again);
        for (run, o) in [("run 1", &outcome), ("run 2", &again)] {
            println!(
                "{run}: {} steps, trace {}, database {}, {} findings, {}",
                o.steps,
                o.trace_digest.as_deref().unwrap_or("-"),
                o.db_digest.as_deref().unwrap_or("-"),
                o.findings.lines().len(),
                if o.failed() { "failed" } else { "passed" }
            );
        }
        if diff.is_empty() {
            println!("identical");
        } else {
            println!("DIFFERENT");
            for line in &diff {
                println!("  {line}");
            }
        }
        return Ok(diff.is_empty());
    }
    println!(
        "seed {seed}: {} kills, {} stalls, {} planned faults ({} armed, {} landed), {} of {} power cuts {:?}, {} restarts, {} backups, {} ms",
        outcome.kills,
        outcome.stalls,
        outcome.faults_planned,
        outcome.faults_armed,
        outcome.faults_landed,
        outcome.power_cuts,
        outcome.power_cuts_planned,
        outcome.cut_modes,
        outcome.restarts,
        outcome.backups,
        outcome.elapsed_ms
    );
    for line in outcome.findings.lines() {
        println!("  {line}");
    }
    if let (Some(trace), Some(db)) = (&outcome.trace_digest, &outcome.db_digest) {
        println!(
            "deterministic: {} steps; trace digest {trace}; database digest {db}",
            outcome.steps
        );
    }
    println!("{}", if outcome.failed() { "FAILED" } else { "passed" });
    Ok(!outcome.failed())
}
