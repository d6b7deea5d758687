//! Hostile layouts: one board reached by several names, sibling files that are not what
//! they should be. Each case shows the db's bytes and the folder listing (names, sizes,
//! modes, owners) unchanged where the store refuses, and the siblings in one place where it
//! accepts (see `store/src/place.rs`).
// Tests read board files with std::fs only while no connection to them is open.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{bytes, listing, make_board};
use kanban_store::{Board, Error, Role, StoreConfig, lock, quarantine, repair, single_writer};

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
        (".lock", lock::lock_path(&target)),
        (".sock", single_writer::socket_path(&link)),
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
    cfg.lock_timeout = Duration::from_millis(200);
    for (session_via, repair_via) in [(&target, &link), (&link, &target)] {
        let mut session = Board::open(session_via, Role::Worker).unwrap();
        session.list_board().unwrap();
        let before = (bytes(&target), listing(dir.path()));
        let result = repair::repair(repair_via, &cfg);
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
    cfg.lock_timeout = Duration::from_millis(200);
    cfg.hazards = HazardSet::default().with(Hazard::RawPathSiblings);
    let mut session = Board::open(&target, Role::Worker).unwrap();
    session.list_board().unwrap();
    repair::repair(&link, &cfg).expect("the hazard's repair does not see the session");
    assert!(beside(&link, ".lock").exists());
}
