//! The store rules of DESIGN §3, one test (or a few) per rule, each able to fail.
//!
//! R1 is tested in `version.rs`, R2 in `locks.rs` (plus clippy's `disallowed-methods`),
//! R8's bad files in `bad_input.rs`; the rest are here. Where a hazard switch puts back the
//! mistake a rule forbids, a `hazards`-only test shows the same check catching it.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "hazards")]
use kanban_store::hazards::{LockFile, Mode};
use kanban_store::{
    Board, CheckLevel, Error, NewTask, Quarantined, Role, RunOutcome, StoreConfig, TaskStatus,
};

fn new_board() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, StoreConfig::new(Role::Worker)).unwrap());
    (dir, db)
}

fn task(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        ..Default::default()
    }
}

fn journal_mode(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap()
}

/// A worker config that gives up on our lock after 40 ms.
#[cfg(feature = "hazards")]
fn impatient() -> StoreConfig {
    let mut cfg = StoreConfig::new(Role::Worker);
    cfg = cfg.lock_timeout(Duration::from_millis(40));
    cfg
}

// ---------------------------------------------------------------------------------- R3

#[test]
#[cfg(feature = "hazards")] // the raw lock file: `hazards::LockFile`
fn r3_a_session_holds_the_shared_lock_and_keeps_maintenance_out() {
    let (_dir, db) = new_board();
    let probe = LockFile::open(&db).unwrap();
    let mut board = Board::open(&db, Role::Worker).unwrap();
    // During an operation: maintenance is kept out, other sessions are not.
    let (exclusive, shared) = board
        .transaction(|_| {
            let exclusive = probe.try_lock_session(Mode::Exclusive).unwrap();
            let shared = probe.try_lock_session(Mode::Shared).unwrap();
            probe.unlock_session().unwrap();
            Ok((exclusive, shared))
        })
        .unwrap();
    assert!(!exclusive && shared);
    // Idle, the session holds nothing: a maintenance may have the board.
    assert!(probe.try_lock_session(Mode::Exclusive).unwrap());
    probe.unlock_session().unwrap();
    drop(board);
}

#[test]
#[cfg(feature = "hazards")] // the raw lock file: `hazards::LockFile`
fn r3_sessions_wait_for_maintenance_and_time_out_busy() {
    let (_dir, db) = new_board();
    let maintenance = LockFile::open(&db).unwrap();
    assert!(maintenance.try_lock_session(Mode::Exclusive).unwrap());
    let err = Board::open_with(&db, impatient()).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
}

// ---------------------------------------------------------------------------------- R4

/// A populated board left in rollback mode, as upstream boards were after their fallback.
fn rollback_board() -> (tempfile::TempDir, PathBuf) {
    let (dir, db) = new_board();
    let mut b = Board::open(&db, Role::Worker).unwrap();
    for i in 0..20 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
    }
    drop(b);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    (dir, db)
}

#[test]
fn r4_a_rollback_board_is_upgraded_to_wal_once_under_the_exclusive_lock() {
    let (_dir, db) = rollback_board();
    let mut b = Board::open(&db, Role::Worker).unwrap();
    assert_eq!(b.info().unwrap().journal_mode, "wal");
    assert_eq!(b.list_board().unwrap().len(), 20);
    // Once: a WAL board needs no maintenance, so it opens while another session is open.
    let mut other = Board::open(&db, Role::Dashboard).unwrap();
    assert_eq!(other.list_board().unwrap().len(), 20);
    drop((b, other));
    assert_eq!(journal_mode(&db), "wal");
}

#[test]
#[cfg(feature = "hazards")] // the raw lock file: `hazards::LockFile`
fn r4_connect_never_changes_the_journal_mode_while_sessions_are_open() {
    let (_dir, db) = rollback_board();
    let session = LockFile::open(&db).unwrap();
    assert!(session.try_lock_session(Mode::Shared).unwrap());
    let err = Board::open_with(&db, impatient()).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert_eq!(journal_mode(&db), "delete");
}

#[cfg(feature = "hazards")]
#[test]
fn r4_hazard_journal_toggle_changes_it_on_connect() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let (_dir, db) = rollback_board();
    let session = LockFile::open(&db).unwrap();
    assert!(session.try_lock_session(Mode::Shared).unwrap());
    let mut cfg = impatient();
    cfg = cfg.hazards(HazardSet::default().with(Hazard::JournalToggleOnError));
    let _ = Board::open_with(&db, cfg);
    assert_eq!(
        journal_mode(&db),
        "wal",
        "the hazard switched modes behind the lock"
    );
}

// ---------------------------------------------------------------------------------- R5

/// Concurrent claimers: `BEGIN IMMEDIATE` serialises them through the busy timeout; a
/// deferred read-then-write transaction would fail with SQLITE_BUSY(_SNAPSHOT) instead.
#[test]
fn r5_concurrent_claims_never_fail_and_never_double_claim() {
    let (_dir, db) = new_board();
    let mut b = Board::open(&db, Role::Worker).unwrap();
    for i in 0..80 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
    }
    b.recompute_ready().unwrap();
    drop(b);
    let claims: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let db = db.clone();
                s.spawn(move || {
                    let mut b = Board::open(&db, Role::Worker).unwrap();
                    let mut mine = Vec::new();
                    while let Some(c) = b.claim_next(&format!("w{w}")).unwrap() {
                        mine.push(c.task_id.get());
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claims.concat();
    all.sort_unstable();
    assert_eq!(all, (1..=80).collect::<Vec<_>>());
    let mut b = Board::open(&db, Role::Worker).unwrap();
    assert!(b.check(CheckLevel::Full).unwrap().is_ok());
}

// ---------------------------------------------------------------------------------- R6

fn wal_bytes(b: &mut Board) -> u64 {
    b.info().unwrap().wal_bytes
}

#[test]
fn r6_only_the_gateway_checkpoints_and_sees_the_result() {
    let (_dir, db) = new_board();
    let mut gateway = Board::open(&db, Role::Gateway).unwrap();
    for role in [Role::Worker, Role::Dashboard] {
        let mut b = Board::open(&db, role).unwrap();
        assert!(matches!(b.checkpoint(), Err(Error::WrongRole { .. })));
        // No automatic checkpoint in this role: the WAL only grows.
        let mut last = wal_bytes(&mut b);
        for i in 0..300 {
            b.create_task(&task(&format!("{role}-{i}"))).unwrap();
            let now = wal_bytes(&mut b);
            assert!(now >= last, "the {role} role checkpointed");
            last = now;
        }
    }
    // A reader pinned on an old snapshot keeps the owner's PASSIVE checkpoint from
    // finishing; the report says so instead of hiding it.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    reader
        .query_row("SELECT count(*) FROM tasks", [], |_| Ok(()))
        .unwrap();
    let mut worker = Board::open(&db, Role::Worker).unwrap();
    worker.create_task(&task("after the pin")).unwrap();
    let report = gateway.checkpoint().unwrap();
    assert!(report.checkpointed < report.wal_frames, "{report:?}");
    reader.execute_batch("COMMIT").unwrap();
    let report = gateway.checkpoint().unwrap();
    assert_eq!(report.checkpointed, report.wal_frames, "{report:?}");
    assert!(!report.busy);
}

#[test]
fn r6_checkpoint_if_due_follows_the_threshold() {
    let (_dir, db) = new_board();
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.checkpoint_frames(50);
    let mut gateway = Board::open_with(&db, cfg).unwrap();
    assert_eq!(gateway.checkpoint_if_due().unwrap(), None);
    let mut ran = 0;
    for i in 0..200 {
        gateway.create_task(&task(&format!("t{i}"))).unwrap();
        if let Some(report) = gateway.checkpoint_if_due().unwrap() {
            assert!(report.wal_frames >= 50);
            ran += 1;
        }
    }
    assert!(ran >= 1);
}

#[cfg(feature = "hazards")]
#[test]
fn r6_hazard_autocheckpoint_everywhere_is_caught() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let (_dir, db) = new_board();
    let mut cfg = StoreConfig::new(Role::Worker);
    cfg = cfg.hazards(HazardSet::default().with(Hazard::AutocheckpointEverywhere));
    let mut b = Board::open_with(&db, cfg).unwrap();
    let mut last = wal_bytes(&mut b);
    let mut shrank_or_restarted = false;
    for i in 0..1500 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
        let now = wal_bytes(&mut b);
        shrank_or_restarted |= now < last;
        last = now;
    }
    // SQLite restarts the WAL from its start after an automatic checkpoint: visible as
    // the frame count dropping back even if the file keeps its size.
    let frames = b.info().unwrap();
    assert!(
        shrank_or_restarted || frames.wal_bytes < 1500 * 4096,
        "{frames:?}"
    );
}

// ---------------------------------------------------------------------------------- R7

/// Bytes this thread has read through `read(2)`/`pread(2)` so far.
#[allow(clippy::disallowed_methods)] // a /proc file, not a board
fn thread_read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A board of about `mb` megabytes.
fn big_board(mb: usize) -> (tempfile::TempDir, PathBuf) {
    let (dir, db) = new_board();
    // The gateway, as checkpoint owner, moves the WAL into the file when it closes.
    let mut b = Board::open(&db, Role::Gateway).unwrap();
    let body = "x".repeat(4000);
    for chunk in 0..mb {
        b.transaction(|t| {
            for i in 0..250 {
                t.create_task(&NewTask {
                    title: format!("{chunk}-{i}"),
                    body: body.clone(),
                    ..Default::default()
                })?;
            }
            Ok(())
        })
        .unwrap();
    }
    drop(b);
    (dir, db)
}

fn bytes_read_by_open(db: &Path, cfg: StoreConfig) -> u64 {
    let before = thread_read_bytes();
    let b = Board::open_with(db, cfg);
    let read = thread_read_bytes() - before;
    drop(b);
    read
}

#[test]
fn r7_opening_reads_the_same_few_pages_whatever_the_size() {
    let (_small_dir, small) = new_board();
    let (_big_dir, big) = big_board(8);
    let size = std::fs::metadata(&big).unwrap().len();
    assert!(size > 8_000_000, "{size}");
    let small_read = bytes_read_by_open(&small, StoreConfig::new(Role::Dashboard));
    let big_read = bytes_read_by_open(&big, StoreConfig::new(Role::Dashboard));
    eprintln!("open read {small_read} bytes of a new board, {big_read} of {size}");
    assert!(big_read < 64 * 1024, "open read {big_read} bytes of {size}");
    assert!(
        big_read <= small_read + 16 * 1024,
        "{big_read} vs {small_read}"
    );
}

#[cfg(feature = "hazards")]
#[test]
fn r7_hazard_integrity_on_connect_is_caught() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let (_dir, big) = big_board(4);
    let size = std::fs::metadata(&big).unwrap().len();
    let mut cfg = StoreConfig::new(Role::Dashboard);
    cfg = cfg.hazards(HazardSet::default().with(Hazard::IntegrityOnConnect));
    let read = bytes_read_by_open(&big, cfg);
    eprintln!("integrity-on-connect: open read {read} bytes of {size}");
    assert!(read > size / 2, "open read only {read} bytes of {size}");
}

// ---------------------------------------------------------------------------------- R8

/// A clock that moves one millisecond per reading, so each copy differs.
struct Ticks(std::sync::atomic::AtomicI64);

impl kanban_store::Clock for Ticks {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[test]
fn r8_quarantine_copies_are_content_addressed_and_capped() {
    let (_dir, db) = new_board();
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.clock(Arc::new(Ticks(0.into())));
    let mut b = Board::open_with(&db, cfg).unwrap();
    assert_eq!(b.config().quarantine_cap, 5);
    let first = b.quarantine().unwrap();
    let Quarantined::Saved(path) = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        b.quarantine().unwrap(),
        Quarantined::AlreadyKept(path.clone())
    );
    let mut saved = 1;
    for i in 0..10 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
        match b.quarantine().unwrap() {
            Quarantined::Saved(_) => saved += 1,
            Quarantined::CapReached { kept } => assert_eq!(kept, 5),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(saved, 5);
    let copies = kanban_store::quarantine::list(&db).unwrap();
    assert_eq!(copies.len(), 5);
    for copy in copies {
        let mut c = Board::inspect(&copy).unwrap();
        assert!(c.check(CheckLevel::Full).unwrap().is_ok());
    }
}

#[test]
fn r8_the_quarantine_policy_keeps_damage_once_and_leaves_the_board_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    common::make_board(&db, 30);
    common::damage_index(&db);
    #[allow(clippy::disallowed_methods)] // no connection is open to the board here
    let before = std::fs::read(&db).unwrap();
    let mut cfg = StoreConfig::new(Role::Dashboard);
    cfg = cfg.quarantine_on_damage(true);
    for attempt in 0..3 {
        let mut b = Board::open_with(&db, cfg.clone()).unwrap();
        let report = b.check(CheckLevel::Full).unwrap();
        assert!(report.is_corrupt());
        match (attempt, report.quarantined) {
            (0, Some(Quarantined::Saved(_))) | (1.., Some(Quarantined::AlreadyKept(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(kanban_store::quarantine::list(&db).unwrap().len(), 1);
    #[allow(clippy::disallowed_methods)] // all sessions are closed
    let after = std::fs::read(&db).unwrap();
    assert!(before == after, "the damaged board was changed");
    // Without the policy, a check only reports.
    let mut b = Board::open(&db, Role::Dashboard).unwrap();
    assert_eq!(b.check(CheckLevel::Quick).unwrap().quarantined, None);
}

// --------------------------------------------------------------------------------- R10

#[test]
fn r10_one_gateway_per_board_and_roles_work_together() {
    let (_dir, db) = new_board();
    let mut gateway = Board::open(&db, Role::Gateway).unwrap();
    assert!(matches!(
        Board::open(&db, Role::Gateway),
        Err(Error::GatewayRunning { .. })
    ));
    let mut dashboard = Board::open(&db, Role::Dashboard).unwrap();
    let mut worker = Board::open(&db, Role::Worker).unwrap();
    let id = dashboard.create_task(&task("from the dashboard")).unwrap();
    assert_eq!(gateway.recompute_ready().unwrap(), vec![id]);
    let claim = gateway.claim_next("agent-1").unwrap().unwrap();
    worker.heartbeat(claim.run_id).unwrap();
    worker
        .end_run(claim.run_id, RunOutcome::Completed, "done")
        .unwrap();
    let seen = dashboard.get_task(id).unwrap().unwrap();
    assert_eq!(seen.status, TaskStatus::Done);
    let kinds: Vec<String> = dashboard
        .events_since(0.into(), 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "ready", "claimed", "completed"]);
    drop(gateway);
    Board::open(&db, Role::Gateway).unwrap();
}

#[test]
fn r10_inspection_sessions_cannot_write() {
    let (_dir, db) = new_board();
    let mut b = Board::inspect(&db).unwrap();
    assert!(matches!(
        b.create_task(&task("no")),
        Err(Error::WrongRole { .. })
    ));
}

// ------------------------------------------------------------------------------ phases

#[test]
fn the_observer_sees_each_phase_entered_and_left() {
    use kanban_store::Phase;
    use std::sync::Mutex;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let cfg = StoreConfig::new(Role::Gateway)
        .creating()
        .observer(Arc::new(move |phase: Phase, entering: bool| {
            log.lock().unwrap().push((phase.name(), entering));
        }));
    let dir = tempfile::tempdir().unwrap();
    let mut b = Board::open_with(dir.path().join("kanban.db"), cfg).unwrap();
    b.create_task(&task("t")).unwrap();
    b.checkpoint().unwrap();
    b.quarantine().unwrap();
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<(&str, bool)> = [
        "migration",
        "journal-mode",
        "commit",
        "checkpoint",
        "quarantine",
    ]
    .into_iter()
    .flat_map(|p| [(p, true), (p, false)])
    .collect();
    assert_eq!(seen, expected);
}
