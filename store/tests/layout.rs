//! Hostile layouts: one board reached by several names, sibling files that are not what
//! they should be. Each case shows the db's bytes and the folder listing (names, sizes,
//! modes, owners) unchanged where the store refuses, and the siblings in one place where it
//! accepts (see `store/src/place.rs`).
// Tests read board files with std::fs only while no connection to them is open.
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use crate::common::{bytes, kanban_db, listing, make_board};
use kanban_store::{Board, Error, Role, StoreConfig, lock_path, quarantine, repair, socket_path};

/// A board at `<tmp>/real/kanban.db` and a relative symlink `<tmp>/link.db` to it; the
/// folder is canonical, so the paths are what the store resolves to.
fn symlinked_board() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(base.join("real")).unwrap();
    let target = base.join("real/kanban.db");
    make_board(&target, 3);
    let link = base.join("link.db");
    std::os::unix::fs::symlink("real/kanban.db", &link).unwrap();
    (dir, target, link)
}

/// `db` with `suffix` appended.
fn beside(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

#[test]
fn a_board_opened_through_a_symlink_keeps_every_sibling_beside_its_target() {
    let (dir, target, link) = symlinked_board();
    let before = listing(dir.path());
    {
        let mut board = Board::open(&link, Role::Worker).unwrap();
        assert_eq!(board.list_board().unwrap().len(), 3);
        assert_eq!(board.path(), target, "the board names its canonical path");
    }
    for (suffix, sibling) in [
        (".lock", lock_path(&target)),
        (".sock", socket_path(&link)),
        (".quarantine", quarantine::folder(&link)),
    ] {
        assert_eq!(sibling, beside(&target, suffix));
    }
    // A worker leaves `-wal`/`-shm` (it does not checkpoint on close, R6): beside the target.
    let after: Vec<String> = listing(dir.path())
        .into_iter()
        .filter(|e| !e.starts_with("real/kanban.db-"))
        .collect();
    assert_eq!(
        after, before,
        "a session through the link made files elsewhere"
    );
}

#[test]
fn a_repair_through_either_name_waits_for_sessions_opened_through_the_other() {
    let (dir, target, link) = symlinked_board();
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.lock_timeout(Duration::from_millis(200));
    for (session_via, repair_via) in [(&target, &link), (&link, &target)] {
        let mut session = Board::open(session_via, Role::Worker).unwrap();
        session.list_board().unwrap();
        let before = (bytes(&target), listing(dir.path()));
        // A session holds the board during its operations: run the repair inside one.
        let result = session
            .transaction(|_| Ok(repair(repair_via, &cfg)))
            .unwrap();
        assert!(
            matches!(result, Err(Error::MaintenanceBusy { .. })),
            "a repair via {} while a session is open via {}: {result:?}",
            repair_via.display(),
            session_via.display()
        );
        assert!(
            (bytes(&target), listing(dir.path())) == before,
            "the refused repair changed the board or its folder"
        );
        drop(session);
    }
}

/// The control for the harness's `symlinked-board` scenario: with `raw-path-siblings`, the
/// link gets a lock file of its own and the repair goes ahead under the session's feet.
#[cfg(feature = "hazards")]
#[test]
fn raw_path_siblings_lets_a_repair_through_the_link_ignore_the_target_s_sessions() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let (_dir, target, link) = symlinked_board();
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.lock_timeout(Duration::from_millis(200));
    cfg = cfg.hazards(HazardSet::default().with(Hazard::RawPathSiblings));
    let mut session = Board::open(&target, Role::Worker).unwrap();
    session
        .transaction(|_| Ok(repair(&link, &cfg)))
        .unwrap()
        .expect("the hazard's repair does not see the session's operation");
    assert!(beside(&link, ".lock").exists());
}

/// One way of opening (or repairing) a board path, closing it again.
type Open = fn(&Path) -> kanban_store::Result<()>;

/// Every way a board path is opened or repaired, named.
fn every_open() -> [(&'static str, Open); 5] {
    [
        ("gateway", |db| Board::open(db, Role::Gateway).map(drop)),
        ("worker", |db| Board::open(db, Role::Worker).map(drop)),
        ("dashboard", |db| Board::open(db, Role::Dashboard).map(drop)),
        ("inspect", |db| Board::inspect(db).map(drop)),
        ("repair", |db| {
            repair(db, &StoreConfig::new(Role::Gateway)).map(drop)
        }),
    ]
}

#[test]
fn a_hard_linked_board_is_refused_by_every_open_and_by_repair_touching_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let db = base.join("kanban.db");
    make_board(&db, 3);
    let alias = base.join("alias.db");
    std::fs::hard_link(&db, &alias).unwrap();
    let before = (bytes(&db), listing(&base));
    for name in [&db, &alias] {
        for (how, open) in every_open() {
            let err = open(name).expect_err(how);
            assert!(
                matches!(&err, Error::HardLinked { path, links: 2 } if path == name),
                "{how} via {}: {err:?}",
                name.display()
            );
            assert!((bytes(&db), listing(&base)) == before, "{how}: {err}");
        }
    }
}

/// The `hard-link-alias` hazard is this mistake: with it, the refusal is skipped (so the
/// harness's matrix can still show the split brain it makes).
#[cfg(feature = "hazards")]
#[test]
fn hard_link_alias_skips_the_hard_link_refusal() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 3);
    std::fs::hard_link(&db, dir.path().join("alias.db")).unwrap();
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.hazards(HazardSet::default().with(Hazard::HardLinkAlias));
    drop(Board::open_with(&db, cfg.clone()).expect("the hazard opens a hard-linked board"));
    repair(&db, &cfg).expect("and repairs it");
}

// ------------------------------------------------------------------ the lock file

#[test]
fn a_lock_file_symlinked_to_the_board_is_refused_touching_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::fs::canonicalize(dir.path()).unwrap().join("kanban.db");
    make_board(&db, 3);
    let lock = lock_path(&db);
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("kanban.db", &lock).unwrap();
    let before = (bytes(&db), listing(dir.path()));
    for (how, open) in every_open() {
        let err = open(&db).expect_err(how);
        assert!(
            matches!(&err, Error::UnsafeLockFile { path, .. } if path == &db),
            "{how}: {err:?}"
        );
        assert!((bytes(&db), listing(dir.path())) == before, "{how}: {err}");
    }
}

/// The uid and gid of `nobody`, who owns the boards of the ownership cases.
const NOBODY: u32 = 65_534;

/// A board owned by `nobody` (mode 0600) in a folder `nobody` owns, with no lock file yet.
fn nobody_s_board() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = std::fs::canonicalize(dir.path()).unwrap().join("kanban.db");
    make_board(&db, 3);
    std::fs::remove_file(lock_path(&db)).unwrap();
    for path in [dir.path(), db.as_path()] {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, db)
}

/// The lock file's owner, group and permission bits.
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid(), m.mode() & 0o777)
}

#[test]
fn sudo_kanban_db_check_leaves_a_lock_file_the_board_s_owner_can_use() {
    assert!(nix::unistd::geteuid().is_root(), "this case runs as root");
    let (_dir, db) = nobody_s_board();
    let run = kanban_db(["check".as_ref(), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        owner_and_mode(&lock_path(&db)),
        (NOBODY, NOBODY, 0o600),
        "the lock file must have the board's owner, group and mode"
    );
}

/// Runs `kanban-db check db` as `nobody`.
fn check_as_nobody(db: &Path) -> common::Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kanban-db"))
        .arg("check")
        .arg(db)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A root-owned lock file (what `sudo kanban-db check` left before lock files got the
/// board's owner) is refused to the board's owner, who cannot use it, with what to do; it
/// is fixed (given the board's owner) by the next process that runs as root, which can.
#[test]
fn a_root_owned_lock_file_is_refused_to_the_owner_and_given_back_by_root() {
    let (dir, db) = nobody_s_board();
    let lock = lock_path(&db);
    std::fs::write(&lock, b"").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = (bytes(&db), listing(dir.path()));
    let run = check_as_nobody(&db);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("unsafe lock file") && run.stderr.contains("chown 65534:65534"),
        "{run:?}"
    );
    assert!((bytes(&db), listing(dir.path())) == before);
    let run = kanban_db(["check".as_ref(), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(owner_and_mode(&lock).0, NOBODY);
    let run = check_as_nobody(&db);
    assert_eq!(run.code, 0, "{run:?}");
}
