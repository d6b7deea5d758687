//! `kanban-harness shrink`: a failing seed shrunk to a smaller scenario that fails the same way.

use std::path::PathBuf;

use kanban_harness::scenario::Variant;
use kanban_harness::{Error, Result, shrink as shrinking};

use crate::OneSeed;

/// Shrinks the failing seed and writes (or prints) the shrunk scenario.
pub(crate) fn shrink(one: OneSeed, out: Option<PathBuf>) -> Result<bool> {
    let (variant, mut opts) = one.resolve()?;
    // Shrinking needs exact verdicts: always deterministic.
    opts.deterministic = true;
    let shrunk = shrinking::shrink(&one.scenario, variant, one.seed, &opts, |line| {
        eprintln!("shrink: {line}")
    })?;
    let (b, a) = (shrunk.before, shrunk.after);
    println!(
        "{:?} kept after {} tries: {} -> {} steps, {} -> {} acked commits, {} -> {} workers, {} -> {} ms",
        shrunk.kind,
        shrunk.tries,
        b.steps,
        a.steps,
        b.acked,
        a.acked,
        b.workers,
        a.workers,
        b.budget_ms,
        a.budget_ms
    );
    for line in &shrunk.findings {
        println!("  {line}");
    }
    if variant != Variant::Hardened {
        println!(
            "hardened on the shrunk scenario: {}",
            if shrunk.hardened_passes {
                "passes"
            } else {
                "FAILS too"
            }
        );
    }
    match out {
        Some(path) => {
            std::fs::write(&path, &shrunk.scenario)
                .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
            println!("wrote {}", path.display());
        }
        None => print!("{}", shrunk.scenario),
    }
    Ok(true)
}
