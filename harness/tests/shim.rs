//! Guards the I/O shim (`kanban_harness::shim`), the VFS through which the harness counts,
//! fails and kills SQLite's own file operations:
//!
//! - **pass-through**: a fixed workload gives a database byte-identical to the plain `unix`
//!   VFS's, and a store workload through the shim checks clean;
//! - **counters**: a PASSIVE checkpoint is counted as exactly one WAL read and one db write
//!   per distinct page in `checkpoint-copy`, one db truncate and one sync in
//!   `checkpoint-tail`; a TRUNCATE checkpoint as one `wal-truncate`; a partial checkpoint
//!   has no tail;
//! - **store marks**: the WAL writes and syncs of a commit are counted under `commit` (by hand
//!   and through `StoreConfig::observer`), everything else under `none`, and SQLite's
//!   checkpoint phases take precedence over the store's `checkpoint` mark;
//! - **faults**: in child processes (the shim is installed once per process), an
//!   `IoerrWrite`, a sticky `Full`, a checkpoint `IoerrWrite` and an `IoerrFsync` act at
//!   exactly the planned operation with the planned code, are noted in the landed file, and
//!   leave a database that is intact and holds exactly what was reported committed.
//!
//! If counts here fail, the shim counts or phases SQLite's I/O differently from what the
//! fault scenarios assume: a planned fault would land somewhere else, or never.
//!
//! The shim's state is process-global, so every test here holds [`SERIAL`]. No test installs a
//! fault that kills (those go through the harness binary); the failing faults are installed
//! only in children, which re-run this binary's ignored [`child_entry`].

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use kanban_harness::fault::{FileKind, IoAction, IoFault, IoOp, IoPhase};
use kanban_harness::shim;
use kanban_store::{
    Board, CheckLevel, Error, NewTask, Phase, PhaseObserver, Role, RunOutcome, StoreConfig,
};
use rusqlite::{Connection, OpenFlags};

/// Serialises the tests of this binary: the shim's state and counts are process-global.
static SERIAL: Mutex<()> = Mutex::new(());

/// The page size of every database here (SQLite's default).
const PAGE: u64 = 4096;
/// A WAL frame: 24-byte header and one page.
const FRAME: u64 = 24 + PAGE;
/// The WAL file header.
const WAL_HEADER: u64 = 32;

type Counts = BTreeMap<(IoPhase, FileKind, IoOp), u64>;

/// Takes [`SERIAL`] and installs the shim with no faults (which also clears its counts).
fn shim_without_faults() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    shim::install(Vec::new(), None, None).expect("registering the shim");
    guard
}

/// One counter, 0 when absent.
fn n(counts: &Counts, phase: IoPhase, file: FileKind, op: IoOp) -> u64 {
    counts.get(&(phase, file, op)).copied().unwrap_or(0)
}

/// The sum of the counters of `phase`.
fn in_phase(counts: &Counts, phase: IoPhase) -> u64 {
    counts
        .iter()
        .filter(|((p, _, _), _)| *p == phase)
        .map(|(_, v)| v)
        .sum()
}

/// A connection through `vfs` (`None`: the default VFS, the shim once installed).
fn open(path: &Path, vfs: Option<&str>) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// WAL mode, no automatic checkpoints, `synchronous=FULL` (as the store's connections).
fn wal_setup(conn: &Connection) {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; PRAGMA synchronous=FULL;")
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        page as u64, PAGE,
        "frame sizes below assume the default page size"
    );
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, frames in the WAL, frames checkpointed).
fn checkpoint(conn: &Connection, mode: &str) -> (i64, i64, i64) {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .unwrap()
}

fn page_count(conn: &Connection) -> u64 {
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    pages as u64
}

/// Size of `<db>-wal` by `stat` (never opened: closing a descriptor of it would drop the
/// POSIX locks this process's connections hold), 0 when missing.
fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Whole frames in a WAL of `len` bytes.
fn frames(len: u64) -> u64 {
    len.saturating_sub(WAL_HEADER) / FRAME
}

/// Deterministic blob content.
fn blob(k: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + k * 7) as u8).collect()
}

/// An observer feeding the store's phase marks to the shim.
fn observer() -> PhaseObserver {
    Arc::new(|phase: Phase, entering: bool| shim::store_phase(phase, entering))
}

fn gateway_config() -> StoreConfig {
    StoreConfig::new(Role::Gateway).observer(observer())
}

fn task(title: &str) -> NewTask {
    NewTask {
        title: title.to_string(),
        body: format!("body of {title}"),
        priority: 1,
        parents: Vec::new(),
    }
}

// --- 1. Pass-through ---------------------------------------------------------------------

/// The fixed workload of the byte comparison; `vfs` as for [`open`].
fn fixed_workload(path: &Path, vfs: Option<&str>) {
    let conn = open(path, vfs);
    wal_setup(&conn);
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER NOT NULL,
                             body BLOB NOT NULL);
         CREATE INDEX items_name ON items(name, n);",
    )
    .unwrap();
    for t in 0..6 {
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..50 {
            let k = t * 50 + i;
            conn.execute(
                "INSERT INTO items (id, name, n, body) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    k as i64,
                    format!("item-{:04}", (i * 37 + t * 11) % 300),
                    (k % 17) as i64,
                    blob(k, 100 + (k * 13) % 300)
                ],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    conn.execute(
        "UPDATE items SET n = n + 1, body = zeroblob(50) WHERE id % 7 = 0",
        [],
    )
    .unwrap();
    conn.execute("DELETE FROM items WHERE id % 5 = 0", [])
        .unwrap();
    assert_eq!(checkpoint(&conn, "TRUNCATE"), (0, 0, 0));
    drop(conn);
}

/// The same workload on the plain `unix` VFS and through the shim gives the same bytes.
fn pass_through_gives_the_same_bytes() {
    let plain_dir = tempfile::tempdir().unwrap();
    let shim_dir = tempfile::tempdir().unwrap();
    let (plain, through) = (plain_dir.path().join("a.db"), shim_dir.path().join("a.db"));

    shim::reset_counts();
    fixed_workload(&plain, Some("unix"));
    assert!(
        shim::counts().is_empty(),
        "the unix run went through the shim: {:?}",
        shim::counts()
    );
    // By name, then by default: both reach the shim.
    fixed_workload(&through, Some("kanban-shim"));
    let counts = shim::counts();
    assert!(
        n(&counts, IoPhase::None, FileKind::Wal, IoOp::Write) > 0,
        "{counts:?}"
    );
    assert!(
        n(&counts, IoPhase::CheckpointCopy, FileKind::Db, IoOp::Write) > 0,
        "{counts:?}"
    );

    // Every connection is closed: reading the files can drop no lock.
    let (a, b) = (
        std::fs::read(&plain).unwrap(),
        std::fs::read(&through).unwrap(),
    );
    assert!(a.len() as u64 >= 10 * PAGE, "{} bytes", a.len());
    assert!(
        a == b,
        "unix and shim databases differ ({} vs {} bytes)",
        a.len(),
        b.len()
    );

    let default_dir = tempfile::tempdir().unwrap();
    let by_default = default_dir.path().join("a.db");
    shim::reset_counts();
    fixed_workload(&by_default, None);
    assert!(
        !shim::counts().is_empty(),
        "the default VFS is not the shim"
    );
    assert!(std::fs::read(&by_default).unwrap() == a);
}

/// A store workload through the shim checks clean.
fn store_workload_through_the_shim_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.db");
    shim::reset_counts();
    let mut board = Board::create(&db, gateway_config()).unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut t = task(&format!("t{i}"));
        if i % 3 == 2 {
            t.parents = vec![ids[i - 1]];
        }
        ids.push(board.create_task(&t).unwrap());
    }
    board.recompute_ready().unwrap();
    for w in 0..4 {
        let claim = board
            .claim_next(&format!("w{w}"))
            .unwrap()
            .expect("a ready task");
        board.heartbeat(claim.run_id).unwrap();
        board.comment(claim.task_id, "w", "working").unwrap();
        board
            .end_run(claim.run_id, RunOutcome::Completed, "done")
            .unwrap();
    }
    board.recompute_ready().unwrap();
    let report = board.checkpoint().unwrap();
    assert!(
        !report.busy && report.checkpointed == report.wal_frames,
        "{report:?}"
    );
    board.create_task(&task("after checkpoint")).unwrap();
    let report = board.check(CheckLevel::Full).unwrap();
    assert!(
        report.is_ok(),
        "{:?}",
        report.findings().collect::<Vec<_>>()
    );
    assert_eq!(board.list_board().unwrap().len(), 13);
    drop(board);
    assert!(in_phase(&shim::counts(), IoPhase::Commit) > 0);

    let report = Board::inspect(&db)
        .unwrap()
        .check(CheckLevel::Full)
        .unwrap();
    assert!(
        report.is_ok(),
        "{:?}",
        report.findings().collect::<Vec<_>>()
    );
}

#[test]
fn pass_through() {
    let _serial = shim_without_faults();
    pass_through_gives_the_same_bytes();
    store_workload_through_the_shim_checks_clean();
}

// --- 2. Counters -------------------------------------------------------------------------

/// A complete PASSIVE checkpoint, then a TRUNCATE one, counted against `walCheckpoint` in
/// SQLite 3.54 (`sqlite3.c`):
///
/// - before `SQLITE_FCNTL_CKPT_START` it syncs the WAL (`CKPT_SYNC_FLAGS`: NORMAL under
///   `synchronous=FULL`): outside the copy bracket, so under `none`;
/// - inside the bracket, `xFileSize` of the db, then, per page yielded by the WAL iterator
///   (each distinct page once, its latest frame), one `xRead` of the WAL and one `xWrite` of
///   the db;
/// - `CKPT_DONE`, and since every frame was copied, `xTruncate` of the db to `nPage` pages
///   and `xSync` of the db: the tail.
fn checkpoint_counts_match_the_pages_in_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pages.db");
    let conn = open(&db, None);
    wal_setup(&conn);
    conn.execute_batch("CREATE TABLE pages (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    // Four transactions of ten ~3000-byte rows: about one new leaf page per row, plus the
    // root and page 1 again in every transaction, so the WAL holds more frames than pages.
    for t in 0..4 {
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..10 {
            let k = t * 10 + i;
            conn.execute(
                "INSERT INTO pages (id, body) VALUES (?1, ?2)",
                rusqlite::params![k as i64, blob(k, 3000)],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    // Every page of this database was written after the switch to WAL (page 1 with the
    // schema, the rest as they were allocated), so the WAL holds exactly `page_count`
    // distinct pages.
    let pages = page_count(&conn);
    let wal_frames = frames(wal_len(&db));
    let db_len = std::fs::metadata(&db).unwrap().len();
    assert!(db_len < pages * PAGE, "{db_len} bytes");
    assert!(pages >= 40, "{pages} pages");
    assert!(wal_frames > pages, "{wal_frames} frames, {pages} pages");

    shim::reset_counts();
    let (busy, log, done) = checkpoint(&conn, "PASSIVE");
    let c = shim::counts();
    eprintln!("PASSIVE checkpoint of {pages} pages, {log} frames: {c:?}");
    assert_eq!((busy, log, done), (0, wal_frames as i64, wal_frames as i64));
    use FileKind::{Db, Wal};
    use IoPhase::{CheckpointCopy as Copy, CheckpointTail as Tail};
    // One db write and one WAL read per distinct page, not per frame.
    assert_eq!(n(&c, Copy, Db, IoOp::Write), pages);
    assert_eq!(n(&c, Copy, Wal, IoOp::Read), pages);
    assert_eq!(n(&c, Copy, Db, IoOp::FileSize), 1);
    // CKPT_START itself, and SQLITE_FCNTL_SIZE_HINT: the db file is shorter than the
    // checkpointed database.
    assert_eq!(n(&c, Copy, Db, IoOp::FileControl), 2);
    // Nothing else is written or synced inside the bracket.
    assert_eq!(n(&c, Copy, Wal, IoOp::Write), 0);
    assert_eq!(n(&c, Copy, Db, IoOp::Sync), 0);
    assert_eq!(n(&c, Copy, Wal, IoOp::Sync), 0);
    // The complete checkpoint's tail: CKPT_DONE itself, one truncate, one sync of the db.
    assert_eq!(n(&c, Tail, Db, IoOp::FileControl), 1);
    assert_eq!(n(&c, Tail, Db, IoOp::Truncate), 1);
    assert_eq!(n(&c, Tail, Db, IoOp::Sync), 1);
    assert_eq!(in_phase(&c, Tail), 3, "{c:?}");
    // The WAL sync before CKPT_START is outside both SQLite phases.
    assert_eq!(n(&c, IoPhase::None, Wal, IoOp::Sync), 1);
    assert_eq!(n(&c, IoPhase::None, Db, IoOp::Write), 0);
    assert_eq!(in_phase(&c, IoPhase::WalTruncate), 0);

    // TRUNCATE: everything is already backfilled, so no copy; then the WAL is restarted and
    // truncated to 0 bytes (`sqlite3OsTruncate(pWal->pWalFd, 0)`).
    shim::reset_counts();
    assert_eq!(checkpoint(&conn, "TRUNCATE"), (0, 0, 0));
    let c = shim::counts();
    eprintln!("TRUNCATE checkpoint: {c:?}");
    assert_eq!(n(&c, IoPhase::WalTruncate, Wal, IoOp::Truncate), 1);
    assert_eq!(in_phase(&c, IoPhase::WalTruncate), 1);
    assert_eq!(in_phase(&c, Copy), 0);
    assert_eq!(in_phase(&c, Tail), 0);
    assert_eq!(wal_len(&db), 0);
    drop(conn);
}

/// A reader's snapshot stops the copy short (`mxSafeFrame` = its mark), and with
/// `mxSafeFrame < mxFrame` there is no db truncate nor sync: no tail but `CKPT_DONE` itself.
///
/// The WAL iterator yields each page once with its *latest* frame, and a page whose latest
/// frame is past `mxSafeFrame` is skipped, not copied from an older frame: the pages of the
/// first transaction that the second one wrote again are not copied now.
fn partial_checkpoint_has_no_tail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("partial.db");
    let conn = open(&db, None);
    wal_setup(&conn);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .unwrap();
    assert_eq!(checkpoint(&conn, "TRUNCATE"), (0, 0, 0));
    let insert = |from: usize| {
        conn.execute_batch("BEGIN").unwrap();
        for k in from..from + 5 {
            conn.execute(
                "INSERT INTO t (id, body) VALUES (?1, ?2)",
                rusqlite::params![k as i64, blob(k, 3000)],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    };
    insert(0);
    // One transaction: each of its pages is one frame.
    let first = frames(wal_len(&db));
    let reader = open(&db, None);
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 5);
    insert(5);
    let all = frames(wal_len(&db));

    shim::reset_counts();
    let (busy, log, done) = checkpoint(&conn, "PASSIVE");
    let c = shim::counts();
    eprintln!("partial PASSIVE checkpoint ({first} of {all} frames): {c:?}");
    assert_eq!((busy, log, done), (0, all as i64, first as i64));
    // The second transaction grew the file (page 1's size field) and added leaves under the
    // table's interior root page: those two pages' latest frames are past the reader's mark.
    let rewritten = 2;
    assert_eq!(
        n(&c, IoPhase::CheckpointCopy, FileKind::Db, IoOp::Write),
        first - rewritten
    );
    assert_eq!(
        n(&c, IoPhase::CheckpointCopy, FileKind::Wal, IoOp::Read),
        first - rewritten
    );
    assert_eq!(
        n(&c, IoPhase::CheckpointTail, FileKind::Db, IoOp::FileControl),
        1
    );
    assert_eq!(in_phase(&c, IoPhase::CheckpointTail), 1, "{c:?}");
    reader.execute_batch("COMMIT").unwrap();
    drop((reader, conn));
}

#[test]
fn counters() {
    let _serial = shim_without_faults();
    checkpoint_counts_match_the_pages_in_the_wal();
    partial_checkpoint_has_no_tail();
}

// --- 3. Store phase marks ----------------------------------------------------------------

/// WAL I/O of one commit that appends `frames` frames: per frame a header write and a page
/// write (`walWriteOneFrame`), and one sync (`synchronous=FULL`); when the WAL starts over
/// also the WAL header's write and sync (`syncHeader`).
fn commit_io(frames: u64, fresh_wal: bool) -> (u64, u64) {
    (2 * frames + fresh_wal as u64, 1 + fresh_wal as u64)
}

/// `store_phase(Commit, ..)` by hand around a raw `COMMIT`.
fn manual_commit_marks_put_wal_io_under_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("marks.db");
    let conn = open(&db, None);
    wal_setup(&conn);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let before = wal_len(&db);
    assert!(before > 0);

    shim::reset_counts();
    conn.execute_batch("BEGIN; INSERT INTO t (v) VALUES ('inside');")
        .unwrap();
    shim::store_phase(Phase::Commit, true);
    conn.execute_batch("COMMIT").unwrap();
    shim::store_phase(Phase::Commit, false);
    let c = shim::counts();
    let (writes, syncs) = commit_io(frames(wal_len(&db)) - frames(before), false);
    eprintln!("marked commit: {c:?}");
    assert_eq!(n(&c, IoPhase::Commit, FileKind::Wal, IoOp::Write), writes);
    assert_eq!(n(&c, IoPhase::Commit, FileKind::Wal, IoOp::Sync), syncs);
    assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Write), 0);
    assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Sync), 0);

    // The same write with no mark: all of it under `none`.
    let before = wal_len(&db);
    shim::reset_counts();
    conn.execute("INSERT INTO t (v) VALUES ('outside')", [])
        .unwrap();
    let c = shim::counts();
    let (writes, syncs) = commit_io(frames(wal_len(&db)) - frames(before), false);
    assert_eq!(in_phase(&c, IoPhase::Commit), 0, "{c:?}");
    assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Write), writes);
    assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Sync), syncs);
    drop(conn);
}

/// Through `StoreConfig::observer`: a `create_task` commit's WAL writes and syncs are under
/// `commit`, the `BEGIN IMMEDIATE` before it under `none`; the store's checkpoint mark
/// yields to SQLite's copy and tail phases.
fn store_commit_marks_put_wal_io_under_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.db");
    let mut board = Board::create(&db, gateway_config()).unwrap();

    for (round, title) in ["first", "second"].into_iter().enumerate() {
        let before = wal_len(&db);
        shim::reset_counts();
        board.create_task(&task(title)).unwrap();
        let c = shim::counts();
        eprintln!("create_task {title} (WAL {before} bytes before): {c:?}");
        // The creating connection checkpointed and deleted the WAL on close, so the first
        // commit starts it afresh (with its header); the second appends.
        assert_eq!(before == 0, round == 0);
        let (writes, syncs) = commit_io(frames(wal_len(&db)) - frames(before), before == 0);
        assert_eq!(n(&c, IoPhase::Commit, FileKind::Wal, IoOp::Write), writes);
        assert_eq!(n(&c, IoPhase::Commit, FileKind::Wal, IoOp::Sync), syncs);
        assert_eq!(n(&c, IoPhase::Commit, FileKind::Db, IoOp::Write), 0);
        assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Write), 0);
        assert_eq!(n(&c, IoPhase::None, FileKind::Wal, IoOp::Sync), 0);
        // BEGIN IMMEDIATE takes the WAL write lock before the commit mark.
        assert_eq!(
            n(&c, IoPhase::None, FileKind::Shm, IoOp::WalWriteLock),
            1,
            "{c:?}"
        );
        assert_eq!(n(&c, IoPhase::Commit, FileKind::Shm, IoOp::WalWriteLock), 0);
    }

    let in_wal = frames(wal_len(&db));
    shim::reset_counts();
    let report = board.checkpoint().unwrap();
    let c = shim::counts();
    eprintln!("store checkpoint: {report:?} {c:?}");
    assert!(!report.busy && report.checkpointed == report.wal_frames);
    assert_eq!(report.wal_frames as u64, in_wal);
    // Both commits dirtied the same pages (the single-page trees of `tasks`,
    // `task_events` and their three indexes; the file did not grow, so not page 1): the
    // WAL holds each page twice, and each is copied once.
    assert_eq!(in_wal % 2, 0);
    assert_eq!(
        n(&c, IoPhase::CheckpointCopy, FileKind::Db, IoOp::Write),
        in_wal / 2
    );
    assert_eq!(
        n(&c, IoPhase::CheckpointCopy, FileKind::Wal, IoOp::Read),
        in_wal / 2
    );
    assert_eq!(
        n(&c, IoPhase::CheckpointTail, FileKind::Db, IoOp::Truncate),
        1
    );
    assert_eq!(n(&c, IoPhase::CheckpointTail, FileKind::Db, IoOp::Sync), 1);
    // The WAL sync before the copy bracket is under the store's mark; no db write is.
    assert_eq!(n(&c, IoPhase::Checkpoint, FileKind::Wal, IoOp::Sync), 1);
    assert_eq!(n(&c, IoPhase::Checkpoint, FileKind::Db, IoOp::Write), 0);
    assert_eq!(n(&c, IoPhase::Checkpoint, FileKind::Db, IoOp::Sync), 0);
    drop(board);
}

#[test]
fn store_phase_marks() {
    let _serial = shim_without_faults();
    manual_commit_marks_put_wal_io_under_commit();
    store_commit_marks_put_wal_io_under_commit();
}

// --- 4. Faults, in child processes -------------------------------------------------------

const CHILD_SCENARIO: &str = "KANBAN_SHIM_TEST_SCENARIO";
const CHILD_DIR: &str = "KANBAN_SHIM_TEST_DIR";
const CHILD_NTH: &str = "KANBAN_SHIM_TEST_NTH";
/// Lines of the child's report start with this.
const TAG: &str = "shim-child|";

/// What a child does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// Five `create_task`s, no fault: the reference counts.
    Count,
    /// Five `create_task`s; `IoerrWrite` at the Nth WAL write in `commit`.
    CommitIoerrWrite,
    /// Five `create_task`s; `Full` from the Nth WAL write in `commit` on.
    CommitFullSticky,
    /// Three `create_task`s, checkpoint, list, checkpoint, `create_task`; `IoerrWrite` at
    /// the Nth db write in `checkpoint-copy`.
    CheckpointIoerrWrite,
    /// Raw rusqlite, five autocommit inserts; `IoerrFsync` at the Nth WAL sync (`none`).
    RawIoerrFsync,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Count,
        Scenario::CommitIoerrWrite,
        Scenario::CommitFullSticky,
        Scenario::CheckpointIoerrWrite,
        Scenario::RawIoerrFsync,
    ];

    fn name(self) -> String {
        format!("{self:?}")
    }

    fn fault(self, nth: u32) -> Option<IoFault> {
        let (phase, file, op, action, sticky) = match self {
            Scenario::Count => return None,
            Scenario::CommitIoerrWrite => (
                IoPhase::Commit,
                FileKind::Wal,
                IoOp::Write,
                IoAction::IoerrWrite,
                false,
            ),
            Scenario::CommitFullSticky => (
                IoPhase::Commit,
                FileKind::Wal,
                IoOp::Write,
                IoAction::Full,
                true,
            ),
            Scenario::CheckpointIoerrWrite => (
                IoPhase::CheckpointCopy,
                FileKind::Db,
                IoOp::Write,
                IoAction::IoerrWrite,
                false,
            ),
            Scenario::RawIoerrFsync => (
                IoPhase::None,
                FileKind::Wal,
                IoOp::Sync,
                IoAction::IoerrFsync,
                false,
            ),
        };
        Some(IoFault {
            id: 0,
            phase,
            file,
            op,
            nth,
            action,
            sticky,
        })
    }
}

/// One operation of a child, as it reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChildOp {
    /// `create`, `checkpoint`, `list`, `insert`.
    op: String,
    /// The task title or row value it wrote, if any.
    arg: String,
    /// `ok`, or the error: `IoFailure`, `DiskFull`, `code=<extended code>`, or other text.
    status: String,
    /// What an `ok` returned (checkpoint frames, rows listed).
    detail: String,
    /// The child's (commit, wal, write) count after the operation.
    commit_wal_writes: u64,
    /// The child's (checkpoint-copy, db, write) count after the operation.
    copy_db_writes: u64,
    /// The child's (none, wal, sync) count after the operation.
    none_wal_syncs: u64,
}

impl ChildOp {
    fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The entry point of the children (ignored in ordinary runs; without the environment it
/// does nothing).
#[test]
#[ignore = "entry point of the fault tests' child processes"]
fn child_entry() {
    let Ok(name) = std::env::var(CHILD_SCENARIO) else {
        return;
    };
    let scenario = Scenario::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("unknown scenario {name}"));
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let nth: u32 = std::env::var(CHILD_NTH).unwrap().parse().unwrap();
    let landed = File::options()
        .create(true)
        .append(true)
        .open(dir.join("landed"))
        .unwrap();
    shim::install(
        scenario.fault(nth).into_iter().collect(),
        Some(landed),
        None,
    )
    .unwrap();
    let db = dir.join("board.db");

    let report = |op: &str, arg: &str, status: String, detail: String| {
        let c = shim::counts();
        println!(
            "{TAG}{op}|{arg}|{status}|{detail}|{}|{}|{}",
            n(&c, IoPhase::Commit, FileKind::Wal, IoOp::Write),
            n(&c, IoPhase::CheckpointCopy, FileKind::Db, IoOp::Write),
            n(&c, IoPhase::None, FileKind::Wal, IoOp::Sync),
        );
    };
    let status = |e: &Error| match e {
        Error::IoFailure { .. } => "IoFailure".to_string(),
        Error::DiskFull { .. } => "DiskFull".to_string(),
        other => format!("other: {other}").replace(['|', '\n'], " "),
    };

    if scenario == Scenario::RawIoerrFsync {
        let conn = open(&db, None);
        for i in 0..5 {
            let v = format!("r{i}");
            match conn.execute("INSERT INTO t (v) VALUES (?1)", [&v]) {
                Ok(_) => report("insert", &v, "ok".into(), String::new()),
                Err(e) => {
                    let code = e.sqlite_error().map_or(-1, |e| e.extended_code);
                    report("insert", &v, format!("code={code}"), String::new())
                }
            }
        }
        drop(conn);
    } else {
        let mut board = Board::open_with(&db, gateway_config()).unwrap();
        let create = |board: &mut Board, title: &str| match board.create_task(&task(title)) {
            Ok(_) => report("create", title, "ok".into(), String::new()),
            Err(e) => report("create", title, status(&e), String::new()),
        };
        if scenario == Scenario::CheckpointIoerrWrite {
            for title in ["t0", "t1", "t2"] {
                create(&mut board, title);
            }
            for round in 0..2 {
                match board.checkpoint() {
                    Ok(r) => report(
                        "checkpoint",
                        "",
                        "ok".into(),
                        format!("{}/{}/{}", r.busy, r.wal_frames, r.checkpointed),
                    ),
                    Err(e) => report("checkpoint", "", status(&e), String::new()),
                }
                if round == 0 {
                    match board.list_board() {
                        Ok(tasks) => {
                            let titles: Vec<_> = tasks.into_iter().map(|t| t.title).collect();
                            report("list", "", "ok".into(), titles.join(","))
                        }
                        Err(e) => report("list", "", status(&e), String::new()),
                    }
                }
            }
            create(&mut board, "t3");
        } else {
            for i in 0..5 {
                create(&mut board, &format!("t{i}"));
            }
        }
        drop(board);
    }
    println!("{TAG}done");
}

/// Runs `scenario` with its fault at `nth` in a child on the board in `dir`; returns what
/// the child reported.
fn run_child(scenario: Scenario, dir: &Path, nth: u32) -> Vec<ChildOp> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SCENARIO, scenario.name())
        .env(CHILD_DIR, dir)
        .env(CHILD_NTH, nth.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{scenario:?} child failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    // libtest's `test child_entry ... ` may start the first line: look for the tag anywhere.
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find(TAG).map(|at| &l[at + TAG.len()..]))
        .collect();
    assert_eq!(
        lines.last(),
        Some(&"done"),
        "{scenario:?}: {stdout}\n{stderr}"
    );
    let ops: Vec<ChildOp> = lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 7, "{l}");
            ChildOp {
                op: f[0].into(),
                arg: f[1].into(),
                status: f[2].into(),
                detail: f[3].into(),
                commit_wal_writes: f[4].parse().unwrap(),
                copy_db_writes: f[5].parse().unwrap(),
                none_wal_syncs: f[6].parse().unwrap(),
            }
        })
        .collect();
    eprintln!("{scenario:?} nth={nth}:");
    for op in &ops {
        eprintln!("  {op:?}");
    }
    ops
}

/// A fresh board in a fresh folder, made (and closed) here, for a child to open.
fn child_board() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    drop(Board::create(dir.path().join("board.db"), StoreConfig::new(Role::Gateway)).unwrap());
    dir
}

/// What the child's fault noted, the landed file's lines.
fn landed(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("landed")).unwrap_or_default()
}

/// After the child exited: `integrity_check` is ok through the plain `unix` VFS, the store's
/// full check is clean, and the tasks are exactly the ones the child reported created.
fn assert_intact_with(dir: &Path, ops: &[ChildOp]) {
    let db = dir.join("board.db");
    let conn = open(&db, Some("unix"));
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let titles: Vec<String> = conn
        .prepare("SELECT title FROM tasks ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    let committed: Vec<String> = ops
        .iter()
        .filter(|o| o.op == "create" && o.ok())
        .map(|o| o.arg.clone())
        .collect();
    assert_eq!(titles, committed);
    let report = Board::inspect(&db)
        .unwrap()
        .check(CheckLevel::Full)
        .unwrap();
    assert!(
        report.is_ok(),
        "{:?}",
        report.findings().collect::<Vec<_>>()
    );
}

/// The index of the operation that a fault at the `nth` match of a counter must hit, given
/// that counter after each operation of a fault-free run.
fn predicted(reference: &[u64], nth: u64) -> usize {
    reference
        .iter()
        .position(|&c| c >= nth)
        .unwrap_or_else(|| panic!("the reference run never reaches {nth}: {reference:?}"))
}

/// `IoerrWrite` at the Nth WAL write of `commit`: that commit fails with `IoFailure`, the
/// others (before and after: the fault is not sticky) succeed.
fn commit_ioerr_write(reference: &[ChildOp], nth: u32) {
    let dir = child_board();
    let ops = run_child(Scenario::CommitIoerrWrite, dir.path(), nth);
    let writes: Vec<u64> = reference.iter().map(|o| o.commit_wal_writes).collect();
    let hit = predicted(&writes, u64::from(nth));
    assert_eq!(ops.len(), reference.len());
    for (i, op) in ops.iter().enumerate() {
        if i < hit {
            assert!(op.ok(), "op {i} before the fault failed: {op:?}");
            assert_eq!(op.commit_wal_writes, writes[i], "op {i}");
        } else if i == hit {
            assert_eq!(op.status, "IoFailure", "op {i}: {op:?}");
            // The failed write is the last one of its commit.
            assert_eq!(op.commit_wal_writes, u64::from(nth), "op {i}");
        } else {
            assert!(op.ok(), "op {i} after a one-shot fault failed: {op:?}");
        }
    }
    assert_eq!(landed(dir.path()), "i0\n");
    assert_intact_with(dir.path(), &ops);
}

/// Sticky `Full` from the Nth WAL write of `commit`: that commit and every later one fail
/// with `DiskFull`; the earlier ones stay.
fn commit_full_sticky(reference: &[ChildOp], nth: u32) {
    let dir = child_board();
    let ops = run_child(Scenario::CommitFullSticky, dir.path(), nth);
    let writes: Vec<u64> = reference.iter().map(|o| o.commit_wal_writes).collect();
    let hit = predicted(&writes, u64::from(nth));
    assert!(
        hit > 0 && hit < ops.len() - 1,
        "pick nth inside a later commit"
    );
    for (i, op) in ops.iter().enumerate() {
        if i < hit {
            assert!(op.ok(), "op {i} before the fault failed: {op:?}");
        } else {
            assert_eq!(op.status, "DiskFull", "op {i}: {op:?}");
        }
    }
    // Each failing commit stops at its first refused write: one more count per later op.
    let last = ops.last().unwrap();
    assert_eq!(
        last.commit_wal_writes,
        u64::from(nth) + (ops.len() - 1 - hit) as u64
    );
    // Noted once, when it first acted.
    assert_eq!(landed(dir.path()), "i0\n");
    assert_intact_with(dir.path(), &ops);
}

/// `IoerrWrite` at the 1st db write of `checkpoint-copy`: the checkpoint reports
/// `IoFailure`, the data stays readable, the next checkpoint completes.
fn checkpoint_ioerr_write() {
    let dir = child_board();
    let ops = run_child(Scenario::CheckpointIoerrWrite, dir.path(), 1);
    let kinds: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "create",
            "create",
            "create",
            "checkpoint",
            "list",
            "checkpoint",
            "create"
        ]
    );
    assert!(
        ops[..3].iter().all(|o| o.ok() && o.copy_db_writes == 0),
        "{ops:?}"
    );
    assert_eq!(ops[3].status, "IoFailure", "{:?}", ops[3]);
    assert_eq!(
        ops[3].copy_db_writes, 1,
        "the fault acted at the first copy write"
    );
    assert!(ops[4].ok());
    assert_eq!(ops[4].detail, "t0,t1,t2");
    assert!(ops[5].ok(), "{:?}", ops[5]);
    let f: Vec<&str> = ops[5].detail.split('/').collect();
    assert_eq!(f[0], "false");
    assert_eq!(
        f[1], f[2],
        "the second checkpoint is complete: {:?}",
        ops[5]
    );
    // The three `create_task`s wrote the same pages (see the store marks test): the WAL's
    // frames hold a third as many distinct pages, each copied once, after the failed write.
    let wal_frames: u64 = f[1].parse().unwrap();
    assert_eq!(ops[5].copy_db_writes, 1 + wal_frames / 3, "{:?}", ops[5]);
    assert!(ops[6].ok());
    assert_eq!(landed(dir.path()), "i0\n");
    assert_intact_with(dir.path(), &ops);
}

/// `IoerrFsync` at the 2nd WAL sync outside every phase, raw rusqlite: the first insert
/// starts the WAL, so its header sync is the 1st and its commit sync the 2nd; the insert
/// fails with exactly `SQLITE_IOERR_FSYNC` and is not there afterwards.
fn raw_ioerr_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.db");
    let conn = open(&db, Some("unix"));
    wal_setup(&conn);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    drop(conn); // the last connection: checkpointed, WAL deleted
    assert_eq!(wal_len(&db), 0);

    let ops = run_child(Scenario::RawIoerrFsync, dir.path(), 2);
    assert_eq!(
        ops[0].status,
        format!("code={}", rusqlite::ffi::SQLITE_IOERR_FSYNC)
    );
    assert_eq!(ops[0].none_wal_syncs, 2);
    assert!(ops[1..].iter().all(ChildOp::ok), "{ops:?}");
    assert_eq!(landed(dir.path()), "i0\n");

    let conn = open(&db, Some("unix"));
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let rows: Vec<String> = conn
        .prepare("SELECT v FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, ["r1", "r2", "r3", "r4"]);
}

#[test]
fn faults_land_where_planned() {
    // The parent makes boards through the default VFS: keep off the other tests' counts.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = child_board();
    let reference = run_child(Scenario::Count, dir.path(), 0);
    assert_eq!(reference.len(), 5);
    assert!(reference.iter().all(ChildOp::ok), "{reference:?}");
    assert_eq!(landed(dir.path()), "");
    assert_intact_with(dir.path(), &reference);
    let writes: Vec<u64> = reference.iter().map(|o| o.commit_wal_writes).collect();
    assert!(writes.windows(2).all(|w| w[1] >= w[0] + 2), "{writes:?}");

    // The 2nd WAL write of the first commit (its 1st is the WAL header).
    commit_ioerr_write(&reference, 2);
    // The 2nd WAL write of the third commit: two whole commits succeed before it.
    commit_ioerr_write(&reference, u32::try_from(writes[1] + 2).unwrap());
    // The first WAL write of the third commit, and from then on.
    commit_full_sticky(&reference, u32::try_from(writes[1] + 1).unwrap());
    checkpoint_ioerr_write();
    raw_ioerr_fsync();
}
