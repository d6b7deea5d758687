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
//!
//! Layer: maintenance (the layer order is in `store/ARCHITECTURE.md`).

use crate::check::{CheckReport, index_only};
use crate::damage_policy::{DamagePolicy, OnDamage};
use crate::repair::RepairReport;

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

/// The outcome of the gateway's start-up check.
#[derive(Clone, Debug)]
pub struct StartCheck {
    /// What the check found (damage included, when the policy says go on).
    pub check: CheckReport,
    /// The repair the policy ran, if any.
    pub repaired: Option<RepairReport>,
}
