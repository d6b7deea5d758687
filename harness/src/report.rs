//! Outcomes gathered per (scenario, variant): the summary table, the JSON report, and the
//! judgement of a scenario's expectations.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::ledger::Tally;
use crate::scenario::{Expect, KINDS, Variant};
use crate::supervisor::Outcome;

/// The JSON report: `{"runs": [...]}`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// One element per (scenario, variant).
    pub runs: Vec<RunSummary>,
}

/// The outcomes of one (scenario, variant) over its seeds. Field names are a contract.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    /// The scenario's file stem.
    pub scenario: String,
    /// The variant.
    pub variant: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds with any finding.
    pub failed: u64,
    /// Seeds with structural damage.
    pub corrupt: u64,
    /// Seeds with a lost acknowledged commit (with power cuts: one no cut explains).
    pub lost_acked: u64,
    /// Seeds where a power cut rolled back a suffix of acknowledged commits.
    pub lost_suffix: u64,
    /// Seeds where something a reader had observed was gone (the worst kind of loss).
    pub lost_after_read: u64,
    /// Seeds with a broken invariant (or phantom).
    pub invariant: u64,
    /// Seeds with a worker error.
    pub worker_error: u64,
    /// Seeds with damage: corrupt, lost_acked, lost_suffix or lost_after_read.
    pub damaged: u64,
    /// Seeds with findings of each kind (every name of [`KINDS`]; `expect` judges these).
    pub seeds_with: BTreeMap<String, u64>,
    /// The failing seeds, ascending.
    pub failing_seeds: Vec<u64>,
    /// Seeds the harness itself could not run (with why).
    pub errors: Vec<String>,
    /// The seeds' own wall times, summed, in seconds.
    pub seed_time_s: f64,
    /// Wall time this (scenario, variant) took with the run's parallel jobs: the summed
    /// seed times divided by the number of jobs (seeds of several runs interleave, so the
    /// clock from first start to last finish would count other runs' seeds too).
    pub elapsed_s: f64,
    /// Seeds per second: `seeds / elapsed_s`.
    pub seeds_per_s: f64,
    /// The most backup/quarantine files seen in one seed's board folder.
    pub backups_max: usize,
    /// The largest `-wal` seen in one seed, in bytes (free-running seeds).
    #[serde(default)]
    pub wal_bytes_max: u64,
    /// SIGKILLs delivered at seeded times.
    pub kills: u64,
    /// Stalls delivered.
    pub stalls: u64,
    /// Faults planned at exact points (phase kills and I/O faults), over all seeds.
    pub faults_planned: u64,
    /// Of those, the ones armed (a phase kill's Nth entry into its phase came; an I/O fault
    /// acted).
    pub faults_armed: u64,
    /// Of those, the ones that acted (a phase kill's signal was sent; an I/O fault acted).
    pub faults_landed: u64,
    /// Power cuts planned (timed, and at exact file operations).
    #[serde(default)]
    pub power_cuts_planned: u64,
    /// Power cuts made (the board's files rewritten), per mode and in all.
    #[serde(default)]
    pub power_cuts: u64,
    /// Of those, per mode.
    #[serde(default)]
    pub cut_modes: BTreeMap<String, u64>,
    /// Worker restarts.
    pub restarts: u64,
    /// Commits acknowledged to the workers, over all seeds.
    pub acked: u64,
    /// Seeds whose repair after the run (`repair_after`) undid damage the scenario injected
    /// (a repairer killed between its damage and its repair); any other damage it found
    /// failed the seed instead.
    pub repaired_injected: u64,
    /// Acknowledged commits per second of seed time (the workers' throughput).
    pub acked_per_s: f64,
    /// Per worker kind, acknowledged commits per seed: the least and the median.
    pub acked_per_seed: BTreeMap<String, PerSeed>,
    /// Every seed's acked commits per worker kind (for `acked_per_seed`).
    #[serde(skip)]
    acked_seeds: BTreeMap<String, Vec<u64>>,
    /// Expected errors per kind (`Busy`, `DiskFull`...), over all seeds.
    pub expected_errors: BTreeMap<String, u64>,
    /// What the workers counted, per tally (`retry`, `oversize-closed`, ...; every tally,
    /// zeros too, once any seed counted one), over all seeds.
    pub tallies: BTreeMap<String, u64>,
    /// Worker starts that could not set up (`EXIT_SETUP`), over all seeds.
    pub setup_exits: u64,
    /// Deterministic mode: scheduling steps, over all seeds.
    pub steps: u64,
    /// Deterministic mode: steps per second of seed time (seed time includes making the
    /// board and checking it, so the handshake alone is faster).
    pub steps_per_s: f64,
    /// The first findings of the first failing seed.
    pub sample_findings: Vec<String>,
}

/// A figure's spread over the seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerSeed {
    /// The least of any seed.
    pub min: u64,
    /// The median (the lower one of an even count).
    pub median: u64,
}

impl PerSeed {
    fn of(values: &[u64]) -> PerSeed {
        let mut v = values.to_vec();
        v.sort_unstable();
        PerSeed {
            min: v.first().copied().unwrap_or(0),
            median: v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0),
        }
    }
}

impl RunSummary {
    /// An empty summary for `scenario` / `variant`.
    pub fn new(scenario: &str, variant: Variant) -> RunSummary {
        RunSummary {
            scenario: scenario.to_string(),
            variant: variant.to_string(),
            ..RunSummary::default()
        }
    }

    /// Adds one seed's outcome.
    pub fn add(&mut self, o: &Outcome) {
        self.seeds += 1;
        self.add_findings(o);
        self.add_work(o);
        self.add_faults(o);
    }

    /// Counts the seed's findings by kind, and notes it if it failed.
    fn add_findings(&mut self, o: &Outcome) {
        let f = &o.findings;
        let count = |v: &[String]| u64::from(!v.is_empty());
        self.corrupt += count(&f.corrupt);
        self.lost_acked += count(&f.lost_acked);
        self.lost_suffix += count(&f.lost_suffix);
        self.lost_after_read += count(&f.lost_after_read);
        self.invariant += count(&f.invariant);
        self.worker_error += count(&f.worker_error);
        self.damaged += u64::from(
            [
                &f.corrupt,
                &f.lost_acked,
                &f.lost_suffix,
                &f.lost_after_read,
            ]
            .iter()
            .any(|v| !v.is_empty()),
        );
        for kind in KINDS {
            *self.seeds_with.entry(kind.into()).or_default() += count(f.of_kind(kind));
        }
        if o.failed() {
            self.failed += 1;
            let at = self.failing_seeds.partition_point(|&s| s < o.seed);
            self.failing_seeds.insert(at, o.seed);
            if self.sample_findings.is_empty() {
                self.sample_findings = f.lines().into_iter().take(5).collect();
            }
        }
    }

    /// Adds the seed's work: commits per kind, expected errors, tallies, failed starts,
    /// backups and the largest `-wal`, steps and time.
    fn add_work(&mut self, o: &Outcome) {
        for (kind, &n) in &o.acked_by_kind {
            self.acked_seeds.entry(kind.clone()).or_default().push(n);
        }
        for (kind, &n) in &o.expected_errors {
            *self.expected_errors.entry(kind.clone()).or_default() += n;
        }
        if !o.tallies.is_empty() {
            for t in Tally::ALL {
                *self.tallies.entry(t.name().into()).or_default() +=
                    o.tallies.get(t.name()).copied().unwrap_or(0);
            }
        }
        self.setup_exits += u64::from(o.setup_exits);
        self.backups_max = self.backups_max.max(o.backups);
        self.wal_bytes_max = self.wal_bytes_max.max(o.max_wal_bytes);
        self.restarts += u64::from(o.restarts);
        self.acked += o.acked;
        self.steps += o.steps;
        self.seed_time_s += o.elapsed_ms as f64 / 1000.0;
    }

    /// Adds the seed's faults: timed kills and stalls, planned, armed and landed faults, and
    /// whether a final repair undid injected damage.
    fn add_faults(&mut self, o: &Outcome) {
        self.kills += u64::from(o.kills);
        self.stalls += u64::from(o.stalls);
        self.faults_planned += u64::from(o.faults_planned);
        self.faults_armed += u64::from(o.faults_armed);
        self.faults_landed += u64::from(o.faults_landed);
        self.power_cuts_planned += u64::from(o.power_cuts_planned);
        self.power_cuts += u64::from(o.power_cuts);
        for (mode, n) in &o.cut_modes {
            *self.cut_modes.entry(mode.clone()).or_default() += u64::from(*n);
        }
        self.repaired_injected +=
            u64::from(o.final_repair.as_ref().is_some_and(|r| r.undid_injected()));
    }

    /// Adds a seed the harness could not run.
    pub fn add_error(&mut self, seed: u64, error: String) {
        self.errors.push(format!("seed {seed}: {error}"));
    }

    /// Computes the wall time and rate for `jobs` parallel jobs.
    pub fn finish(&mut self, jobs: usize) {
        self.acked_per_seed = self
            .acked_seeds
            .iter()
            .map(|(kind, v)| (kind.clone(), PerSeed::of(v)))
            .collect();
        if self.seed_time_s > 0.0 {
            self.acked_per_s = self.acked as f64 / self.seed_time_s;
            self.steps_per_s = self.steps as f64 / self.seed_time_s;
        }
        self.elapsed_s = self.seed_time_s / jobs.max(1) as f64;
        self.seeds_per_s = if self.elapsed_s > 0.0 {
            self.seeds as f64 / self.elapsed_s
        } else {
            0.0
        };
    }

    /// Share of seeds that failed.
    pub fn failure_rate(&self) -> f64 {
        self.share(self.failed)
    }

    /// Share of planned faults that landed (1.0 when none were planned).
    pub fn landed_share(&self) -> f64 {
        if self.faults_planned == 0 {
            1.0
        } else {
            self.faults_landed as f64 / self.faults_planned as f64
        }
    }

    /// Share of seeds with corruption or a lost acknowledged commit (`damaged`).
    pub fn damage_rate(&self) -> f64 {
        self.share(self.damaged)
    }

    /// Share of seeds with findings of `kind`.
    pub fn kind_rate(&self, kind: &str) -> f64 {
        self.share(self.seeds_with.get(kind).copied().unwrap_or(0))
    }

    fn share(&self, n: u64) -> f64 {
        if self.seeds == 0 {
            0.0
        } else {
            n as f64 / self.seeds as f64
        }
    }

    /// Where this summary misses `expect` (empty: it holds).
    pub fn misses(&self, expect: &Expect) -> Vec<String> {
        let mut misses = Vec::new();
        if self.seeds == 0 {
            misses.push("0 seeds run".to_string());
        }
        let rate = self.failure_rate();
        if let Some(max) = expect.max_failure_rate.filter(|&max| rate > max) {
            misses.push(format!("failure rate {rate:.3} > max {max}"));
        }
        let damage = self.damage_rate();
        if let Some(min) = expect.min_damage_rate.filter(|&min| damage < min) {
            misses.push(format!("damage rate {damage:.3} < min {min}"));
        }
        for (kind, &min) in &expect.min_rate {
            let r = self.kind_rate(kind);
            if r < min {
                misses.push(format!("{kind} rate {r:.3} < min {min}"));
            }
        }
        for (kind, max) in KINDS
            .iter()
            .filter_map(|k| Some((k, expect.max_rate_of(k)?)))
        {
            let r = self.kind_rate(kind);
            if r > max {
                misses.push(format!("{kind} rate {r:.3} > max {max}"));
            }
        }
        if let Some(max) = expect.max_backups.filter(|&max| self.backups_max > max) {
            misses.push(format!("{} backups > max {max}", self.backups_max));
        }
        if let Some(min) = expect.min_backups.filter(|&min| self.backups_max < min) {
            misses.push(format!("{} backups < min {min}", self.backups_max));
        }
        if let Some(max) = expect.max_wal_bytes.filter(|&max| self.wal_bytes_max > max) {
            misses.push(format!("a WAL of {} bytes > max {max}", self.wal_bytes_max));
        }
        let landed = self.landed_share();
        let min_landed = expect.min_landed.unwrap_or(0.5);
        if self.faults_planned > 0 && landed < min_landed {
            misses.push(format!(
                "only {:.0}% of {} planned faults landed (min {:.0}%)",
                landed * 100.0,
                self.faults_planned,
                min_landed * 100.0
            ));
        }
        if self.power_cuts_planned > 0 {
            let cut = self.power_cuts as f64 / self.power_cuts_planned as f64;
            if cut < min_landed {
                misses.push(format!(
                    "only {:.0}% of {} planned power cuts were made (min {:.0}%)",
                    cut * 100.0,
                    self.power_cuts_planned,
                    min_landed * 100.0
                ));
            }
        }
        if !self.errors.is_empty() {
            misses.push(format!("{} seeds could not run", self.errors.len()));
        }
        misses
    }
}

/// The summary table printed after a run.
pub fn table(runs: &[RunSummary]) -> String {
    const HEAD: [&str; 17] = [
        "scenario",
        "variant",
        "seeds",
        "failed",
        "damaged",
        "corrupt",
        "lost",
        "suffix",
        "lost-rd",
        "invar",
        "werr",
        "work",
        "dup",
        "backups",
        "landed/armed/plan",
        "seeds/s",
        "acked/seed min~median per kind; expected errors",
    ];
    const WIDTH: [usize; 17] = [24, 36, 6, 6, 7, 7, 6, 6, 7, 6, 6, 5, 4, 7, 17, 7, 0];
    let row = |cells: [String; 17]| -> String {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(WIDTH).enumerate() {
            let sep = if i == 0 { "" } else { " " };
            // Names left-aligned, numbers right-aligned.
            let _ = if i < 2 || i == 16 {
                write!(line, "{sep}{cell:<width$}")
            } else {
                write!(line, "{sep}{cell:>width$}")
            };
        }
        line + "\n"
    };
    let mut out = row(HEAD.map(String::from));
    for r in runs {
        out += &row(cells(r));
    }
    out
}

/// The cells of a run's row of the table, in the order of its columns.
fn cells(r: &RunSummary) -> [String; 17] {
    [
        r.scenario.clone(),
        r.variant.clone(),
        r.seeds.to_string(),
        r.failed.to_string(),
        r.damaged.to_string(),
        r.corrupt.to_string(),
        r.lost_acked.to_string(),
        r.lost_suffix.to_string(),
        r.lost_after_read.to_string(),
        r.invariant.to_string(),
        r.worker_error.to_string(),
        r.seeds_with.get("work").copied().unwrap_or(0).to_string(),
        r.seeds_with
            .get("duplicate")
            .copied()
            .unwrap_or(0)
            .to_string(),
        r.backups_max.to_string(),
        format!(
            "{}/{}/{}",
            r.faults_landed, r.faults_armed, r.faults_planned
        ),
        format!("{:.1}", r.seeds_per_s),
        work_cell(r),
    ]
}

/// The work of a run in a cell: `gateway 3~40 dashboard 10~52; Busy 4` (acked per seed,
/// least~median, per worker kind; expected errors per kind; starts that could not set up;
/// the largest `-wal` of a seed).
fn work_cell(r: &RunSummary) -> String {
    let mut cell: Vec<String> = r
        .acked_per_seed
        .iter()
        .map(|(kind, p)| format!("{kind} {}~{}", p.min, p.median))
        .collect();
    let errors: Vec<String> = r
        .expected_errors
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    if !errors.is_empty() {
        cell.push(format!("; {}", errors.join(" ")));
    }
    if !r.tallies.is_empty() {
        let tallies: Vec<String> = (r.tallies.iter())
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        cell.push(format!("; {}", tallies.join(" ")));
    }
    if r.setup_exits > 0 {
        cell.push(format!("; {} setup exits", r.setup_exits));
    }
    if r.power_cuts_planned > 0 {
        cell.push(format!("; cuts {}/{}", r.power_cuts, r.power_cuts_planned));
    }
    if r.wal_bytes_max > 0 {
        cell.push(format!("; WAL max {} KiB", r.wal_bytes_max.div_ceil(1024)));
    }
    cell.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 seeds, 1 with a lost suffix.
    fn one_suffix_in_ten() -> RunSummary {
        let mut run = RunSummary::new("s", Variant::Hardened);
        run.seeds = 10;
        run.seeds_with.insert("lost_suffix".into(), 1);
        run.damaged = 1;
        run
    }

    /// A lost suffix fails a variant that does not name it; naming it, or expecting damage,
    /// allows it.
    #[test]
    fn a_lost_suffix_is_a_miss_unless_the_expectations_name_it() {
        let run = one_suffix_in_ten();
        let miss = ["lost_suffix rate 0.100 > max 0"];
        assert_eq!(run.misses(&Expect::default()), miss);
        let mut expect = Expect::default();
        expect.max_rate.insert("lost_acked".into(), 0.0);
        assert_eq!(run.misses(&expect), miss);
        expect.max_rate.insert("lost_suffix".into(), 1.0);
        assert!(run.misses(&expect).is_empty());
        let mut expect = Expect::default();
        expect.min_rate.insert("lost_suffix".into(), 0.05);
        assert!(run.misses(&expect).is_empty());
        // A hazard variant that expects damage counts a lost suffix as damage.
        let expect = Expect {
            min_damage_rate: Some(0.05),
            ..Expect::default()
        };
        assert!(run.misses(&expect).is_empty());
    }
}
