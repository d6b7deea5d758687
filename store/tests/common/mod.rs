//! Helpers shared by the integration tests: making real boards, damaging them in
//! precise ways, and reading their bytes.
//!
//! R2 holds for tests too: a board's files are read or written with `std::fs` only while no
//! connection to the board is open in this process (every helper here documents when it may
//! be called). While a session is open, use [`bytes_via_child`], which reads the file in
//! another process, so that closing its descriptor cannot drop this process's SQLite locks.
// Tests read/write board files with std::fs only while no connection to them is open.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use kanban_store::{
    Board, CheckLevel, CheckReport, NewTask, Role, RunOutcome, StoreConfig, shm_path, wal_path,
};
use rusqlite::Connection;

/// The configuration every test opens boards with.
pub fn gateway() -> StoreConfig {
    StoreConfig::new(Role::Gateway)
}

/// A temporary folder with the path of a board (not yet made) in it.
pub fn new_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    (dir, db)
}

/// Creates a board at `db` with `tasks` tasks (some claimed and completed, so that the
/// event log and `idx_events_run` hold run ids), then closes it. The gateway checkpoints on
/// close, so afterwards the whole board is in the main file and no `-wal`/`-shm` is left.
pub fn make_board(db: &Path, tasks: usize) {
    let mut board = Board::create(db, gateway()).expect("create board");
    board
        .transaction(|t| {
            for i in 0..tasks {
                t.create_task(&NewTask {
                    title: format!("task {i}"),
                    body: format!("body of task {i}: {}", "lorem ipsum ".repeat(10)),
                    priority: (i % 7) as i64,
                    parents: Vec::new(),
                })?;
            }
            Ok(())
        })
        .expect("create tasks");
    board.recompute_ready().expect("recompute ready");
    for _ in 0..tasks.min(20) {
        let Some(claim) = board.claim_next("w1").expect("claim") else {
            break;
        };
        board.heartbeat(claim.run_id).expect("heartbeat");
        board
            .end_run(claim.run_id, RunOutcome::Completed, "ok")
            .expect("end run");
    }
    drop(board);
    assert_eq!(
        sidecars(db),
        Vec::<PathBuf>::new(),
        "the gateway checkpoints on close"
    );
}

/// The full check of the board through the store (a read-only inspection).
pub fn full_check(db: &Path) -> CheckReport {
    let mut board = Board::inspect(db).expect("inspect the board");
    let report = board.check(CheckLevel::Full).unwrap();
    drop(board);
    report
}

/// The board's bytes. Only while no connection to it is open in this process.
pub fn bytes(db: &Path) -> Vec<u8> {
    std::fs::read(db).unwrap_or_else(|e| panic!("read {}: {e}", db.display()))
}

/// The file's bytes, read by a child process (`cat`): safe while this process has the board
/// open, because the descriptor that is closed afterwards is the child's, not ours.
pub fn bytes_via_child(file: &Path) -> Vec<u8> {
    let out = Command::new("cat").arg(file).output().expect("run cat");
    assert!(out.status.success(), "cat {}: {out:?}", file.display());
    out.stdout
}

/// Writes a file that is not (yet) a board. Only while no connection to it is open.
pub fn write(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The `-wal` and `-shm` files that exist beside `db`.
pub fn sidecars(db: &Path) -> Vec<PathBuf> {
    [wal_path(db), shm_path(db)]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

/// `len` deterministic pseudo-random bytes (xorshift), never starting with the SQLite magic.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    if out.first() == Some(&b'S') {
        out[0] = b'X';
    }
    out
}

/// Damages `idx_events_run` of the (closed) board at `db` deterministically: the index
/// misses the entry of one event row, so a full `integrity_check` reports
/// `row N missing from index idx_events_run` and `wrong # of entries in index
/// idx_events_run`, while the pages themselves stay well-formed (`quick_check` is clean).
///
/// How: with `writable_schema`, make SQLite believe the index is partial (`WHERE 0`),
/// insert one event (so the index is not updated), then put the real definition back.
/// Every step uses a fresh raw connection, so each one reads the schema as stored.
pub fn damage_index(db: &Path) {
    let original: String = raw(db)
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'idx_events_run'",
            [],
            |r| r.get(0),
        )
        .expect("read index sql");
    set_index_sql(db, &format!("{original} WHERE 0"));
    raw(db)
        .execute(
            "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
             VALUES ((SELECT min(id) FROM tasks), NULL, 'note', 'not in the index', 0)",
            [],
        )
        .expect("insert event");
    set_index_sql(db, &original);
}

fn set_index_sql(db: &Path, sql: &str) {
    let conn = raw(db);
    conn.execute_batch("PRAGMA writable_schema = ON")
        .expect("writable_schema");
    let changed = conn
        .execute(
            "UPDATE sqlite_master SET sql = ?1 WHERE name = 'idx_events_run'",
            [sql],
        )
        .expect("rewrite index sql");
    assert_eq!(changed, 1);
}

/// A plain rusqlite connection, bypassing the store (for making bad files only; closing it
/// checkpoints and removes the `-wal`, as SQLite does by default).
pub fn raw(db: &Path) -> Connection {
    Connection::open(db).unwrap_or_else(|e| panic!("open {} raw: {e}", db.display()))
}

/// One leaf page of a table's b-tree, as SQLite's `dbstat` table describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafPage {
    /// The page number (1-based, as SQLite counts).
    pub pageno: u64,
    /// How many rows (cells) the page holds.
    pub cells: u64,
}

/// The leaf pages of `table` in the board at `db`, in b-tree order (lowest keys first),
/// from the `dbstat` virtual table (compiled into the bundled SQLite). Opens and closes a
/// raw connection, so call it only while nothing else has the board open: closing the
/// last connection checkpoints, and afterwards the whole board is in the main file.
pub fn leaf_pages(db: &Path, table: &str) -> Vec<LeafPage> {
    let conn = raw(db);
    let pages = conn
        .prepare(
            "SELECT pageno, ncell FROM dbstat WHERE name = ?1 AND pagetype = 'leaf'
             ORDER BY path",
        )
        .and_then(|mut s| {
            s.query_map([table], |r| {
                let (pageno, cells): (i64, i64) = (r.get(0)?, r.get(1)?);
                Ok(LeafPage {
                    pageno: pageno as u64,
                    cells: cells as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_else(|e| panic!("dbstat of {table} in {}: {e}", db.display()));
    drop(conn);
    pages
}

/// The page size a database header (its first 100 bytes) gives: the big-endian `u16` at
/// offset 16, where 1 means 65536.
pub fn page_size(header: &[u8]) -> u64 {
    match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        raw => u64::from(raw),
    }
}

/// Overwrites page `pageno` of the closed board at `db` with pseudo-random bytes from
/// `seed` (see [`random_bytes`]), in place. The page-type byte is made invalid, so that
/// SQLite cannot take the garbage for a b-tree page and every read of the page fails.
/// Only while no connection to the board is open in this process, and with no `-wal`
/// beside it (a WAL frame of the page would hide the damage).
pub fn overwrite_page(db: &Path, pageno: u64, seed: u64) {
    use std::os::unix::fs::FileExt;
    assert_eq!(
        sidecars(db),
        Vec::<PathBuf>::new(),
        "damage a checkpointed board only"
    );
    assert!(pageno > 1, "page 1 holds the header and the schema");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    let mut header = [0u8; 100];
    file.read_exact_at(&mut header, 0).expect("read the header");
    let page_size = page_size(&header);
    let mut garbage = random_bytes(page_size as usize, seed);
    if matches!(garbage[0], 2 | 5 | 10 | 13) {
        garbage[0] ^= 0x80;
    }
    file.write_all_at(&garbage, (pageno - 1) * page_size)
        .unwrap_or_else(|e| panic!("write page {pageno} of {}: {e}", db.display()));
    file.sync_all().expect("sync");
}

/// What one run of `kanban-db` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `kanban-db` binary of this build.
pub fn kanban_db<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-db"))
        .args(args)
        .output()
        .expect("run kanban-db");
    Run {
        code: out.status.code().expect("kanban-db exited by a signal"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

// ------------------------------------------------- one board, one identity (layouts)

/// Everything in `folder` and below it, sorted: each entry's name (relative), kind (a
/// symlink with its target), size, mode and owner. Compare two listings to show that an
/// operation left a folder exactly as it was. Call it only while nothing has a board in
/// `folder` open, or when only metadata (`lstat`) is read, as here.
pub fn listing(folder: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![folder.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".into()
            } else {
                format!("{} bytes", meta.len())
            };
            let name = path.strip_prefix(folder).unwrap().display().to_string();
            out.push(format!(
                "{name} {kind} mode {:o} owner {}:{}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ));
        }
    }
    out.sort();
    out
}

/// Writes `contents` to a new file at `path` (never a board: a fake quarantine copy) and
/// sets its modification time to `secs` after the epoch.
pub fn write_at(path: &Path, contents: &[u8], secs: u64) {
    write(path, contents);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(at))
        .unwrap();
}

/// A gateway serving the board's socket from a thread of its own until dropped
/// (single-writer mode).
pub struct Serving {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Opens the gateway with `cfg`, binds and serves; returns once it listens.
    pub fn start(db: &Path, cfg: StoreConfig) -> Serving {
        use std::sync::atomic::Ordering;
        let db = db.to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let mut gateway = Board::open_with(&db, cfg).unwrap();
            let server = kanban_store::WriteServer::bind(&mut gateway).unwrap();
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                server.serve(&mut gateway).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
        ready_rx.recv().unwrap();
        Serving {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A files observer that records every change it is told, and what it recorded.
pub fn recording() -> (
    std::sync::Arc<std::sync::Mutex<Vec<kanban_store::FileChange>>>,
    kanban_store::FilesObserver,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = seen.clone();
    let observer: kanban_store::FilesObserver =
        std::sync::Arc::new(move |c: &kanban_store::FileChange| {
            into.lock().unwrap().push(c.clone());
        });
    (seen, observer)
}
