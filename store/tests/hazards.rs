//! Each hazard switch does exactly the upstream mistake its name says, seen from outside
//! (files in the folder, inodes, open descriptors, journal modes, what another process
//! reads), each next to the hardened store doing the same steps without showing it.
//!
//! Covered elsewhere, not repeated here: `raw-header-peek` (`locks.rs`, `upstream_bug.rs`),
//! `journal-toggle-on-error`'s connect half (`rules.rs`, `r4_hazard_*`),
//! `autocheckpoint-everywhere` (`rules.rs`, `r6_hazard_*`) and the read cost of
//! `integrity-on-connect` (`rules.rs`, `r7_hazard_*`).
//!
//! Not tested here: `connection-across-fork`, which needs a session opened before `fork()`
//! and used in the child; the fault harness tests it with its forking supervisor (a test
//! binary never forks: the test harness is multi-threaded). `sync-off` can only show on a
//! power loss, so only its classification is checked.
//!
//! Children: hazards that act once per process, or a second process's view of the board,
//! run in a fresh copy of this binary (see `child/mod.rs`), told what to do through
//! environment variables, answering with `kanban: <key>=<value>` lines on stdout.
// std::fs on board files only for metadata (names, inodes, sizes) or reads once they are closed.
#![allow(clippy::disallowed_methods)]

use crate::child;
use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kanban_store::hazards::{Hazard, HazardSet};
use kanban_store::{
    Board, CheckLevel, Error, NewTask, Quarantined, Role, StoreConfig, shm_path, wal_path,
};

// ------------------------------------------------------------------------------ helpers

/// A folder with a fresh, empty board in it, made and closed by the gateway (so the whole
/// board is in the main file and no `-wal`/`-shm` is left).
fn new_board() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, common::gateway()).unwrap());
    assert_eq!(common::sidecars(&db), Vec::<PathBuf>::new());
    (dir, db)
}

/// A folder with a board of 30 tasks whose `idx_events_run` misses one entry.
fn damaged_board() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    common::make_board(&db, 30);
    common::damage_index(&db);
    (dir, db)
}

fn set(hazards: &[Hazard]) -> HazardSet {
    hazards.iter().copied().collect()
}

fn config(role: Role, hazards: HazardSet) -> StoreConfig {
    let mut cfg = StoreConfig::new(role);
    cfg = cfg.hazards(hazards);
    cfg
}

fn task(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        ..Default::default()
    }
}

/// `<db><suffix>`.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The names in `db`'s folder that start with `<db name><prefix>`, sorted.
fn names_beside(db: &Path, prefix: &str) -> Vec<String> {
    let start = format!("{}{prefix}", db.file_name().unwrap().to_str().unwrap());
    let mut names: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(&start))
        .collect();
    names.sort();
    names
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// The journal mode as a plain SQLite connection sees it (only once every session of this
/// process is closed: this connection's close checkpoints and removes the `-wal`).
fn journal_mode(db: &Path) -> String {
    common::raw(db)
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap()
}

/// How many of this process's descriptors are open on `file`.
fn descriptors_on(file: &Path) -> usize {
    let file = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == file)
        .count()
}

// ------------------------------------------------------------------------------- child

/// The child entry test.
const ENTRY: &str = "hazards::hazard_child";

/// What a child does (its role), on the board `KANBAN_DB`, with the hazards named in
/// `KANBAN_HAZARDS` (comma-separated, empty for the hardened store), as a worker:
/// - `count`: open, print `count=<tasks>`;
/// - `count-write-reopen`: `count`, then write 5 tasks, close, open again, `count` again;
/// - `write-past-fsize`: open, lower this process's file-size limit so that the WAL
///   cannot grow past 64 KiB, write one large task, print `error=<kind>` for the error the
///   write returned, then restore the limit and close.
#[test]
#[ignore = "child process entry"]
fn hazard_child() {
    let Some(role) = child::role() else { return };
    let db = PathBuf::from(std::env::var("KANBAN_DB").unwrap());
    let hazards: HazardSet = std::env::var("KANBAN_HAZARDS")
        .unwrap()
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| Hazard::from_name(n).unwrap_or_else(|| panic!("no hazard {n}")))
        .collect();
    let cfg = config(Role::Worker, hazards);
    let count = |b: &mut Board| b.list_board().unwrap().len();
    match role.as_str() {
        "count" => {
            let mut b = Board::open_with(&db, cfg).unwrap();
            println!("kanban: count={}", count(&mut b));
        }
        "count-write-reopen" => {
            let mut b = Board::open_with(&db, cfg.clone()).unwrap();
            println!("kanban: count={}", count(&mut b));
            for i in 0..5 {
                b.create_task(&task(&format!("child {i}"))).unwrap();
            }
            drop(b);
            let mut b = Board::open_with(&db, cfg).unwrap();
            println!("kanban: count={}", count(&mut b));
        }
        "write-past-fsize" => {
            let mut b = Board::open_with(&db, cfg).unwrap();
            let restore = limit_file_size(64 * 1024);
            let result = b.create_task(&NewTask {
                title: "too big for the file-size limit".into(),
                body: "x".repeat(512 * 1024),
                ..Default::default()
            });
            limit_file_size(restore);
            let kind = match result {
                Ok(_) => "none".to_string(),
                Err(Error::Sqlite { source, .. }) => {
                    format!("sqlite({:?})", source.sqlite_error_code())
                }
                Err(Error::DiskFull { .. }) => "disk-full".into(),
                Err(Error::IoFailure { .. }) => "io-failure".into(),
                Err(Error::Busy { .. }) => "busy".into(),
                Err(e) => format!("other({e})"),
            };
            println!("kanban: error={kind}");
            drop(b);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Sets this process's soft `RLIMIT_FSIZE` to `bytes` (writes past it fail with `EFBIG`,
/// `SIGXFSZ` being ignored) and returns the previous soft limit. Children only: the limit
/// is per process, and the parent runs other tests' writes in parallel.
fn limit_file_size(bytes: libc::rlim_t) -> libc::rlim_t {
    assert!(child::role().is_some(), "only in a child process");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid, owned struct; ignoring SIGXFSZ only turns the
    // signal into the EFBIG error that SQLite reports as an I/O error.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        let previous = limit.rlim_cur;
        limit.rlim_cur = bytes;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        previous
    }
}

/// Runs the child `role` on `db` with `hazards` and returns the values of its `key=` lines.
fn run_child(role: &str, db: &Path, hazards: HazardSet, key: &str) -> Vec<String> {
    let names: Vec<&str> = hazards.iter().map(Hazard::name).collect();
    let env = [
        ("KANBAN_DB", db.display().to_string()),
        ("KANBAN_HAZARDS", names.join(",")),
    ];
    let out = child::spawn(ENTRY, role, &env).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {role} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("kanban: {key}=");
    stdout
        .lines()
        // `--nocapture` may put the harness's "test ... " before the first line.
        .filter_map(|l| l.split_once(&prefix).map(|(_, v)| v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------- the hazard set

#[test]
fn naive_is_the_upstream_code_and_every_name_round_trips() {
    let naive: Vec<Hazard> = HazardSet::naive().iter().collect();
    assert_eq!(
        naive,
        [
            Hazard::RawHeaderPeek,
            Hazard::CopySidecarsOnCheck,
            Hazard::JournalToggleOnError,
            Hazard::UnboundedBackups,
            Hazard::AutocheckpointEverywhere,
            Hazard::ConnectPerOperation,
            Hazard::InitOnlyFlock,
            Hazard::PageCountPeekAfterCommit,
            Hazard::IntegrityOncePerProcess,
        ]
    );
    for h in Hazard::ALL {
        assert_eq!(Hazard::from_name(h.name()), Some(h));
        assert_eq!(h.to_string(), h.name());
        assert!(set(&[h]).contains(h));
        assert_eq!(set(&[h]).iter().collect::<Vec<_>>(), [h]);
    }
    assert_eq!(Hazard::from_name("no-such-hazard"), None);
    assert_eq!(HazardSet::default().iter().count(), 0);
}

/// `synchronous=OFF` and `NORMAL` (for every commit, or for the checkpoint with
/// `nosync-checkpoint`) lose commits, and `no-dir-fsync` copies, only when the OS
/// does not get to write its page cache out (power loss, kernel crash); a killed process's
/// writes are already in the kernel and survive. The store has no public accessor for
/// `synchronous` (and gets none for a test), so all that can be checked here is that the
/// harness is told not to expect kills to show them.
#[test]
fn the_power_cut_hazards_are_the_ones_kills_cannot_show() {
    for h in Hazard::ALL {
        let power_only = [
            Hazard::SyncOff,
            Hazard::SyncNormal,
            Hazard::NoDirFsync,
            Hazard::NosyncCheckpoint,
        ];
        assert_eq!(h.visible_to_kills(), !power_only.contains(&h), "{h}");
    }
}

// ------------------------------------------------------------- copy-sidecars-on-check

/// A worker session with a few tasks in its WAL runs a check; returns which
/// `<db>.check-copy*` files exist afterwards, with the session still open.
fn check_copies(hazards: HazardSet) -> Vec<String> {
    let (_dir, db) = new_board();
    let mut b = Board::open_with(&db, config(Role::Worker, hazards)).unwrap();
    for i in 0..3 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
    }
    assert!(b.check(CheckLevel::Quick).unwrap().is_ok());
    let copies = names_beside(&db, ".check-copy");
    for (copy, of) in [
        (".check-copy", ""),
        (".check-copy-wal", "-wal"),
        (".check-copy-shm", "-shm"),
    ] {
        if let (Ok(copy), Ok(of)) = (
            std::fs::metadata(beside(&db, copy)),
            std::fs::metadata(beside(&db, of)),
        ) {
            assert_eq!(copy.len(), of.len(), "{copy:?} is not a copy of {of:?}");
        }
    }
    drop(b);
    copies
}

#[test]
fn copy_sidecars_on_check_copies_db_wal_and_shm_with_plain_file_io() {
    let copies = check_copies(set(&[Hazard::CopySidecarsOnCheck]));
    assert_eq!(
        copies,
        [
            "kanban.db.check-copy",
            "kanban.db.check-copy-shm",
            "kanban.db.check-copy-wal"
        ]
    );
}

#[test]
fn hardened_check_copies_nothing() {
    assert_eq!(check_copies(HazardSet::default()), Vec::<String>::new());
}

// ----------------------------------------------- integrity-on-connect, unbounded-backups

/// Opening the damaged board 10 times with `hazards`: every attempt fails with
/// `Error::Corrupt` naming the damaged index; returns the `<db>.corrupt.*` files left.
fn open_damaged_ten_times(hazards: HazardSet) -> (tempfile::TempDir, Vec<String>) {
    let (dir, db) = damaged_board();
    for attempt in 1..=10 {
        match Board::open_with(&db, config(Role::Worker, hazards)) {
            Err(Error::Corrupt { path, detail }) => {
                assert_eq!(path, db);
                assert!(detail.contains("idx_events_run"), "{detail}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
        let backups = names_beside(&db, ".corrupt.")
            .into_iter()
            .filter(|n| n.ends_with(".bak"))
            .count();
        assert_eq!(backups, attempt, "one more backup per attempt");
    }
    let left = names_beside(&db, ".corrupt.");
    (dir, left)
}

#[test]
fn integrity_on_connect_with_unbounded_backups_keeps_a_new_backup_per_open() {
    let (dir, left) =
        open_damaged_ten_times(set(&[Hazard::IntegrityOnConnect, Hazard::UnboundedBackups]));
    assert_eq!(left.len(), 10, "{left:?}");
    assert!(left.iter().all(|n| n.ends_with(".bak")), "{left:?}");
    // No dedup: ten copies of the same damaged board (made with the backup API, each a
    // database that shows the same damage).
    let bytes: Vec<Vec<u8>> = left
        .iter()
        .map(|n| common::bytes(&dir.path().join(n)))
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] == w[1]), "the copies differ");
    let mut copy = Board::inspect(dir.path().join(&left[0])).unwrap();
    assert_shows_index_damage(&mut copy);
}

#[test]
fn with_copy_sidecars_every_open_also_leaves_wal_and_shm_copies() {
    let (dir, left) = open_damaged_ten_times(set(&[
        Hazard::IntegrityOnConnect,
        Hazard::UnboundedBackups,
        Hazard::CopySidecarsOnCheck,
    ]));
    assert_eq!(left.len(), 30, "{left:?}");
    for suffix in [".bak", ".bak-wal", ".bak-shm"] {
        assert_eq!(
            left.iter().filter(|n| n.ends_with(suffix)).count(),
            10,
            "{suffix}: {left:?}"
        );
    }
    // The check on connect also copied the files first.
    assert_eq!(
        names_beside(&dir.path().join("kanban.db"), ".check-copy").len(),
        3
    );
}

#[test]
fn hardened_open_does_not_check_and_quarantine_keeps_the_damage_once() {
    let (_dir, db) = damaged_board();
    let mut b = Board::open_with(&db, config(Role::Worker, HazardSet::default())).unwrap();
    let report = b.check(CheckLevel::Full).unwrap();
    assert!(report.is_corrupt());
    assert!(
        report
            .integrity
            .iter()
            .any(|f| f.contains("idx_events_run")),
        "{report:?}"
    );
    let Quarantined::Saved(kept) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    for _ in 1..10 {
        assert_eq!(
            b.quarantine().unwrap(),
            Quarantined::AlreadyKept(kept.clone())
        );
    }
    drop(b);
    assert_eq!(
        kanban_store::quarantine::list(&db).unwrap(),
        std::slice::from_ref(&kept)
    );
    assert_eq!(names_beside(&db, ".corrupt."), Vec::<String>::new());
    assert_eq!(names_beside(&db, ".check-copy"), Vec::<String>::new());
    // The one copy is the damaged board, damage included.
    let mut copy = Board::inspect(&kept).unwrap();
    assert_shows_index_damage(&mut copy);
}

// ------------------------------------------------------------------ replace-while-open

/// Opens the damaged board once with `hazards`; returns the open's result (as text) and
/// whether the db file's inode changed.
fn open_damaged_once(hazards: HazardSet) -> (tempfile::TempDir, PathBuf, Result<(), String>, bool) {
    let (dir, db) = damaged_board();
    let before = inode(&db);
    let result = Board::open_with(&db, config(Role::Worker, hazards))
        .map(drop)
        .map_err(|e| match e {
            Error::Corrupt { detail, .. } => detail,
            other => panic!("{other:?}"),
        });
    let replaced = inode(&db) != before;
    (dir, db, result, replaced)
}

#[test]
fn replace_while_open_renames_a_rebuilt_board_over_the_live_file() {
    let (_dir, db, result, replaced) =
        open_damaged_once(set(&[Hazard::IntegrityOnConnect, Hazard::ReplaceWhileOpen]));
    let detail = result.unwrap_err();
    assert!(detail.contains("idx_events_run"), "{detail}");
    assert!(replaced, "the db file is still the same inode");
    assert_eq!(names_beside(&db, ".rebuild"), Vec::<String>::new());
    // What is there now is the rebuild, a new file made with VACUUM INTO while the session
    // still had the old one open. VACUUM copies index entries as they are, so the rebuild
    // is the same board, index damage included: the replacement repaired nothing.
    let mut b = Board::open_with(&db, config(Role::Worker, HazardSet::default())).unwrap();
    let report = b.check(CheckLevel::Full).unwrap();
    assert!(
        report
            .integrity
            .iter()
            .any(|f| f.contains("idx_events_run")),
        "{report:?}"
    );
    assert_eq!(b.list_board().unwrap().len(), 30);
}

#[test]
fn without_replace_while_open_the_file_stays_the_same_inode() {
    // The check on connect alone fails the open but leaves the file alone...
    let (_dir, _db, result, replaced) = open_damaged_once(set(&[Hazard::IntegrityOnConnect]));
    assert!(result.is_err());
    assert!(!replaced);
    // ...and the hardened store opens it (no check on open) and leaves it alone too.
    let (_dir, _db, result, replaced) = open_damaged_once(HazardSet::default());
    assert_eq!(result, Ok(()));
    assert!(!replaced);
}

// --------------------------------------------------------- delete-sidecars-after-crash

/// A worker writes 20 tasks and closes: workers never checkpoint, so the 20 committed
/// tasks are in `-wal` only. Then a fresh process opens the board with `hazards` and
/// counts tasks, writes 5, closes, opens again and counts again.
fn counts_after_a_fresh_process_opens(hazards: HazardSet) -> Vec<String> {
    let (_dir, db) = new_board();
    let mut b = Board::open_with(&db, config(Role::Worker, HazardSet::default())).unwrap();
    for i in 0..20 {
        b.create_task(&task(&format!("t{i}"))).unwrap();
    }
    drop(b);
    let wal = std::fs::metadata(wal_path(&db)).unwrap().len();
    assert!(wal > 20 * 4096, "the 20 tasks are in the WAL ({wal} bytes)");
    run_child("count-write-reopen", &db, hazards, "count")
}

#[test]
fn delete_sidecars_after_crash_loses_committed_transactions() {
    let counts = counts_after_a_fresh_process_opens(set(&[Hazard::DeleteSidecarsAfterCrash]));
    // The first open in the process deleted -wal and -shm: the 20 committed tasks are
    // gone. The second open in the same process deletes nothing (5 written since).
    assert_eq!(counts, ["0", "5"]);
}

#[test]
fn hardened_open_keeps_the_wal() {
    let counts = counts_after_a_fresh_process_opens(HazardSet::default());
    assert_eq!(counts, ["20", "25"]);
}

// ---------------------------------------------------------------------- hard-link-alias

/// What [`alias_view`] sees while the session is open.
struct AliasView {
    alias_files: Vec<String>,
    real_sidecars: Vec<PathBuf>,
    other_process_count: String,
    own_count: usize,
}

/// A worker session with `hazards` writes one task; while it is open, looks at the files
/// `<db>.alias*` (checking that the alias is a hard link to the board) and `<db>-wal`/`-shm`,
/// at what a hardened worker in another process counts, and at what the session counts.
fn alias_view(hazards: HazardSet) -> AliasView {
    let (_dir, db) = new_board();
    // The dashboard is the role that opens the board through the second name.
    let mut b = Board::open_with(&db, config(Role::Dashboard, hazards)).unwrap();
    b.create_task(&task("written through the session")).unwrap();
    let alias = beside(&db, ".alias");
    if let Ok(meta) = std::fs::symlink_metadata(&alias) {
        let real = std::fs::metadata(&db).unwrap();
        assert!(meta.file_type().is_file(), "a hard link, not a symlink");
        assert_eq!((meta.ino(), meta.dev()), (real.ino(), real.dev()));
        assert_eq!((meta.nlink(), real.nlink()), (2, 2));
    }
    let view = AliasView {
        alias_files: names_beside(&db, ".alias"),
        real_sidecars: common::sidecars(&db),
        // The other process runs with the same switch (a hardened one refuses the board
        // once it has two names: `Error::HardLinked`); as a worker it uses the real name.
        other_process_count: run_child("count", &db, hazards, "count").concat(),
        own_count: b.list_board().unwrap().len(),
    };
    drop(b);
    view
}

#[test]
fn hard_link_alias_gives_the_board_a_second_name_and_second_sidecars() {
    let view = alias_view(set(&[Hazard::HardLinkAlias]));
    assert_eq!(
        view.alias_files,
        [
            "kanban.db.alias",
            "kanban.db.alias-shm",
            "kanban.db.alias-wal"
        ]
    );
    // SQLite knows the board by the alias only: its WAL and shm are the alias's.
    assert_eq!(view.real_sidecars, Vec::<PathBuf>::new());
    // The split brain: a process opening the board by its real name uses `<db>-wal`, and
    // does not see the commit that sits in `<db>.alias-wal`.
    assert_eq!(view.own_count, 1);
    assert_eq!(view.other_process_count, "0");
}

#[test]
fn hardened_sessions_use_one_name() {
    let view = alias_view(HazardSet::default());
    assert_eq!(view.alias_files, Vec::<String>::new());
    assert_eq!(view.real_sidecars.len(), 2);
    assert_eq!(view.own_count, 1);
    assert_eq!(view.other_process_count, "1");
}

// -------------------------------------------------------------------------- journal-off

/// The journal mode of a lone worker session with `hazards` (through `info`), and then
/// the board's persistent mode once it is closed.
fn journal_modes(hazards: HazardSet) -> (String, String) {
    let (_dir, db) = new_board();
    let mut b = Board::open_with(&db, config(Role::Worker, hazards)).unwrap();
    b.create_task(&task("t")).unwrap();
    let session = b.info().unwrap().journal_mode;
    drop(b);
    (session, journal_mode(&db))
}

#[test]
fn journal_off_turns_the_journal_off() {
    // Turning it off takes the board out of WAL (possible because the session's connection
    // is the only one): afterwards the file says rollback (`delete`), not WAL.
    assert_eq!(
        journal_modes(set(&[Hazard::JournalOff])),
        ("off".to_string(), "delete".to_string())
    );
}

#[test]
fn hardened_journal_is_wal() {
    assert_eq!(
        journal_modes(HazardSet::default()),
        ("wal".to_string(), "wal".to_string())
    );
}

// ------------------------------------------------------ journal-toggle-on-error (error)

/// A fresh worker process with `hazards` writes a transaction that fails with an SQLite
/// I/O error (the WAL cannot grow past the file-size limit); returns the error kind and
/// the journal mode once that process has exited.
///
/// Why not "hold the write lock from another connection so the write is busy": the
/// fallback runs `journal_mode=DELETE`, and SQLite leaves WAL only on a connection that
/// gets the exclusive lock on the db file, i.e. when no other connection has the board
/// open (WAL connections hold a shared lock on it for as long as they are open). The
/// blocker that made the write busy is still open when the fallback runs (synchronously,
/// inside the failed call), so the switch would always be refused. An error that needs no
/// other connection is a write the file-size limit refuses, as a full disk would.
fn mode_after_a_failed_write(hazards: HazardSet) -> (String, String) {
    let (_dir, db) = new_board();
    let errors = run_child("write-past-fsize", &db, hazards, "error");
    (errors.concat(), journal_mode(&db))
}

/// The sqlite error the write gets: SQLITE_IOERR (EFBIG on the WAL).
const WRITE_ERROR: &str = "io-failure";

#[test]
fn journal_toggle_on_error_falls_back_to_delete_after_a_failed_write() {
    // As upstream (and in `naive()`): with a connection per operation, the failed write's
    // connection is closed when the fallback connects, so the fallback's is the only one.
    let (error, mode) = mode_after_a_failed_write(set(&[
        Hazard::JournalToggleOnError,
        Hazard::ConnectPerOperation,
    ]));
    assert_eq!(error, WRITE_ERROR);
    assert_eq!(mode, "delete");
}

/// The documented behaviour of the switch on its own: the fallback runs on the session's
/// own connection (SQLite leaves WAL only when no other connection has the board open).
#[test]
fn journal_toggle_on_error_alone_falls_back_to_delete_after_a_failed_write() {
    let (error, mode) = mode_after_a_failed_write(set(&[Hazard::JournalToggleOnError]));
    assert_eq!(error, WRITE_ERROR);
    assert_eq!(mode, "delete");
}

#[test]
fn hardened_failed_write_stays_wal() {
    let (error, mode) = mode_after_a_failed_write(HazardSet::default());
    assert_eq!(error, WRITE_ERROR);
    assert_eq!(mode, "wal");
}

// ------------------------------------------------------------------ connect-per-operation

/// Descriptors this process holds on the db, `-wal` and `-shm` between operations of a
/// session in `role` with `hazards` (after open, after a write, after a read).
fn descriptors_between_operations(role: Role, hazards: HazardSet) -> Vec<usize> {
    let (_dir, db) = new_board();
    let files = [db.clone(), wal_path(&db), shm_path(&db)];
    let held = |files: &[PathBuf]| -> usize {
        files
            .iter()
            .filter(|f| f.exists())
            .map(|f| descriptors_on(f))
            .sum()
    };
    let mut b = Board::open_with(&db, config(role, hazards)).unwrap();
    let mut seen = vec![held(&files)];
    b.create_task(&task("t")).unwrap();
    seen.push(held(&files));
    assert_eq!(b.list_board().unwrap().len(), 1);
    seen.push(held(&files));
    drop(b);
    seen
}

#[test]
fn connect_per_operation_holds_no_descriptor_between_operations() {
    // Dashboards too: upstream connected afresh for every request and poll, reads included.
    for role in [Role::Worker, Role::Dashboard] {
        assert_eq!(
            descriptors_between_operations(role, set(&[Hazard::ConnectPerOperation])),
            [0, 0, 0],
            "{role}"
        );
    }
}

#[test]
fn hardened_session_keeps_its_connections_open() {
    for role in [Role::Worker, Role::Dashboard] {
        let seen = descriptors_between_operations(role, HazardSet::default());
        assert!(seen.iter().all(|&n| n >= 1), "{role}: {seen:?}");
    }
}

// ------------------------------------------------------- init-only-flock, page-count peek

/// The `/proc/locks` entries on `file` (matched by inode): lock kind (`POSIX`, `OFDLCK`,
/// `FLOCK`) and holder (`-1` for OFD locks, which belong to no process).
fn locks_on(file: &Path) -> Vec<(String, i64)> {
    let inode = inode(file);
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
            let on: u64 = f.get(5)?.rsplit(':').next()?.parse().ok()?;
            let holder: i64 = f.get(4)?.parse().ok()?;
            (on == inode).then(|| (f[1].to_string(), holder))
        })
        .collect()
}

/// This process's POSIX (SQLite's) locks on `file`.
fn posix_locks_here(file: &Path) -> usize {
    let me = i64::from(std::process::id());
    locks_on(file)
        .iter()
        .filter(|(kind, pid)| kind == "POSIX" && *pid == me)
        .count()
}

/// Holds upstream's `flock` on `<db>.lock`, as another process initialising the board would.
struct InitFlockHeld {
    _file: std::fs::File,
}

impl InitFlockHeld {
    fn take(db: &Path) -> InitFlockHeld {
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(kanban_store::lock_path(db))
            .unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is open; a non-blocking flock.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        InitFlockHeld { _file: file }
    }
}

#[test]
fn naive_sessions_hold_no_lock_of_their_own() {
    use kanban_store::hazards::{LockFile, Mode};
    use kanban_store::lock_path;
    let (_dir, db) = new_board();
    let lock = lock_path(&db);
    let mut hardened = Board::open_with(&db, config(Role::Gateway, HazardSet::default())).unwrap();
    hardened.list_board().unwrap();
    assert!(
        locks_on(&lock).iter().any(|(kind, _)| kind == "OFDLCK"),
        "{:?}",
        locks_on(&lock)
    );
    drop(hardened);

    let mut naive = Board::open_with(&db, config(Role::Gateway, HazardSet::naive())).unwrap();
    naive.create_task(&task("t")).unwrap();
    assert_eq!(locks_on(&lock), [], "no session, gateway or init lock held");
    // Nothing keeps a maintenance (or a second gateway) away.
    let maintenance = LockFile::open(&db).unwrap();
    assert!(maintenance.try_lock_session(Mode::Exclusive).unwrap());
    assert!(
        maintenance
            .lock_gateway(std::time::Duration::ZERO, &kanban_store::SystemClock)
            .is_ok()
    );
    let mut second = Board::open_with(&db, config(Role::Gateway, HazardSet::naive())).unwrap();
    second.create_task(&task("u")).unwrap();
    assert_eq!(naive.list_board().unwrap().len(), 2);
}

#[test]
fn init_only_flock_is_taken_by_the_first_open_only() {
    let (_dir, db) = new_board();
    let mut cfg = config(Role::Worker, set(&[Hazard::InitOnlyFlock]));
    cfg = cfg.lock_timeout(std::time::Duration::from_millis(30));
    let held = InitFlockHeld::take(&db);
    match Board::open_with(&db, cfg.clone()) {
        Err(Error::Busy { what, .. }) => assert!(what.contains("init flock"), "{what}"),
        other => panic!("the first open must wait for the init flock: {other:?}"),
    }
    drop(held);
    drop(Board::open_with(&db, cfg.clone()).unwrap());
    // Initialised in this process: later opens take no lock at all.
    let _held = InitFlockHeld::take(&db);
    let mut b = Board::open_with(&db, cfg).unwrap();
    b.create_task(&task("t")).unwrap();
}

/// This process's POSIX locks on the db right after a worker session with `hazards`
/// committed (its connection stays open).
fn db_locks_after_a_commit(hazards: HazardSet) -> usize {
    let (_dir, db) = new_board();
    let mut b = Board::open_with(&db, config(Role::Worker, hazards)).unwrap();
    b.create_task(&task("t")).unwrap();
    posix_locks_here(&db)
}

#[test]
fn page_count_peek_after_commit_drops_the_db_locks_of_the_open_connection() {
    assert_eq!(
        db_locks_after_a_commit(set(&[Hazard::PageCountPeekAfterCommit])),
        0
    );
}

#[test]
fn hardened_commit_keeps_the_db_locks() {
    // In WAL mode a connection holds a shared lock on the db for as long as it is open.
    assert!(db_locks_after_a_commit(HazardSet::default()) >= 1);
}

// ------------------------------------------------------------ integrity-once-per-process

/// A healthy board opened once with `hazards`, then damaged, then opened again in the same
/// process: whether the second open refused it.
fn second_open_refuses_later_damage(hazards: HazardSet) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    common::make_board(&db, 30);
    drop(Board::open_with(&db, config(Role::Worker, hazards)).unwrap());
    common::damage_index(&db);
    match Board::open_with(&db, config(Role::Worker, hazards)) {
        Err(Error::Corrupt { .. }) => true,
        Ok(mut b) => {
            assert_shows_index_damage(&mut b);
            false
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn integrity_once_per_process_checks_until_one_passes() {
    // Upstream's health guard cached a healthy path for the life of the process: damage
    // that appears later is not seen by its later connects (a damaged board is refused on
    // every connect: `open_damaged_ten_times`).
    assert!(!second_open_refuses_later_damage(set(&[
        Hazard::IntegrityOncePerProcess
    ])));
    assert_eq!(
        open_damaged_ten_times(set(&[
            Hazard::IntegrityOncePerProcess,
            Hazard::UnboundedBackups
        ]))
        .1
        .len(),
        10
    );
}

#[test]
fn integrity_on_connect_checks_every_connect() {
    assert!(second_open_refuses_later_damage(set(&[
        Hazard::IntegrityOnConnect
    ])));
}

/// Asserts that a full check of `board` names the damaged `idx_events_run`.
fn assert_shows_index_damage(board: &mut Board) {
    let report = board.check(CheckLevel::Full).unwrap();
    assert!(
        report
            .integrity
            .iter()
            .any(|f| f.contains("idx_events_run")),
        "{report:?}"
    );
}

#[test]
fn damage_unique_index_leaves_duplicates_that_reindex_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    common::make_board(&db, 10);
    kanban_store::hazards::damage_unique_index(&db).unwrap();
    let report = common::full_check(&db);
    assert_eq!(
        report.integrity,
        vec!["non-unique entry in index sqlite_autoindex_notify_subs_1".to_string()],
        "{report:?}"
    );
    assert!(
        report.foreign_keys.is_empty() && report.invariants.is_empty(),
        "{report:?}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let err = conn.execute_batch("REINDEX").unwrap_err();
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    let schema: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'notify_subs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(schema.contains("TEXT PRIMARY KEY"), "{schema}");
}
