//! Shrinking a failing deterministic run to a small scenario that still fails the same way.
//!
//! A delta-debugging loop (greedy, one-at-a-time reduction, as in Zeller's *ddmin* with
//! single-element subsets) over the scenario itself, not over a recorded trace: each
//! candidate is the scenario with one thing removed or halved (a worker, the budget of
//! logical time, the timed kills, stalls and power cuts, a phase kill, an I/O fault (a
//! `power-cut` one too), in-transaction overlap, extra connections, seed tasks), run
//! deterministically with the same seed. A
//! candidate that fails *the same way* (same worst kind of finding: corrupt, then lost
//! acknowledged commits, then a broken invariant, then a worker error) replaces the
//! current scenario, and the loop starts over; it ends when no candidate still fails.
//! Because the run is deterministic, each verdict is exact: no candidate is kept by luck.
//!
//! proptest's shrinking would need the run to be a value tree of proptest's own; here the
//! input is a scenario file, and the result must be one too, so the loop edits the TOML.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::error::{Error, Result};
use crate::scenario::{Scenario, Variant};
use crate::supervisor::{Outcome, RunOptions, run_seed};

/// The worst kind of finding of a failing run, which a smaller run must show too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// Only work floors missed.
    Work,
    /// Only worker errors.
    WorkerError,
    /// A kanban invariant broken.
    Invariant,
    /// Acknowledged commits lost as the suffix before a power cut (only `FULL` forbids it).
    LostSuffix,
    /// An acknowledged commit lost.
    LostAcked,
    /// `integrity_check` failed.
    Corrupt,
}

impl FailureKind {
    /// The worst kind of `outcome`'s findings; `None` when it passed.
    pub fn of(outcome: &Outcome) -> Option<FailureKind> {
        let f = &outcome.findings;
        if !f.corrupt.is_empty() {
            Some(FailureKind::Corrupt)
        } else if !f.lost_acked.is_empty() || !f.lost_after_read.is_empty() {
            // A commit a reader saw and that is gone is a lost commit, acked or not.
            Some(FailureKind::LostAcked)
        } else if !f.lost_suffix.is_empty() {
            Some(FailureKind::LostSuffix)
        } else if !f.invariant.is_empty() {
            Some(FailureKind::Invariant)
        } else if !f.worker_error.is_empty() {
            Some(FailureKind::WorkerError)
        } else if !f.work.is_empty() {
            Some(FailureKind::Work)
        } else {
            None
        }
    }

    /// The finding kind's name in expectations (one of [`crate::scenario::KINDS`]).
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Work => "work",
            FailureKind::WorkerError => "worker_error",
            FailureKind::Invariant => "invariant",
            FailureKind::LostSuffix => "lost_suffix",
            FailureKind::LostAcked => "lost_acked",
            FailureKind::Corrupt => "corrupt",
        }
    }
}

/// The size of a run: what shrinking makes smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Scheduling steps (every file operation, sleep and lock attempt of every worker).
    pub steps: u64,
    /// Commits acknowledged.
    pub acked: u64,
    /// Worker processes.
    pub workers: usize,
    /// The budget of logical time, in milliseconds.
    pub budget_ms: u64,
}

/// What shrinking found.
#[derive(Debug)]
pub struct Shrunk {
    /// The failure kind kept.
    pub kind: FailureKind,
    /// The size of the original run.
    pub before: Size,
    /// The size of the smallest failing run.
    pub after: Size,
    /// Candidates run.
    pub tries: u32,
    /// The smallest failing scenario, as TOML (with `first_seed` pinned).
    pub scenario: String,
    /// Its findings.
    pub findings: Vec<String>,
    /// Whether the hardened store passes the shrunk scenario (for a variant other than
    /// `hardened`; the file then expects it to).
    pub hardened_passes: bool,
}

/// Shrinks seed `seed` of the scenario at `path` under `variant`; `progress` hears of each
/// accepted step.
pub fn shrink(
    path: &Path,
    variant: Variant,
    seed: u64,
    opts: &RunOptions,
    mut progress: impl FnMut(&str),
) -> Result<Shrunk> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadScenario {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| Error::Scenario {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let run = |table: &Table| -> Result<(Outcome, Scenario)> {
        let scenario = Scenario::parse(&toml::to_string(table).expect("a table"), path)?;
        Ok((run_seed(&scenario, variant, seed, opts)?, scenario))
    };
    let (first, scenario) = run(&table)?;
    let Some(kind) = FailureKind::of(&first) else {
        return Err(Error::Usage(format!(
            "seed {seed} of {} passes under {variant}: nothing to shrink",
            path.display()
        )));
    };
    let before = size(&first, &scenario);
    let mut best = (first, scenario);
    let mut tries = 0;
    'rounds: loop {
        for (what, candidate) in candidates(&table) {
            tries += 1;
            // A candidate that is no valid scenario (say, no worker left, or a fault left
            // aimed at a dropped worker's kind) is skipped.
            let Ok((outcome, scenario)) = run(&candidate) else {
                continue;
            };
            if FailureKind::of(&outcome) == Some(kind) {
                progress(&format!("{what}: still {kind:?}, {} steps", outcome.steps));
                table = candidate;
                best = (outcome, scenario);
                continue 'rounds;
            }
        }
        break;
    }
    let (outcome, scenario) = best;
    let hardened_passes = variant != Variant::Hardened
        && !run_seed(&scenario, Variant::Hardened, seed, opts)?.failed();
    let mut expect = Table::new();
    // The kind it was shrunk for, in its one seed; hardened passes it whole.
    let mut kind_rate = Table::new();
    kind_rate.insert(kind.name().into(), Value::Float(1.0));
    let mut pinned_kind = Table::new();
    pinned_kind.insert("min_rate".into(), Value::Table(kind_rate));
    expect.insert(variant.to_string(), Value::Table(pinned_kind));
    if hardened_passes {
        let mut clean = Table::new();
        clean.insert("max_failure_rate".into(), Value::Float(0.0));
        expect.insert("hardened".into(), Value::Table(clean));
    }
    table.insert("expect".into(), Value::Table(expect));
    if let Some(name) = opts.strategy {
        table.insert("strategy".into(), Value::String(name.name().into()));
    }
    if let Some(depth) = opts.pct_depth {
        table.insert("pct_depth".into(), Value::Integer(i64::from(depth)));
    }
    Ok(Shrunk {
        kind,
        before,
        after: size(&outcome, &scenario),
        tries,
        scenario: pinned(table, seed, path),
        findings: outcome.findings.lines(),
        hardened_passes,
    })
}

fn size(outcome: &Outcome, scenario: &Scenario) -> Size {
    Size {
        steps: outcome.steps,
        acked: outcome.acked,
        workers: scenario.processes().len(),
        budget_ms: scenario.budget_ms,
    }
}

/// Every one-step reduction of `table`, with what it changed.
fn candidates(table: &Table) -> Vec<(String, Table)> {
    let mut c = Candidates {
        table,
        out: Vec::new(),
    };
    c.drop_workers();
    c.cut_budget();
    c.cut_timed_faults();
    c.drop_exact_faults();
    c.simplify_workers();
    c.halve_tasks();
    c.out
}

/// The one-step reductions of a scenario table, in the order they are tried.
struct Candidates<'a> {
    table: &'a Table,
    out: Vec<(String, Table)>,
}

impl Candidates<'_> {
    /// Adds the copy of the table that `f` edits, when it changed anything.
    fn edit(&mut self, what: String, f: &dyn Fn(&mut Table) -> bool) {
        let mut t = self.table.clone();
        if f(&mut t) {
            self.out.push((what, t));
        }
    }

    /// The number of `[[workers]]` entries.
    fn workers(&self) -> usize {
        self.table
            .get("workers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// Each worker dropped.
    fn drop_workers(&mut self) {
        let workers = self.workers();
        for i in 0..workers {
            self.edit(format!("drop worker {i}"), &|t| {
                array(t, "workers").is_some_and(|w| {
                    w.remove(i);
                    true
                })
            });
        }
    }

    /// The budget halved, or cut by a quarter.
    fn cut_budget(&mut self) {
        let table = self.table;
        let budget = table
            .get("budget_ms")
            .and_then(Value::as_integer)
            .unwrap_or(crate::scenario::defaults::budget_ms() as i64);
        for (what, to) in [
            ("halve the budget", budget / 2),
            ("cut the budget by a quarter", budget * 3 / 4),
        ] {
            if to >= 1 && to < budget {
                self.edit(format!("{what} to {to} ms"), &|t| {
                    t.insert("budget_ms".into(), Value::Integer(to));
                    true
                });
            }
        }
    }

    /// The timed kills, stalls and power cuts cut to none, or halved.
    fn cut_timed_faults(&mut self) {
        for (section, key) in [("faults", "kills"), ("faults", "stalls"), ("power", "cuts")] {
            let n = entry(self.table, section, key)
                .and_then(Value::as_integer)
                .unwrap_or(0);
            for to in [0, n / 2] {
                if to < n {
                    self.edit(format!("{section}.{key} {n} -> {to}"), &|t| {
                        section_mut(t, section).insert(key.into(), Value::Integer(to));
                        true
                    });
                }
            }
        }
    }

    /// Each phase kill and I/O fault dropped.
    fn drop_exact_faults(&mut self) {
        for key in ["phase_kills", "io"] {
            let n = entry(self.table, "faults", key)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                self.edit(format!("drop faults.{key}[{i}]"), &|t| {
                    section_mut(t, "faults")
                        .get_mut(key)
                        .and_then(Value::as_array_mut)
                        .is_some_and(|a| {
                            a.remove(i);
                            true
                        })
                });
            }
        }
    }

    /// Each worker without in-transaction overlap, or with one connection.
    fn simplify_workers(&mut self) {
        let workers = self.workers();
        for i in 0..workers {
            for (key, value) in [
                ("overlap", Value::Float(0.0)),
                ("connections", Value::Integer(1)),
            ] {
                self.edit(format!("workers[{i}].{key} = {value}"), &|t| {
                    let Some(w) = array(t, "workers")
                        .and_then(|w| w.get_mut(i))
                        .and_then(Value::as_table_mut)
                    else {
                        return false;
                    };
                    if w.get(key).is_none_or(|v| *v == value) {
                        return false;
                    }
                    w.insert(key.into(), value.clone());
                    true
                });
            }
        }
    }

    /// The seed tasks halved.
    fn halve_tasks(&mut self) {
        let table = self.table;
        let tasks = table
            .get("board")
            .and_then(|b| b.get("tasks"))
            .and_then(Value::as_integer)
            .unwrap_or(0);
        if tasks > 1 {
            self.edit(format!("board.tasks {tasks} -> {}", tasks / 2), &|t| {
                t.entry("board")
                    .or_insert_with(|| Value::Table(Table::new()))
                    .as_table_mut()
                    .is_some_and(|b| {
                        b.insert("tasks".into(), Value::Integer(tasks / 2));
                        true
                    })
            });
        }
    }
}

fn array<'a>(t: &'a mut Table, key: &str) -> Option<&'a mut Vec<Value>> {
    t.get_mut(key).and_then(Value::as_array_mut)
}

/// The value of `<section>.<key>` in `t`.
fn entry<'a>(t: &'a Table, section: &str, key: &str) -> Option<&'a Value> {
    t.get(section)
        .and_then(Value::as_table)
        .and_then(|f| f.get(key))
}

/// The table `<section>` of `t` (`faults`, `power`), made if absent.
fn section_mut<'a>(t: &'a mut Table, section: &str) -> &'a mut Table {
    t.entry(section)
        .or_insert_with(|| Value::Table(Table::new()))
        .as_table_mut()
        .expect("a section is a table in a valid scenario")
}

/// The shrunk scenario as a file: one seed, pinned, deterministic.
fn pinned(mut table: Table, seed: u64, from: &Path) -> String {
    table.insert("seeds".into(), Value::Integer(1));
    table.insert("first_seed".into(), Value::Integer(seed as i64));
    table.insert("pin_seeds".into(), Value::Boolean(true));
    table.insert("schedule".into(), Value::String("deterministic".into()));
    let name = from
        .file_name()
        .map_or_else(|| PathBuf::from("?"), PathBuf::from);
    format!(
        "# Shrunk by `kanban-harness shrink` from {} seed {seed}.\n{}",
        name.display(),
        toml::to_string(&table).expect("a table")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A power cut's lost suffix is a failure to shrink, below a lost ack in the middle.
    #[test]
    fn a_lost_suffix_is_a_failure_kind_of_its_own() {
        let mut outcome = Outcome::default();
        assert_eq!(FailureKind::of(&outcome), None);
        outcome.findings.lost_suffix.push("a suffix".into());
        assert_eq!(FailureKind::of(&outcome), Some(FailureKind::LostSuffix));
        assert_eq!(FailureKind::LostSuffix.name(), "lost_suffix");
        outcome.findings.lost_acked.push("a hole".into());
        assert_eq!(FailureKind::of(&outcome), Some(FailureKind::LostAcked));
    }

    #[test]
    fn power_cuts_are_halved_or_dropped_and_power_cut_faults_dropped() {
        let table: Table = r#"
            [power]
            cuts = 4
            [[faults.io]]
            phase = "commit"
            file = "wal"
            op = "write"
            nth = [1, 30]
            action = "power-cut"
        "#
        .parse()
        .unwrap();
        let cands = candidates(&table);
        let cuts = |c: &Table| entry(c, "power", "cuts").and_then(Value::as_integer);
        let whats: Vec<(&str, Option<i64>)> =
            (cands.iter()).map(|(w, c)| (w.as_str(), cuts(c))).collect();
        assert!(whats.contains(&("power.cuts 4 -> 0", Some(0))), "{whats:?}");
        assert!(whats.contains(&("power.cuts 4 -> 2", Some(2))), "{whats:?}");
        let (_, dropped) = (cands.iter())
            .find(|(w, _)| w == "drop faults.io[0]")
            .expect("the power-cut fault dropped");
        assert_eq!(
            entry(dropped, "faults", "io")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(0)
        );
        assert_eq!(cuts(dropped), Some(4));
    }
}
