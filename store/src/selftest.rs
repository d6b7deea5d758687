//! `kanban-db selftest`: can this build, on this machine and file system, run boards?
//!
//! It checks what the store relies on and an operator cannot see: a fixed SQLite (R1), a
//! local file system (see [`crate::filesystem`]; it fails on a network one whatever the
//! configuration would allow), OFD locks that hold (R3), WAL shared memory,
//! and one full dispatch cycle through every role, ending with a full check. Each step is
//! one line of the report; the first failure stops it.
//!
//! Layer: CLI (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;
use std::time::Duration;

use crate::check::CheckLevel;
use crate::config::{Role, StoreConfig, SystemClock};
use crate::error::{Error, Result};
use crate::lock::{LockFile, Mode};
use crate::types::{EventId, NewTask, RunOutcome};
use crate::{Board, version};

/// Runs the self-check on a new board in `folder`; returns the report's lines.
pub fn run(folder: &Path) -> Result<Vec<String>> {
    let mut report = Vec::new();
    version::check_linked()?;
    report.push(format!(
        "sqlite {}: free of the WAL-reset bug",
        rusqlite::version()
    ));

    let fs = crate::filesystem::of(folder)?;
    let db = folder.join("selftest-kanban.db");
    crate::filesystem::refuse_untrusted(&db, fs, false)?;
    report.push(format!("file system: {fs}, local"));

    let mut gateway = Board::create(&db, StoreConfig::new(Role::Gateway))?;
    report.push(format!("created {} in WAL mode", db.display()));

    // A session holds the shared lock during its operations only: hold one as it does.
    let session = LockFile::open(&db)?;
    session.lock_session(Mode::Shared, Duration::ZERO, &SystemClock)?;
    let probe = LockFile::open(&db)?;
    locks_hold(!probe.try_lock_session(Mode::Exclusive)?, &db)?;
    drop((session, probe));
    report.push("OFD locks hold: a session keeps maintenance out".into());

    let mut dashboard = Board::open(&db, Role::Dashboard)?;
    let mut worker = Board::open(&db, Role::Worker)?;
    let parent = dashboard.create_task(&NewTask {
        title: "selftest parent".into(),
        ..Default::default()
    })?;
    let child = dashboard.create_task(&NewTask {
        title: "selftest child".into(),
        parents: vec![parent],
        ..Default::default()
    })?;
    for expected in [parent, child] {
        gateway.recompute_ready()?;
        let claim = gateway.claim_next("selftest-agent")?;
        let claim = claim
            .filter(|c| c.task_id == expected)
            .ok_or(Error::Corrupt {
                path: db.clone(),
                detail: format!("task {expected} was not dispatched in order"),
            })?;
        worker.heartbeat(claim.run_id)?;
        worker.end_run(claim.run_id, RunOutcome::Completed, "ok")?;
    }
    let events = dashboard.events_since(EventId::default(), 100)?;
    gateway.advance_cursor(
        "selftest",
        events.last().map_or(EventId::default(), |e| e.id),
    )?;
    report.push(format!(
        "dispatched 2 tasks through gateway, dashboard and worker ({} events)",
        events.len()
    ));

    let checkpoint = gateway.checkpoint()?;
    report.push(format!(
        "checkpoint by the owner: {} of {} frames{}",
        checkpoint.checkpointed,
        checkpoint.wal_frames,
        if checkpoint.busy { " (busy)" } else { "" }
    ));
    let check = dashboard.check(CheckLevel::Full)?;
    if !check.is_ok() {
        return Err(Error::Corrupt {
            path: db,
            detail: check.findings().collect::<Vec<_>>().join("; "),
        });
    }
    report.push("full check: integrity, foreign keys and invariants ok".into());
    Ok(report)
}

/// The verdict on the lock probe: a maintenance lock taken while a session is open means
/// the file system does not enforce OFD locks. That is the environment, not damage.
fn locks_hold(kept_out: bool, db: &Path) -> Result<()> {
    match kept_out {
        true => Ok(()),
        false => Err(Error::FileSystemFailure {
            path: db.to_path_buf(),
            detail:
                "OFD locks do not hold (a maintenance lock was granted while a session was open)"
                    .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_that_do_not_hold_are_the_environment_not_damage() {
        let err = locks_hold(false, Path::new("selftest-kanban.db")).unwrap_err();
        assert!(matches!(err, Error::FileSystemFailure { .. }), "{err:?}");
        assert!(!err.is_damage(), "{err}");
        locks_hold(true, Path::new("selftest-kanban.db")).unwrap();
    }
}
