//! The hazard detection matrix: for every hazard switch of the store, the scenario that
//! should expose it, run under `hazard:<name>` until it is caught or the seeds run out.
//!
//! Every row runs the same seeds under `hardened` as its control, and the control must be
//! clean: a verdict that the hardened store would earn too says nothing about the hazard
//! (`backup-storm`, whose board starts damaged, once "detected" `replace-while-open` with
//! the very damage hardened showed). A hazard is detected only by what the control did not
//! show: failure kinds it had none of, or more backups than it kept (and than the cap). A
//! row whose control fails is an error of the matrix, never a detection. A seed in which
//! the control did no work (the machine's load starved it of time) judges nothing: the
//! pair is left out of both sides and counted (`starved`).
//!
//! Each hazard is judged by what it breaks: most lose acknowledged commits or corrupt the
//! board (`damage`); the unbounded backups show as more backup files than the hardened cap
//! (`backups`); a health check on connect that refuses a damaged board shows as workers that
//! cannot work (`worker-error`, where the hardened store has none). Some hazards cannot be
//! exposed by killing processes at all, and the table says so instead of hiding them
//! (`sync-off` and `no-dir-fsync` need a power loss, which the page-cache model's cuts
//! give them: `power-cut-*` scenarios); `autocheckpoint-everywhere`,
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
    /// One effect on the board more than once (a retried request applied twice).
    Duplicate,
    /// A rebuilt board without a whole quarantine copy of what it replaced.
    Quarantine,
    /// Process kills cannot show it (the reason is in [`row`]).
    NotByKills,
}

/// The scenario and the detection of each hazard; for `NotByKills`, the reason. Each
/// scenario is one where `hardened` is clean.
pub fn row(hazard: Hazard) -> (&'static str, Detection, &'static str) {
    use Detection::*;
    match hazard {
        Hazard::RawHeaderPeek => ("issue-33169", Damage, ""),
        // A request queued behind a stalled gateway past the client's deadline is sent
        // again; without the ids both copies are applied.
        Hazard::ForgetRequestIds => ("single-writer-retries", Duplicate, ""),
        Hazard::CopySidecarsOnCheck => ("health-checks", Damage, ""),
        // The check on connect refuses the damaged board before the gateway's repair.
        Hazard::IntegrityOnConnect => ("health-guard", WorkerError, ""),
        Hazard::IntegrityOncePerProcess => ("health-guard", WorkerError, ""),
        Hazard::JournalToggleOnError => (
            "io-errors",
            NotByKills,
            "SQLite refuses to leave WAL while other sessions are open, and toggling a WAL board with every lock held is harmless; caught by the R4 rule test",
        ),
        // The dashboards' health checks see the damage before the gateway repairs it (and
        // the guard renames a rebuilt board over it, or keeps a backup each time).
        Hazard::ReplaceWhileOpen => ("health-guard", Damage, ""),
        Hazard::DeleteSidecarsAfterCrash => ("restart-storm", Damage, ""),
        Hazard::UnboundedBackups => ("health-guard", Backups, ""),
        Hazard::AutocheckpointEverywhere => (
            "restart-storm",
            NotByKills,
            "harmless while locks hold; caught by the R6 rule test",
        ),
        Hazard::HardLinkAlias => ("issue-33169", Damage, ""),
        // The repair through the symlink rebuilds while sessions opened through the target
        // write: what they commit meanwhile is overwritten.
        Hazard::RawPathSiblings => ("symlinked-board", Damage, ""),
        Hazard::ConnectionAcrossFork => ("fork-agent", Damage, ""),
        Hazard::JournalOff => ("torn-commit", Damage, ""),
        // Power cuts through the page-cache model: with no sync, acknowledged commits are
        // only in the page cache, and a cut takes them (or tears the WAL).
        Hazard::SyncOff => ("power-cut-during-commit", Damage, ""),
        // A cut rolls back the commits since the WAL's last sync: a lost suffix.
        Hazard::SyncNormal => ("power-cut-during-commit", Damage, ""),
        // A cut after the rebuild takes the unsynced name of its quarantine copy away.
        Hazard::NoDirFsync => ("power-cut-during-repair", Quarantine, ""),
        // A checkpoint copies WAL frames into the db without syncing it; the next writer
        // starts the WAL over, and a cut after that loses the pages only the WAL held. Not
        // `power-cut-during-checkpoint`: its cuts land in the first checkpoint's first few
        // db writes, before any WAL started over (0 of 200 seeds damaged there).
        Hazard::NosyncCheckpoint => ("power-cut-storm", Damage, ""),
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

/// The hardened store's cap on backup and quarantine files.
const BACKUP_CAP: usize = 5;

impl Detection {
    /// The finding kinds that show the hazard.
    fn kinds(self) -> &'static [&'static str] {
        match self {
            Detection::Damage => &["corrupt", "lost_acked", "lost_suffix", "lost_after_read"],
            Detection::WorkerError => &["worker_error", "work"],
            Detection::Duplicate => &["duplicate"],
            Detection::Quarantine => &["quarantine"],
            Detection::Backups | Detection::NotByKills => &[],
        }
    }
}

/// A row's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The hazard run showed what the (clean) control did not.
    Detected,
    /// It did not.
    NotDetected,
    /// The control failed: the row's scenario cannot judge the hazard.
    ControlNotClean,
    /// Process kills cannot show it.
    NotByKills,
}

/// Judges a hazard `run` against its `control` (the same seeds under `hardened`).
pub fn judge(control: &RunSummary, run: &RunSummary, detection: Detection) -> Verdict {
    if detection == Detection::NotByKills {
        return Verdict::NotByKills;
    }
    if control.failed > 0 || !control.errors.is_empty() {
        return Verdict::ControlNotClean;
    }
    let new_kinds = !new_kinds(control, run, detection).is_empty();
    let backups =
        detection == Detection::Backups && run.backups_max > control.backups_max.max(BACKUP_CAP);
    if new_kinds || backups {
        Verdict::Detected
    } else {
        Verdict::NotDetected
    }
}

/// The kinds of `detection` that `run` showed and `control` did not.
fn new_kinds(control: &RunSummary, run: &RunSummary, detection: Detection) -> Vec<&'static str> {
    let seen = |r: &RunSummary, k: &str| r.seeds_with.get(k).is_some_and(|&n| n > 0);
    detection
        .kinds()
        .iter()
        .copied()
        .filter(|k| seen(run, k) && !seen(control, k))
        .collect()
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
    /// Seeds run (under the hazard, and the same under `hardened`).
    pub seeds: u64,
    /// Seeds that failed under the hazard (any finding).
    pub failed: u64,
    /// The first seed that failed under the hazard.
    pub first_failing_seed: Option<u64>,
    /// Control seeds run under `hardened`.
    pub control_seeds: u64,
    /// Control seeds that failed (a clean control has none).
    pub control_failed: u64,
    /// The failure kinds the control showed.
    pub control_kinds: String,
    /// Seed pairs left out because the control did no work in them (a seed the machine's
    /// load starved of time); counted in neither side.
    pub starved: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// The failure kinds seen under the hazard (or why it is not detectable).
    pub kinds: String,
}

/// The matrix as a table (hazard, scenario, seeds, failed, control failed, first failing
/// seed, verdict); without numbers, only what must not change from run to run.
pub fn table(lines: &[Line], with_numbers: bool) -> String {
    let mut out = format!(
        "{:<28} {:<22} {:>6} {:>6} {:>7} {:>6}  {}\n",
        "hazard", "scenario", "seeds", "failed", "control", "first", "verdict"
    );
    for l in lines {
        let verdict = match l.verdict {
            Verdict::NotByKills => format!("not detectable by process kills: {}", l.kinds),
            Verdict::Detected if with_numbers => {
                format!("detected (kinds not in control: {})", l.kinds)
            }
            Verdict::Detected => "detected (kinds not in control)".to_string(),
            Verdict::NotDetected => "NOT DETECTED".to_string(),
            Verdict::ControlNotClean if with_numbers => {
                format!("CONTROL NOT CLEAN ({})", l.control_kinds)
            }
            Verdict::ControlNotClean => "CONTROL NOT CLEAN".to_string(),
        };
        let detectable = l.verdict != Verdict::NotByKills;
        let num = |n: Option<u64>| match (with_numbers && detectable, n) {
            (true, Some(n)) => n.to_string(),
            _ => "-".to_string(),
        };
        out += &format!(
            "{:<28} {:<22} {:>6} {:>6} {:>7} {:>6}  {verdict}\n",
            l.hazard,
            l.scenario,
            num(Some(l.seeds)),
            num(Some(l.failed)),
            num(Some(l.control_failed)),
            num(l.first_failing_seed),
        );
    }
    out
}

/// The failure kinds a run showed, for the table (with its backups when above the cap).
pub fn kinds(run: &RunSummary) -> String {
    let mut kinds: Vec<String> = run
        .seeds_with
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, _)| k.clone())
        .collect();
    if run.backups_max > BACKUP_CAP {
        kinds.push(format!("{} backups", run.backups_max));
    }
    kinds.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Variant;

    fn summary(variant: Variant, seeds: u64, with: &[(&str, u64)], backups: usize) -> RunSummary {
        let mut r = RunSummary::new("s", variant);
        r.seeds = seeds;
        r.backups_max = backups;
        for &(k, n) in with {
            r.seeds_with.insert(k.into(), n);
            r.failed = r.failed.max(n);
        }
        r.damaged = with
            .iter()
            .filter(|(k, _)| ["corrupt", "lost_acked"].contains(k))
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        r
    }

    fn hazard() -> Variant {
        Variant::parse("hazard:replace-while-open").unwrap()
    }

    /// The row of `backup-storm` as it was: the control damaged in every seed, the hazard
    /// run damaged the same way. The old rule (`damaged > 0`) called it detected.
    #[test]
    fn a_control_that_shows_the_same_kinds_is_no_detection() {
        let control = summary(Variant::Hardened, 20, &[("corrupt", 20)], 4);
        let run = summary(hazard(), 20, &[("corrupt", 20)], 4);
        assert!(run.damaged > 0, "the old `detected()` said: detected");
        assert_eq!(
            judge(&control, &run, Detection::Damage),
            Verdict::ControlNotClean
        );
    }

    /// A row with its hazard switched off (the hardened variant in its place) is not
    /// detected: the run is the control.
    #[test]
    fn a_row_with_its_hazard_switched_off_is_not_detected() {
        let control = summary(Variant::Hardened, 20, &[], 2);
        for detection in [
            Detection::Damage,
            Detection::WorkerError,
            Detection::Backups,
        ] {
            assert_eq!(
                judge(&control, &control.clone(), detection),
                Verdict::NotDetected
            );
        }
    }

    /// Only the detection's own kinds, absent from the control, detect; backups must exceed
    /// both the control's and the cap.
    #[test]
    fn only_new_kinds_of_the_detection_detect() {
        let control = summary(Variant::Hardened, 20, &[], 4);
        let damaged = summary(hazard(), 20, &[("lost_acked", 3)], 4);
        let errors = summary(hazard(), 20, &[("worker_error", 3)], 4);
        assert_eq!(
            judge(&control, &damaged, Detection::Damage),
            Verdict::Detected
        );
        assert_eq!(
            judge(&control, &errors, Detection::Damage),
            Verdict::NotDetected
        );
        let suffix = summary(hazard(), 20, &[("lost_suffix", 3)], 4);
        assert_eq!(
            judge(&control, &suffix, Detection::Damage),
            Verdict::Detected,
            "a power cut's lost suffix is damage"
        );
        assert_eq!(
            judge(&control, &errors, Detection::WorkerError),
            Verdict::Detected
        );
        let five = summary(hazard(), 20, &[], 5);
        let nine = summary(hazard(), 20, &[], 9);
        assert_eq!(
            judge(&control, &five, Detection::Backups),
            Verdict::NotDetected
        );
        assert_eq!(
            judge(&control, &nine, Detection::Backups),
            Verdict::Detected
        );
        let busy = summary(Variant::Hardened, 20, &[], 9);
        assert_eq!(
            judge(&busy, &nine, Detection::Backups),
            Verdict::NotDetected
        );
    }
}
