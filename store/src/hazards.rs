//! The upstream mistakes, put back one switch at a time (cargo feature `hazards`).
//!
//! The fault harness proves the hardened store safe by showing, next to it, that each
//! mistake it avoids really does break a board under the same workload. Each [`Hazard`]
//! does exactly what its name says and nothing else; [`HazardSet::naive`] is the upstream
//! code at the time of the bug report. None of this exists in a build without the feature.
//!
//! This module is, with `lock`, allowed to touch files with `std::fs`: that is the point.
//! Its renames, links and removes of board files go through `copy.rs`'s `Namespace`, so
//! the files observer (the harness's power-cut model) sees them; none syncs a folder, as
//! upstream did not.
//!
//! Layer: maintenance (the layer order is in `store/ARCHITECTURE.md`).
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

/// The raw lock file of a board, outside the generation protocol: a test or the harness uses
/// it to play a stuck maintenance or a foreign session. Without this feature it is private.
pub use crate::lock::{LockFile, Mode};

pub use crate::hazard::{Hazard, HazardSet};

use crate::check::{self, CheckLevel};
use crate::config::StoreConfig;
use crate::copy::Namespace;
use crate::error::{Error, Result};
use crate::place::{shm_path, wal_path};
use crate::seam::Hooks;

/// Boards this process has opened (for `delete-sidecars-after-crash`).
static OPENED: PathSet = PathSet::new();
/// Boards this process has initialised (for `init-only-flock`).
static INITIALISED: PathSet = PathSet::new();
/// Boards whose health guard passed in this process (for `integrity-once-per-process`).
static HEALTHY: PathSet = PathSet::new();

/// A set of board paths, per process.
struct PathSet(Mutex<Option<HashSet<PathBuf>>>);

impl PathSet {
    const fn new() -> PathSet {
        PathSet(Mutex::new(None))
    }

    fn contains(&self, path: &Path) -> bool {
        let set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.as_ref().is_some_and(|s| s.contains(path))
    }

    /// Adds `path`; whether it was new.
    fn insert(&self, path: &Path) -> bool {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.get_or_insert_with(HashSet::new)
            .insert(path.to_path_buf())
    }
}
/// Distinguishes backups made in the same millisecond.
static BACKUPS: AtomicU64 = AtomicU64::new(0);

/// After the session lock, before the first connection.
fn before_connect(path: &Path, cfg: &StoreConfig) {
    if !cfg.hazards.contains(Hazard::DeleteSidecarsAfterCrash) {
        return;
    }
    if OPENED.insert(path) {
        let ns = Namespace::of(cfg);
        for sidecar in [wal_path(path), shm_path(path)] {
            if sidecar.exists() {
                let _ = ns.remove(&sidecar);
            }
        }
    }
}

/// At the start of every connect.
fn on_connect(path: &Path, cfg: &StoreConfig) {
    if cfg.hazards.contains(Hazard::RawHeaderPeek) {
        for file in [path.to_path_buf(), shm_path(path)] {
            if let Ok(mut f) = std::fs::File::open(&file) {
                let mut header = [0u8; 64];
                let _ = f.read(&mut header);
            } // the close here drops this process's POSIX locks on `file`
        }
    }
}

/// How long `init-only-flock` waits between two attempts at the `flock`.
const FLOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// `init-only-flock`: upstream's `flock` on `<db>.lock`, taken by this process's first open
/// of the board and held (by the returned file, until the caller drops it) while the board
/// is initialised; `None` on later opens, which took no lock at all. Upstream blocked in the
/// kernel; here the wait is a loop of non-blocking attempts on the configured clock (so a
/// deterministic scheduler can let the holder run), given up with [`Error::Busy`] after the
/// lock timeout.
fn init_flock(path: &Path, cfg: &StoreConfig) -> Result<Option<std::fs::File>> {
    if INITIALISED.contains(path) {
        return Ok(None);
    }
    let lock = crate::lock::lock_path(path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|source| Error::Io { path: lock, source })?;
    let mut waited = std::time::Duration::ZERO;
    loop {
        cfg.clock.yield_now();
        // SAFETY: `file` is open for the whole call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        if waited >= cfg.lock_timeout {
            return Err(Error::Busy {
                path: path.to_path_buf(),
                what: "the board's init flock",
                waited_ms: crate::millis::u64_ms(waited),
            });
        }
        cfg.clock.sleep(FLOCK_PAUSE);
        waited += FLOCK_PAUSE;
    }
    INITIALISED.insert(path);
    Ok(Some(file))
}

/// After every commit (`page-count-peek-after-commit`): a plain `open` of the db, a read of
/// the page count in its header, a `close` that drops this process's POSIX locks on it.
fn after_commit(path: &Path, hazards: HazardSet) {
    if !hazards.contains(Hazard::PageCountPeekAfterCommit) {
        return;
    }
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut header = [0u8; 32];
        let _ = f.read(&mut header); // bytes 28..32: the page count
    } // the close here drops this process's POSIX locks on the db
}

/// The path a dashboard opens instead of `path`, for `hard-link-alias`.
fn alias(path: &Path, cfg: &StoreConfig) -> Option<PathBuf> {
    if !cfg.hazards.contains(Hazard::HardLinkAlias) || cfg.role != crate::config::Role::Dashboard {
        return None;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".alias");
    let alias = PathBuf::from(name);
    if std::fs::symlink_metadata(&alias).is_err() && Namespace::of(cfg).link(path, &alias).is_err()
    {
        return None;
    }
    Some(alias)
}

/// Pragmas the hazards change, after the hardened ones.
fn configure(conn: &Connection, cfg: &StoreConfig) -> rusqlite::Result<()> {
    let h = cfg.hazards;
    if h.contains(Hazard::AutocheckpointEverywhere) {
        conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)?;
    }
    if h.contains(Hazard::JournalOff) {
        let _: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0));
    } else if h.contains(Hazard::JournalToggleOnError) {
        // Upstream connect() set WAL every time; it may fail while others are busy.
        let _: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0));
    }
    Ok(())
}

/// After the session's connections are made.
fn after_connect(path: &Path, cfg: &StoreConfig, conn: &Connection) -> Result<()> {
    let h = cfg.hazards;
    let guarded = h.contains(Hazard::IntegrityOnConnect)
        || (h.contains(Hazard::IntegrityOncePerProcess) && !HEALTHY.contains(path));
    if !guarded {
        return Ok(());
    }
    before_check(path, cfg);
    let report = check::run(conn, CheckLevel::Full);
    if report.is_corrupt() {
        guard(path, cfg, conn);
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: report.integrity.join("; "),
        });
    }
    HEALTHY.insert(path);
    Ok(())
}

/// Before an explicit check.
fn before_check(path: &Path, cfg: &StoreConfig) {
    if cfg.hazards.contains(Hazard::CopySidecarsOnCheck) {
        plain_copy(path, &format!("{}.check-copy", path.display()));
    }
}

/// After an explicit check: the health guard reacts to damage.
fn after_check(path: &Path, cfg: &StoreConfig, corrupt: bool) -> Result<()> {
    if corrupt {
        let conn = crate::open::connect(path, cfg, crate::open::Access::ReadWrite)?;
        guard(path, cfg, &conn);
    }
    Ok(())
}

/// After a write failed with `err`: fall back to a rollback journal, on the session's own
/// connection (SQLite leaves WAL only when no other connection has the board open).
fn after_write_error(hazards: HazardSet, err: &Error) -> Option<fn(&Connection)> {
    if !hazards.contains(Hazard::JournalToggleOnError) {
        return None;
    }
    if matches!(
        err,
        Error::Busy { .. }
            | Error::Sqlite { .. }
            | Error::Corrupt { .. }
            | Error::DiskFull { .. }
            | Error::IoFailure { .. }
    ) {
        return Some(|conn| {
            let _: rusqlite::Result<String> =
                conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0));
        });
    }
    None
}

/// The hazards as the store's hooks (`seam.rs`): each hook does what the hazards that are on
/// change at that point, and nothing when none is.
impl Hooks for HazardSet {
    fn raw_siblings(&self) -> bool {
        self.contains(Hazard::RawPathSiblings)
    }

    fn upstream_init(
        &self,
        path: &Path,
        cfg: &StoreConfig,
    ) -> Result<Option<Option<std::fs::File>>> {
        if !self.contains(Hazard::InitOnlyFlock) {
            return Ok(None);
        }
        init_flock(path, cfg).map(Some)
    }

    /// `init-only-flock`: upstream had no generations, so a session never lets go for a
    /// maintenance.
    fn skips_generations(&self) -> bool {
        self.contains(Hazard::InitOnlyFlock)
    }

    fn before_connect(&self, path: &Path, cfg: &StoreConfig) {
        before_connect(path, cfg);
    }

    fn on_connect(&self, path: &Path, cfg: &StoreConfig) {
        on_connect(path, cfg);
    }

    fn allows_hard_links(&self) -> bool {
        self.contains(Hazard::HardLinkAlias)
    }

    fn connect_target(&self, path: &Path, cfg: &StoreConfig) -> Option<PathBuf> {
        alias(path, cfg)
    }

    fn configure(&self, conn: &Connection, cfg: &StoreConfig) -> rusqlite::Result<()> {
        configure(conn, cfg)
    }

    fn after_connect(&self, path: &Path, cfg: &StoreConfig, conn: &Connection) -> Result<()> {
        after_connect(path, cfg, conn)
    }

    /// Upstream connected afresh for every request and poll, reads included.
    fn connects_per_operation(&self) -> bool {
        self.contains(Hazard::ConnectPerOperation)
    }

    /// `sync-off` wins over `sync-normal` when both are on.
    fn synchronous(&self) -> &'static str {
        if self.contains(Hazard::SyncOff) {
            "OFF"
        } else if self.contains(Hazard::SyncNormal) {
            "NORMAL"
        } else {
            "FULL"
        }
    }

    fn syncs_folders(&self) -> bool {
        !self.contains(Hazard::NoDirFsync)
    }

    fn syncs_checkpoints(&self) -> bool {
        !self.contains(Hazard::NosyncCheckpoint)
    }

    fn journal_mode(&self) -> &'static str {
        if self.contains(Hazard::JournalOff) {
            "off"
        } else {
            "wal"
        }
    }

    /// A board that `hard-link-alias` gave a second name is not refused for it.
    fn for_inspection(&self, look: &mut StoreConfig) {
        if self.contains(Hazard::HardLinkAlias) {
            look.hazards = HazardSet::default().with(Hazard::HardLinkAlias);
        }
    }

    fn after_commit(&self, path: &Path) {
        after_commit(path, *self);
    }

    fn on_write_error(&self, err: &Error) -> Option<fn(&Connection)> {
        after_write_error(*self, err)
    }

    fn records_request_ids(&self) -> bool {
        !self.contains(Hazard::ForgetRequestIds)
    }

    fn allows_use_across_fork(&self) -> bool {
        self.contains(Hazard::ConnectionAcrossFork)
    }

    fn before_check(&self, path: &Path, cfg: &StoreConfig) {
        before_check(path, cfg);
    }

    fn after_check(&self, path: &Path, cfg: &StoreConfig, corrupt: bool) -> Result<()> {
        after_check(path, cfg, corrupt)
    }
}

/// The upstream health guard: back the damaged board up (and maybe replace it).
fn guard(path: &Path, cfg: &StoreConfig, conn: &Connection) {
    let h = cfg.hazards;
    if h.contains(Hazard::UnboundedBackups) {
        let n = BACKUPS.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}.corrupt.{}.{}.{n}.bak",
            path.display(),
            cfg.clock.now_ms(),
            std::process::id()
        );
        if h.contains(Hazard::CopySidecarsOnCheck) {
            plain_copy(path, &name);
        } else {
            let _ = conn.backup(
                rusqlite::MAIN_DB,
                &name,
                None::<fn(rusqlite::backup::Progress)>,
            );
        }
    }
    if h.contains(Hazard::ReplaceWhileOpen) {
        let rebuilt = PathBuf::from(format!("{}.rebuild", path.display()));
        let ns = Namespace::of(cfg);
        if rebuilt.exists() {
            let _ = ns.remove(&rebuilt);
        }
        if conn.execute("VACUUM INTO ?1", [rebuilt.to_str()]).is_ok() {
            let _ = ns.rename(&rebuilt, path);
        }
    }
}

/// Copies db, `-wal` and `-shm` with plain file I/O to `dest`, `dest-wal`, `dest-shm`.
fn plain_copy(path: &Path, dest: &str) {
    let _ = std::fs::copy(path, dest);
    let _ = std::fs::copy(wal_path(path), format!("{dest}-wal"));
    let _ = std::fs::copy(shm_path(path), format!("{dest}-shm"));
}

/// Damages `idx_events_run` of the closed board at `db` the way the upstream report saw it:
/// the index misses one event row, so a full `integrity_check` says `wrong # of entries in
/// index idx_events_run`, while every page stays well-formed (`quick_check` is clean).
///
/// How: with `writable_schema`, SQLite is made to believe the index is partial (`WHERE 0`),
/// one event is inserted (so the index is not updated), then the real definition is put
/// back. Each step uses a fresh connection, so each reads the schema as stored. Call it only
/// while no session is open on the board.
pub fn damage_index(db: &Path) -> rusqlite::Result<()> {
    let stored: String = Connection::open(db)?.query_row(
        "SELECT sql FROM sqlite_master WHERE name = 'idx_events_run'",
        [],
        |r| r.get(0),
    )?;
    // A damage killed before it put the definition back left the `WHERE 0`: start over.
    let original = stored.trim_end_matches(" WHERE 0");
    set_index_sql(db, &format!("{original} WHERE 0"))?;
    Connection::open(db)?.execute(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
         VALUES ((SELECT min(id) FROM tasks), NULL, 'note', 'not in the index', 0)",
        [],
    )?;
    set_index_sql(db, original)
}

/// Leaves a comment on a task that does not exist in the closed board at `db` (inserted
/// with foreign keys off): damage beyond indexes that `foreign_key_check` reports while
/// every page still reads well, so a repair rebuilds the board (dropping the comment).
/// Call it only while no session is open on the board.
pub fn damage_reference(db: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open(db)?;
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.execute(
        "INSERT INTO task_comments (task_id, author, body, created_at)
         VALUES ((SELECT max(id) + 1000 FROM tasks), 'damage', 'on no task', 0)",
        [],
    )?;
    Ok(())
}

/// Runs `damage` ([`damage_index`], [`damage_reference`]...) while other processes use the
/// board: with the board to itself (sessions let go at their next operation and reopen
/// after), as a repair has it.
pub fn damage_online(
    db: &Path,
    cfg: &StoreConfig,
    damage: fn(&Path) -> rusqlite::Result<()>,
) -> Result<()> {
    crate::repair::exclusively(db, cfg, || {
        damage(db).map_err(|e| Error::Corrupt {
            path: db.to_path_buf(),
            detail: format!("damaging the board failed: {e}"),
        })
    })
}

fn set_index_sql(db: &Path, sql: &str) -> rusqlite::Result<()> {
    let conn = Connection::open(db)?;
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    conn.execute(
        "UPDATE sqlite_master SET sql = ?1 WHERE name = 'idx_events_run'",
        [sql],
    )?;
    Ok(())
}

/// Leaves two rows of `notify_subs` with the same `name` in the closed board at `db`, both
/// listed by the table's primary-key index `sqlite_autoindex_notify_subs_1`: a full
/// `integrity_check` says `non-unique entry in index sqlite_autoindex_notify_subs_1`, and
/// `REINDEX` fails with `UNIQUE constraint failed: notify_subs.name`. Every page stays
/// well-formed, and every index lists every row.
///
/// What it leaves: the rows `('duplicated by damage_unique_index', 0)`, twice, with two
/// new rowids (cursor 0 breaks no invariant).
///
/// How: with `writable_schema`, the table's definition loses its `PRIMARY KEY` and the
/// autoindex becomes a plain index on `name` over the same b-tree (an autoindex and a
/// plain one-column index store the same `(name, rowid)` entries); the two rows are
/// inserted through it, then the stored definitions are put back. Each step uses a fresh
/// connection, so each reads the schema as stored. Call it only while no session is open
/// on the board, on a board it has not damaged yet (a kill between the steps leaves the
/// table without its key: start again from a fresh board).
pub fn damage_unique_index(db: &Path) -> rusqlite::Result<()> {
    const AUTO: &str = "sqlite_autoindex_notify_subs_1";
    const PLAIN: &str = "damage_unique_index_plain";
    let table: String = Connection::open(db)?.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'notify_subs'",
        [],
        |r| r.get(0),
    )?;
    let without_key = table.replacen("TEXT PRIMARY KEY", "TEXT", 1);
    let unswap = |conn: &Connection| -> rusqlite::Result<()> {
        conn.execute_batch("PRAGMA writable_schema = ON")?;
        conn.execute(
            "UPDATE sqlite_master SET sql = ?1 WHERE type = 'table' AND name = 'notify_subs'",
            [&table],
        )?;
        conn.execute(
            "UPDATE sqlite_master SET name = ?1, sql = NULL WHERE name = ?2",
            [AUTO, PLAIN],
        )?;
        Ok(())
    };
    let swap = Connection::open(db)?;
    swap.execute_batch("PRAGMA writable_schema = ON")?;
    swap.execute(
        "UPDATE sqlite_master SET sql = ?1 WHERE type = 'table' AND name = 'notify_subs'",
        [&without_key],
    )?;
    swap.execute(
        "UPDATE sqlite_master SET name = ?1, sql = ?2 WHERE name = ?3",
        [
            PLAIN,
            &format!("CREATE INDEX {PLAIN} ON notify_subs(name)"),
            AUTO,
        ],
    )?;
    drop(swap);
    Connection::open(db)?.execute(
        "INSERT INTO notify_subs (name, last_event_id)
         VALUES ('duplicated by damage_unique_index', 0), ('duplicated by damage_unique_index', 0)",
        [],
    )?;
    unswap(&Connection::open(db)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection gets the `synchronous` its hazards ask for (FULL without them).
    #[test]
    fn sync_off_and_sync_normal_set_synchronous_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        let none = HazardSet::default();
        for (hazards, want) in [
            (none, 2),
            (none.with(Hazard::SyncNormal), 1),
            (none.with(Hazard::SyncOff), 0),
            (none.with(Hazard::SyncOff).with(Hazard::SyncNormal), 0),
        ] {
            let cfg = StoreConfig::new(crate::Role::Worker).hazards(hazards);
            let conn = crate::open::connect(&db, &cfg, crate::open::Access::Create).unwrap();
            let got: i64 = conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(got, want, "{hazards:?}");
        }
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    /// `nosync-checkpoint` turns `synchronous` OFF on the owner's connection for its
    /// checkpoint only: inside the checkpoint phase the connection says OFF (0), before and
    /// after FULL (2); without the hazard FULL throughout.
    #[test]
    fn nosync_checkpoint_sets_synchronous_off_for_the_checkpoint_only() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;

        use crate::config::{Phase, PhaseObserver};

        let none = HazardSet::default();
        for (hazards, during) in [(none, 2), (none.with(Hazard::NosyncCheckpoint), 0)] {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("kanban.db");
            // The board's own connection, told to the observer once the board is open.
            let handle = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let observer: PhaseObserver = {
                let (handle, seen) = (Arc::clone(&handle), Arc::clone(&seen));
                Arc::new(move |phase, entering| {
                    let raw = handle.load(Ordering::Relaxed);
                    if phase != Phase::Checkpoint || raw == 0 {
                        return;
                    }
                    // SAFETY: the board's open connection, on the thread that uses it,
                    // between its statements; the borrowed copy does not close it.
                    let conn =
                        unsafe { Connection::from_handle(raw as *mut rusqlite::ffi::sqlite3) }
                            .unwrap();
                    seen.lock().unwrap().push((entering, synchronous(&conn)));
                })
            };
            let cfg = StoreConfig::new(crate::Role::Gateway)
                .hazards(hazards)
                .observer(observer);
            let mut board = crate::Board::create(&db, cfg).unwrap();
            for title in ["a", "b", "c"] {
                let task = crate::NewTask {
                    title: title.into(),
                    ..Default::default()
                };
                board.create_task(&task).unwrap();
            }
            let sync_now = |b: &mut crate::Board| {
                // SAFETY: only the address is taken; the observer uses it while `b` is open.
                b.with_conn(|c, _| Ok::<_, Error>((synchronous(c), unsafe { c.handle() } as usize)))
                    .unwrap()
            };
            let (before, raw) = sync_now(&mut board);
            handle.store(raw, Ordering::Relaxed);
            let report = board.checkpoint().unwrap();
            assert!(report.wal_frames > 0, "{report:?}");
            let (after, _) = sync_now(&mut board);
            let seen = seen.lock().unwrap().clone();
            assert_eq!(
                (before, seen, after),
                (2, vec![(true, during), (false, during)], 2),
                "{hazards:?}"
            );
        }
    }
}
