//! The hazard detection matrix: for every hazard switch of the store, the scenario that
//! should expose it, run under `hazard:<name>` until it is caught or the seeds run out.
//!
//! Each hazard is judged by what it breaks: most lose acknowledged commits or corrupt the
//! board (`damage`); the unbounded backups show as more backup files than the hardened cap
//! (`backups`); a health check on connect that refuses a damaged board shows as workers that
//! cannot work (`worker-error`, where the hardened store has none). Some hazards cannot be
//! exposed by killing processes at all, and the table says so instead of hiding them:
//! `sync-off` needs a power loss or an OS crash; `autocheckpoint-everywhere`,
//! `journal-toggle-on-error` and `connect-per-operation` are harmless on their own while
//! every lock holds (the first two are guarded by the store's rule tests; the last two are
//! part of `naive`, whose lock loss makes them bite).

use kanban_store::hazards::Hazard;
use serde::Serialize;

use crate::report::RunSummary;

/// How a hazard shows in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Detection {
    /// A seed with corruption or a lost acknowledged commit.
    Damage,
    /// More backup files than the hardened cap (5).
    Backups,
    /// A seed where workers met errors a correct store does not return.
    WorkerError,
    /// Process kills cannot show it (the reason is in [`row`]).
    NotByKills,
}

/// The scenario and the detection of each hazard; for `NotByKills`, the reason.
pub fn row(hazard: Hazard) -> (&'static str, Detection, &'static str) {
    use Detection::*;
    match hazard {
        Hazard::RawHeaderPeek => ("issue-33169", Damage, ""),
        Hazard::CopySidecarsOnCheck => ("health-checks", Damage, ""),
        Hazard::IntegrityOnConnect => ("backup-storm", WorkerError, ""),
        Hazard::IntegrityOncePerProcess => ("backup-storm", WorkerError, ""),
        Hazard::JournalToggleOnError => (
            "io-errors",
            NotByKills,
            "SQLite refuses to leave WAL while other sessions are open, and toggling a WAL board with every lock held is harmless; caught by the R4 rule test",
        ),
        Hazard::ReplaceWhileOpen => ("backup-storm", Damage, ""),
        Hazard::DeleteSidecarsAfterCrash => ("restart-storm", Damage, ""),
        Hazard::UnboundedBackups => ("backup-storm", Backups, ""),
        Hazard::AutocheckpointEverywhere => (
            "restart-storm",
            NotByKills,
            "harmless while locks hold; caught by the R6 rule test",
        ),
        Hazard::HardLinkAlias => ("issue-33169", Damage, ""),
        Hazard::ConnectionAcrossFork => ("fork-agent", Damage, ""),
        Hazard::JournalOff => ("torn-commit", Damage, ""),
        Hazard::SyncOff => (
            "kill-during-commit",
            NotByKills,
            "bites only on power loss or an OS crash, which killing processes cannot show",
        ),
        Hazard::ConnectPerOperation => (
            "issue-33169",
            NotByKills,
            "harmless while locks hold; part of naive",
        ),
        Hazard::InitOnlyFlock => (
            "issue-33169",
            NotByKills,
            "harmless alone: SQLite's own locks still serialise the sessions; part of naive",
        ),
        Hazard::PageCountPeekAfterCommit => (
            "issue-33169",
            NotByKills,
            "harmless alone: it drops only the db file's locks, between transactions; part of naive",
        ),
    }
}

/// Whether `run` shows the hazard the way `detection` says.
pub fn detected(detection: Detection, run: &RunSummary) -> bool {
    match detection {
        Detection::Damage => run.damaged > 0,
        Detection::Backups => run.backups_max > 5,
        Detection::WorkerError => run.worker_error > 0,
        Detection::NotByKills => false,
    }
}

/// One line of the matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// The hazard's name.
    pub hazard: String,
    /// The scenario that exposes it.
    pub scenario: String,
    /// How it shows.
    pub detection: Detection,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds that failed (any finding).
    pub failed: u64,
    /// The first seed that showed the hazard.
    pub first_failing_seed: Option<u64>,
    /// Whether process kills can show it at all.
    pub detectable: bool,
    /// Whether it was detected.
    pub detected: bool,
    /// The failure kinds seen (or why it is not detectable).
    pub kinds: String,
}

/// The matrix as a table (hazard, scenario, seeds, failed, first failing seed, verdict);
/// without numbers, only what must not change from run to run (no counts, no kinds).
pub fn table(lines: &[Line], with_numbers: bool) -> String {
    let mut out = format!(
        "{:<28} {:<22} {:>6} {:>6} {:>6}  {}\n",
        "hazard", "scenario", "seeds", "failed", "first", "verdict"
    );
    for l in lines {
        let verdict = match (l.detectable, l.detected) {
            (false, _) => format!("not detectable by process kills: {}", l.kinds),
            (true, true) if with_numbers => format!("detected ({})", l.kinds),
            (true, true) => "detected".to_string(),
            (true, false) => "NOT DETECTED".to_string(),
        };
        let num = |n: Option<u64>| match (with_numbers, n) {
            (true, Some(n)) => n.to_string(),
            (true, None) | (false, _) => "-".to_string(),
        };
        out += &format!(
            "{:<28} {:<22} {:>6} {:>6} {:>6}  {verdict}\n",
            l.hazard,
            l.scenario,
            num(Some(l.seeds).filter(|_| l.detectable)),
            num(Some(l.failed).filter(|_| l.detectable)),
            num(l.first_failing_seed),
        );
    }
    out
}

/// The failure kinds a run showed, for the table.
pub fn kinds(run: &RunSummary) -> String {
    let mut kinds = Vec::new();
    for (n, name) in [
        (run.corrupt, "corrupt"),
        (run.lost_acked, "lost_acked"),
        (run.invariant, "invariant"),
        (run.worker_error, "worker_error"),
    ] {
        if n > 0 {
            kinds.push(name.to_string());
        }
    }
    if run.backups_max > 5 {
        kinds.push(format!("{} backups", run.backups_max));
    }
    kinds.join(", ")
}
