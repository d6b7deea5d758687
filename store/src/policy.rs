//! What the gateway does about damage its start-up check finds.
//!
//! Upstream's health guard reacted to every failed check by copying the board aside and
//! going on, hundreds of times a minute, while nothing ever fixed the board. Here the
//! gateway checks once at start-up ([`crate::Board::check_at_start`], R7) and acts by
//! the kind of damage:
//! - damage confined to indexes is repaired at once by default: `REINDEX` rebuilds the
//!   indexes from the tables, so nothing can be lost (a `REINDEX` that fails, as over
//!   two rows with one key under a UNIQUE index, is damage beyond indexes);
//! - anything else (a damaged table, broken references or invariants) is reported and the
//!   gateway stops by default: a rebuild may lose rows, so an operator decides, with
//!   `kanban-db repair`.

use serde::Deserialize;

use crate::check::CheckReport;
use crate::repair::RepairReport;

/// One reaction to damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDamage {
    /// Repair it with the board to itself ([`crate::repair`]); other processes let go and
    /// reopen after.
    Repair,
    /// Report it and stop: the check gives [`crate::Error::Corrupt`].
    Stop,
    /// Report it and go on (what upstream's gateway did).
    Continue,
}

/// The gateway's reaction per kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DamagePolicy {
    /// Damage confined to indexes (default: [`OnDamage::Repair`]).
    pub index_only: OnDamage,
    /// Any other finding (default: [`OnDamage::Stop`]).
    pub other: OnDamage,
}

impl DamagePolicy {
    /// Upstream's gateway: report and go on, whatever the damage.
    pub const UPSTREAM: DamagePolicy = DamagePolicy {
        index_only: OnDamage::Continue,
        other: OnDamage::Continue,
    };

    /// The reaction to what `report` found; `None` for a healthy board.
    pub fn reaction(&self, report: &CheckReport) -> Option<OnDamage> {
        match (report.is_ok(), index_only(report)) {
            (true, _) => None,
            (false, true) => Some(self.index_only),
            (false, false) => Some(self.other),
        }
    }
}

impl Default for DamagePolicy {
    fn default() -> Self {
        DamagePolicy {
            index_only: OnDamage::Repair,
            other: OnDamage::Stop,
        }
    }
}

/// Whether every finding of the check is about an index's entries, not a table, a
/// reference or an invariant: what `REINDEX` fixes without losing anything, if it can.
/// A `non-unique entry in index` may be a stale entry (then `REINDEX` fixes it) or two
/// rows with one key (then `REINDEX` fails, changing nothing): the check cannot tell them
/// apart, so the repair tries, and takes a failed `REINDEX` for damage beyond indexes.
pub(crate) fn index_only(report: &CheckReport) -> bool {
    report.foreign_keys.is_empty()
        && report.invariants.is_empty()
        && !report.integrity.is_empty()
        && report.integrity.iter().all(|line| {
            line.starts_with("wrong # of entries in index")
                || (line.starts_with("row ") && line.contains(" missing from index "))
                || line.starts_with("non-unique entry in index")
        })
}

/// The outcome of the gateway's start-up check.
#[derive(Clone, Debug)]
pub struct StartCheck {
    /// What the check found (damage included, when the policy says go on).
    pub check: CheckReport,
    /// The repair the policy ran, if any.
    pub repaired: Option<RepairReport>,
}
