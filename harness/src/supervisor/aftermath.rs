//! What the supervisor does with a seed's folder once every worker is dead, before and
//! around the checks.
//!
//! The checks must judge the board as the workers left it, and what an engineer later opens
//! must be that board too. So, in this order:
//! 1. [`AsLeft::take`] copies the folder's files aside (only when artifacts are wanted) and
//!    hashes the db and WAL bytes (deterministic mode): both before anything opens the board;
//! 2. with `repair_after`, [`FinalRepair::run`] checks the board (read-only), repairs it as an
//!    operator would, and says whether the damage it found was the scenario's own;
//! 3. the checks run on a connection that changes nothing ([`crate::check::open_as_left`]);
//! 4. a failing seed's copy from step 1 becomes its artifacts.

use std::path::{Path, PathBuf};

use kanban_store::{CheckLevel, CheckReport, Role, StoreConfig};
use serde::{Deserialize, Serialize};

use crate::check::{self, Findings, Ledger};
use crate::error::{Error, Result};
use crate::ledger::{Mark, Op};
use crate::scenario::{Scenario, Variant};

/// The folder's files as the workers left them.
pub(super) struct AsLeft {
    /// A copy of the seed folder's files, when artifacts may be kept.
    copy: Option<PathBuf>,
    /// sha256 of the db and WAL bytes, in deterministic mode.
    pub(super) digest: Option<String>,
}

impl AsLeft {
    /// Copies `dir`'s files into `dir/as-left/` when `copy`, and hashes the board's bytes
    /// when `digest`. Every worker is dead: nothing is live.
    pub(super) fn take(dir: &Path, db: &Path, copy: bool, digest: bool) -> Result<AsLeft> {
        let copy = match copy {
            true => Some(copy_files(dir, &dir.join("as-left"))?),
            false => None,
        };
        let digest = digest.then(|| db_digest(db));
        Ok(AsLeft { copy, digest })
    }

    /// Keeps the copy as the artifacts of `seed`, under `artifacts`.
    pub(super) fn keep(
        &self,
        artifacts: &Path,
        scenario: &Scenario,
        variant: Variant,
        seed: u64,
    ) -> Result<()> {
        let Some(copy) = &self.copy else {
            return Ok(());
        };
        let variant = variant.to_string().replace(':', "-");
        let dest = artifacts.join(format!("{}-{variant}-{seed}", scenario.name()));
        copy_files(copy, &dest).map(|_| ())
    }
}

/// Copies the regular files of `from` into `to` (created); returns `to`.
fn copy_files(from: &Path, to: &Path) -> Result<PathBuf> {
    let fail = |e| Error::system(format!("copying {} to {}", from.display(), to.display()), e);
    std::fs::create_dir_all(to).map_err(fail)?;
    for entry in std::fs::read_dir(from).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(fail)?;
        }
    }
    Ok(to.to_path_buf())
}

/// sha256 of the db and WAL files' bytes as the workers left them (a missing file hashes as
/// empty). In deterministic mode the same seed writes the same bytes.
fn db_digest(db: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for path in [db.to_path_buf(), db.with_extension("db-wal")] {
        hash.update(std::fs::read(&path).unwrap_or_default());
    }
    format!("{:x}", hash.finalize())
}

/// What the supervisor's repair after the run (`repair_after`) found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRepair {
    /// The findings of the check before the repair (empty: nothing to undo).
    pub found: Vec<String>,
    /// What the repair did (or why it failed).
    pub action: String,
    /// Whether what it found was damage the scenario injected and nobody undid: a repairer
    /// killed between its `Damage` and its next healthy `Repair`, the damage confined to
    /// indexes.
    pub injected: bool,
}

impl FinalRepair {
    /// Checks the board read-only, then repairs it, as an operator would after the crash (the
    /// repair also finishes one that was killed midway).
    pub(super) fn run(db: &Path, ledgers: &[Ledger]) -> FinalRepair {
        let before = match check::open_as_left(db) {
            Ok(conn) => kanban_store::check_connection(&conn, CheckLevel::Full),
            Err(e) => CheckReport {
                integrity: vec![format!("cannot open the board: {e}")],
                ..CheckReport::default()
            },
        };
        let action = match kanban_store::repair(db, &StoreConfig::new(Role::Gateway)) {
            Ok(report) => format!("{:?}", report.action),
            Err(e) => format!("failed: {e}"),
        };
        FinalRepair {
            injected: before.is_index_only() && injected_damage_left(ledgers),
            found: before.findings().collect(),
            action,
        }
    }

    /// A seed fails when the repair undid damage that was not the scenario's own: it would
    /// hide the damage from the checks that follow.
    pub(super) fn judge(&self, findings: &mut Findings) {
        if !self.found.is_empty() && !self.injected {
            findings.corrupt.push(format!(
                "damage that no repairer injected, undone by the repair after the run ({}): {}",
                self.action,
                self.found.join("; ")
            ));
        }
    }

    /// Whether the repair undid injected damage (for the report).
    pub fn undid_injected(&self) -> bool {
        !self.found.is_empty() && self.injected
    }
}

/// Whether some worker's last `Damage` has no healthy `Repair` after it in its ledger.
fn injected_damage_left(ledgers: &[Ledger]) -> bool {
    ledgers.iter().any(|ledger| {
        let Ledger::Binary(contents) = ledger else {
            return false;
        };
        let mut left = false;
        for r in &contents.records {
            match (r.op, r.mark) {
                (Op::Damage, Mark::Intent) => left = true,
                (Op::Repair, Mark::Ack) => left = false,
                _ => {}
            }
        }
        left
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Contents, Record};

    fn ledger(ops: &[(Op, Mark)]) -> Ledger {
        let records = ops
            .iter()
            .enumerate()
            .map(|(seq, &(op, mark))| Record {
                mark,
                op,
                worker: 3,
                incarnation: 0,
                seq: seq as u64,
                a: 0,
                b: 0,
                c: 0,
            })
            .collect();
        Ledger::Binary(Contents {
            records,
            ..Contents::default()
        })
    }

    #[test]
    fn damage_is_left_only_when_no_healthy_repair_followed_it() {
        use {Mark::*, Op::*};
        let left = |ops: &[(Op, Mark)]| injected_damage_left(&[ledger(ops)]);
        assert!(!left(&[]));
        assert!(left(&[(Damage, Intent)]));
        assert!(left(&[(Damage, Intent), (Damage, Ack), (Repair, Intent)]));
        assert!(!left(&[(Damage, Intent), (Repair, Intent), (Repair, Ack)]));
        assert!(left(&[(Repair, Ack), (Damage, Intent)]));
    }

    #[test]
    fn only_injected_index_damage_is_excused() {
        let repair = |found: &[&str], injected| FinalRepair {
            found: found.iter().map(|f| f.to_string()).collect(),
            action: "Reindexed".into(),
            injected,
        };
        let fails = |r: FinalRepair| {
            let mut findings = Findings::default();
            r.judge(&mut findings);
            !findings.corrupt.is_empty()
        };
        assert!(!fails(repair(&[], false)));
        assert!(!fails(repair(
            &["integrity: wrong # of entries in index i"],
            true
        )));
        assert!(fails(repair(
            &["integrity: wrong # of entries in index i"],
            false
        )));
        assert!(repair(&["x"], true).undid_injected());
        assert!(!repair(&[], true).undid_injected());
    }
}
