//! `kanban-harness matrix`: the hazard detection matrix, each hazard's row run in batches
//! of seed pairs (the hazard and its `hardened` control) until its verdict is in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kanban_harness::jobs::{self, Item};
use kanban_harness::matrix::{self, Detection, Line, Verdict};
use kanban_harness::report::RunSummary;
use kanban_harness::scenario::{Scenario, Variant};
use kanban_harness::supervisor::RunOptions;
use kanban_harness::{Error, Result};
use kanban_store::hazards::Hazard;

use super::execute::run_options;
use crate::Common;

/// Which rows of the matrix run, and how.
pub(crate) struct MatrixRows {
    /// The hazards whose rows run.
    pub(crate) hazards: Vec<Hazard>,
    /// The control: `hardened` runs in place of each hazard.
    pub(crate) switched_off: bool,
}

/// The hazards named (every one when none is).
pub(crate) fn matrix_hazards(names: &[String]) -> Result<Vec<Hazard>> {
    if names.is_empty() {
        return Ok(Hazard::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| match Variant::parse(&format!("hazard:{name}"))? {
            Variant::Hazard(key) => Ok(key.hazard()),
            _ => unreachable!("a hazard: prefix parses to a hazard"),
        })
        .collect()
}

/// Runs the hazard detection matrix: each detectable hazard and, on the same seeds, its
/// `hardened` control, in batches until the verdict is in (detected, or a control that
/// failed) or the seeds run out; true when every detectable hazard was detected.
pub(crate) fn matrix(
    max_seeds: u64,
    shape: bool,
    rows: &MatrixRows,
    common: &Common,
) -> Result<bool> {
    let opts = run_options(common, false);
    let mut lines = Vec::new();
    for &hazard in &rows.hazards {
        lines.push(row(hazard, rows.switched_off, max_seeds, common, &opts)?);
    }
    print!("{}", matrix::table(&lines, !shape));
    if let Some(path) = &common.report {
        let json = serde_json::json!({ "hazards": lines });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).expect("json") + "\n",
        )
        .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
    }
    Ok(lines
        .iter()
        .all(|l| matches!(l.verdict, Verdict::Detected | Verdict::NotByKills)))
}

/// Runs the row of `hazard` (its `hardened` control in its place when `switched_off`) until
/// its verdict is in or `max_seeds` ran; its line of the table.
fn row(
    hazard: Hazard,
    switched_off: bool,
    max_seeds: u64,
    common: &Common,
    opts: &RunOptions,
) -> Result<Line> {
    let (name, detection, reason) = matrix::row(hazard);
    let variant = match switched_off {
        true => Variant::Hardened,
        false => Variant::parse(&format!("hazard:{}", hazard.name()))?,
    };
    let (mut control, mut run) = (Pairs::default(), Pairs::default());
    let mut verdict = matrix::judge(&control.summary, &run.summary, detection);
    if detection != Detection::NotByKills {
        let scenario = Scenario::load(&PathBuf::from(format!("scenarios/{name}.toml")))?;
        let batch = (common.jobs.max(1) * 4) as u64;
        let mut next = 0;
        while next < max_seeds && verdict == Verdict::NotDetected {
            let end = (next + batch).min(max_seeds);
            run_batch(
                &scenario,
                variant,
                next..end,
                common,
                opts,
                &mut control,
                &mut run,
            )?;
            next = end;
            let starved = control.starved();
            control.summarise(name, Variant::Hardened, &starved);
            run.summarise(name, variant, &starved);
            verdict = matrix::judge(&control.summary, &run.summary, detection);
        }
        eprintln!(
            "{}: {verdict:?} after {} seeds",
            hazard.name(),
            run.summary.seeds
        );
    }
    let starved = control.starved().len() as u64;
    let (control, run) = (control.summary, run.summary);
    Ok(Line {
        hazard: hazard.name().to_string(),
        scenario: name.to_string(),
        detection,
        seeds: run.seeds,
        failed: run.failed,
        first_failing_seed: run.failing_seeds.first().copied(),
        control_seeds: control.seeds,
        control_failed: control.failed,
        control_kinds: matrix::kinds(&control),
        starved,
        verdict,
        kinds: if detection == Detection::NotByKills {
            reason.to_string()
        } else {
            matrix::kinds(&run)
        },
    })
}

/// Runs `seeds` of `scenario` under `hardened` (into `control`) and under `variant` (into
/// `run`).
fn run_batch(
    scenario: &Scenario,
    variant: Variant,
    seeds: std::ops::Range<u64>,
    common: &Common,
    opts: &RunOptions,
    control: &mut Pairs,
    run: &mut Pairs,
) -> Result<()> {
    let items: Vec<Item<'_>> = seeds
        .flat_map(|seed| {
            [Variant::Hardened, variant].map(|variant| Item {
                scenario,
                variant,
                seed,
            })
        })
        .collect();
    jobs::run(&items, common.jobs, opts, |item, result| {
        let pairs = if item.variant == Variant::Hardened {
            &mut *control
        } else {
            &mut *run
        };
        pairs.seeds.insert(item.seed, result);
    })
}

/// One side of a matrix row: every seed's result, and the summary of the seeds both sides
/// ran, but for the pairs whose control starved.
#[derive(Default)]
struct Pairs {
    seeds: BTreeMap<u64, std::result::Result<kanban_harness::supervisor::Outcome, String>>,
    summary: RunSummary,
}

impl Pairs {
    /// The seeds in which this side (the control) did no work: the machine's load starved
    /// them, and a starved seed judges neither the control nor the hazard.
    fn starved(&self) -> Vec<u64> {
        self.seeds
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|o| !o.findings.work.is_empty()))
            .map(|(&seed, _)| seed)
            .collect()
    }

    fn summarise(&mut self, name: &str, variant: Variant, starved: &[u64]) {
        self.summary = RunSummary::new(name, variant);
        for (&seed, result) in self.seeds.iter().filter(|(s, _)| !starved.contains(s)) {
            match result {
                Ok(outcome) => self.summary.add(outcome),
                Err(e) => self.summary.add_error(seed, e.clone()),
            }
        }
    }
}
