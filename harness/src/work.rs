//! Work floors: a seed in which the workers did (almost) nothing is not a pass.
//!
//! A store whose every write fails with a "legitimate" error, or whose workers cannot even
//! open the board and are restarted in a loop, loses nothing and corrupts nothing: every
//! other check passes it. So each seed is also judged by the work it did:
//! - every worker kind must acknowledge at least its floor of commits ([`default_floor`],
//!   overridable per variant with `min_acked` in `[expect.<variant>]`);
//! - an error a correct store returns (`Busy`, `DiskFull`...) is *expected* only where the
//!   scenario has something that can cause it ([`allowed_errors`]); elsewhere it is a
//!   `worker_error`. Workers ledger each expected error with its kind, and the report counts
//!   them per kind;
//! - a `hardened` worker is restarted only after something killed it: restarts above the
//!   kills plus the fired faults are a crash loop. Each worker process may also fail to
//!   start twice (a repair that holds the board past the opener's lock timeout, measured:
//!   up to 3 such restarts a seed in `kill-during-repair`); a crash loop restarts every
//!   few milliseconds, dozens of times a seed.

use std::collections::{BTreeMap, BTreeSet};

use crate::fault::{ErrorKind, IoAction};
use crate::scenario::{Scenario, Variant, WorkerKind};

/// The expected errors a scenario's faults and workload can cause, under `variant`:
/// - `RunNotRunning`, `NoSuchTask`, `InvalidMove`: always (races between the workers'
///   own operations, answered correctly by the store);
/// - `Busy`, `MaintenanceBusy`: stalls, an I/O `stop`, a repairer, or several worker
///   processes contending for the write lock;
/// - `DiskFull`: an I/O fault with action `full`; `IoFailure`: an I/O fault that fails
///   with an error code;
/// - `Unavailable`: single-writer mode with kills or stalls (or faults) that take the
///   gateway away;
/// - `GatewayRunning`: more than one gateway process;
/// - `UsedAcrossFork`: an agent that forks (`fork_every`);
/// - `Corrupt`: a board that starts damaged beyond indexes (`board.damage`), until a
///   repair rebuilds it;
/// - and whatever `[expect.<variant>] allow_errors` adds (with a comment saying why).
pub fn allowed_errors(scenario: &Scenario, variant: Variant) -> BTreeSet<ErrorKind> {
    use ErrorKind::*;
    let f = &scenario.faults;
    let processes = scenario.processes();
    let count = |kind: WorkerKind| processes.iter().filter(|w| w.kind == kind).count();
    let stops = f.io.iter().any(|io| io.action == IoAction::Stop);
    let kills = f.kills > 0 || !f.phase_kills.is_empty() || !f.io.is_empty();
    let mut allowed: BTreeSet<ErrorKind> = [RunNotRunning, NoSuchTask, InvalidMove].into();
    let mut allow = |kinds: &[ErrorKind], when: bool| {
        if when {
            allowed.extend(kinds);
        }
    };
    allow(
        &[Busy, MaintenanceBusy],
        f.stalls > 0 || stops || count(WorkerKind::Repairer) > 0 || processes.len() > 1,
    );
    allow(
        &[DiskFull],
        f.io.iter().any(|io| io.action == IoAction::Full),
    );
    allow(
        &[IoFailure],
        f.io.iter().any(|io| io.action.error_code().is_some()),
    );
    allow(
        &[Unavailable],
        scenario.single_writer && (kills || f.stalls > 0),
    );
    allow(&[GatewayRunning], count(WorkerKind::Gateway) > 1);
    allow(
        &[UsedAcrossFork],
        processes.iter().any(|w| w.fork_every > 0),
    );
    allow(&[Corrupt], scenario.board.damage.beyond_indexes());
    if let Some(expect) = scenario.expect.get(&variant.to_string()) {
        allowed.extend(&expect.allow_errors);
    }
    allowed
}

/// The acknowledged commits per seed a worker kind must reach by default: every kind but
/// the repairer (which commits no ledgered writes) acknowledges tens of commits in a 300 ms
/// seed of every shipped hardened scenario, so one that acknowledges none did nothing.
pub fn default_floor(kind: WorkerKind) -> u64 {
    match kind {
        WorkerKind::Repairer => 0,
        WorkerKind::Gateway
        | WorkerKind::Dashboard
        | WorkerKind::Agent
        | WorkerKind::Command
        | WorkerKind::Flooder => 1,
    }
}

/// The work findings of one seed: each kind of worker the scenario runs below its floor
/// (`acked` per kind name), and, for `hardened`, restarts above `kills_and_fired` plus two
/// per worker process (a crash loop).
pub fn findings(
    scenario: &Scenario,
    variant: Variant,
    acked: &BTreeMap<String, u64>,
    restarts: u32,
    kills_and_fired: u32,
) -> Vec<String> {
    let floors = scenario
        .expect
        .get(&variant.to_string())
        .map(|e| &e.min_acked);
    let kinds: BTreeSet<WorkerKind> = scenario.processes().iter().map(|w| w.kind).collect();
    let mut out = Vec::new();
    for kind in kinds {
        let floor = floors
            .and_then(|f| f.get(&kind).copied())
            .unwrap_or_else(|| default_floor(kind));
        let n = acked.get(kind.name()).copied().unwrap_or(0);
        if n < floor {
            out.push(format!(
                "worker kind {} acked {n} commits (floor {floor})",
                kind.name()
            ));
        }
    }
    let bound = kills_and_fired + 2 * scenario.processes().len() as u32;
    if variant == Variant::Hardened && restarts > bound {
        out.push(format!(
            "{restarts} restarts > {kills_and_fired} kills and fired faults + 2 per worker: a crash loop"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "description = \"t\"\n[[workers]]\nkind = \"gateway\"\n{extra}\n[expect.hardened]\nmax_failure_rate = 0.0\n"
        );
        Scenario::parse(&text, Path::new("t.toml")).expect("valid")
    }

    /// A lone gateway without faults can cause none of the storage errors; each fault or
    /// contention brings in exactly the errors it can cause.
    #[test]
    fn expected_errors_are_allowed_only_where_the_scenario_can_cause_them() {
        use ErrorKind::*;
        let lone = allowed_errors(&scenario(""), Variant::Hardened);
        for kind in [
            Busy,
            MaintenanceBusy,
            DiskFull,
            IoFailure,
            Unavailable,
            GatewayRunning,
        ] {
            assert!(!lone.contains(&kind), "{kind:?} allowed for a lone gateway");
        }
        assert!(lone.contains(&InvalidMove));
        let stalls = allowed_errors(&scenario("[faults]\nstalls = 1\n"), Variant::Hardened);
        assert!(stalls.contains(&Busy) && !stalls.contains(&DiskFull));
        let two = allowed_errors(
            &scenario("[[workers]]\nkind = \"dashboard\"\n"),
            Variant::Hardened,
        );
        assert!(two.contains(&Busy) && !two.contains(&Unavailable));
        let full = scenario(
            "[[faults.io]]\nphase = \"commit\"\nfile = \"wal\"\nop = \"write\"\naction = \"full\"\n",
        );
        let full = allowed_errors(&full, Variant::Hardened);
        assert!(full.contains(&DiskFull) && full.contains(&IoFailure));
        let declared = Scenario::parse(
            "description = \"t\"\n[[workers]]\nkind = \"gateway\"\n[expect.hardened]\nallow_errors = [\"Busy\"]\n",
            Path::new("t.toml"),
        )
        .expect("valid");
        assert!(allowed_errors(&declared, Variant::Hardened).contains(&Busy));
        assert!(!allowed_errors(&declared, Variant::Naive).contains(&Busy));
    }

    /// A kind below its floor, and a hardened crash loop, are findings; a floor can be
    /// lowered per variant.
    #[test]
    fn idle_workers_and_crash_loops_are_findings() {
        let s = scenario("");
        let none = BTreeMap::new();
        let some: BTreeMap<String, u64> = [("gateway".to_string(), 3)].into();
        assert_eq!(
            findings(&s, Variant::Hardened, &none, 0, 0),
            ["worker kind gateway acked 0 commits (floor 1)"]
        );
        assert!(findings(&s, Variant::Hardened, &some, 2, 0).is_empty());
        assert_eq!(findings(&s, Variant::Hardened, &some, 60, 1).len(), 1);
        assert!(findings(&s, Variant::Naive, &some, 60, 1).is_empty());
        let lowered = Scenario::parse(
            "description = \"t\"\n[[workers]]\nkind = \"gateway\"\n[expect.hardened]\nmin_acked = { gateway = 5 }\n",
            Path::new("t.toml"),
        )
        .expect("valid");
        assert_eq!(
            findings(&lowered, Variant::Hardened, &some, 0, 0),
            ["worker kind gateway acked 3 commits (floor 5)"]
        );
    }
}
