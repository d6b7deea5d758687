//! The gateway's damage policy at start-up ([`Board::check_at_start`]).
//!
//! - By default, index-only damage is repaired in place (every row kept) and the board is
//!   healthy afterwards; damage to a table stops the gateway with `Corrupt` and leaves the
//!   file as it was; `kanban-db check` says what to do about either.
//! - Each reaction can be chosen per kind of damage: go on (upstream's), stop, or repair
//!   (a table rebuilt when the operator allows it).
//! - A repair held to indexes (the policy's, `kanban-db repair --indexes-only`) leaves a
//!   damaged table as it was.
//! - Duplicate keys under a UNIQUE index look like index damage, but `REINDEX` fails: the
//!   default policy stops the gateway with `Corrupt` (beyond indexes), not a raw SQLite
//!   error (with the `hazards` feature, for `damage_unique_index`).
//! - A repair the calling thread would block (another session of this process open) is
//!   refused at once with `Busy`, and only the gateway has a start-up check.
//!
//! Board files are damaged (and read with `std::fs`) only while nothing has them open in
//! this process (see `common`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::common::{
    bytes, damage_index, full_check, gateway, kanban_db, leaf_pages, make_board, new_path,
    overwrite_page, raw,
};
use kanban_store::{Board, CheckLevel, DamagePolicy, Error, OnDamage, Role, quarantine};
use kanban_store::{RepairAction, Scope, repair_within};

/// A board whose `idx_events_run` misses an entry.
fn index_damaged() -> (tempfile::TempDir, PathBuf) {
    let (dir, db) = new_path();
    make_board(&db, 100);
    damage_index(&db);
    (dir, db)
}

/// A board with a leaf of `task_events` overwritten with garbage.
fn table_damaged() -> (tempfile::TempDir, PathBuf) {
    let (dir, db) = new_path();
    make_board(&db, 600);
    let leaves = leaf_pages(&db, "task_events");
    overwrite_page(&db, leaves[leaves.len() / 2].pageno, 7);
    (dir, db)
}

/// A gateway session on `db` with `policy`.
fn gateway_with(db: &Path, policy: DamagePolicy) -> Board {
    let mut cfg = gateway();
    cfg = cfg.on_damage(policy);
    Board::open_with(db, cfg).unwrap()
}

/// [`gateway_with`] the same reaction to either kind of damage.
fn gateway_on_any(db: &Path, on: OnDamage) -> Board {
    gateway_with(
        db,
        DamagePolicy {
            index_only: on,
            other: on,
        },
    )
}

/// Events in the table (a table scan: a damaged index cannot hide a row).
fn events(db: &Path) -> i64 {
    raw(db)
        .query_row("SELECT count(*) FROM task_events NOT INDEXED", [], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn the_default_repairs_index_damage_and_keeps_every_row() {
    let (_dir, db) = index_damaged();
    let rows = events(&db);
    assert!(!full_check(&db).is_ok(), "the damage is there");

    let mut board = Board::open_with(&db, gateway()).unwrap();
    let start = board.check_at_start().unwrap();
    assert!(
        start
            .check
            .integrity
            .iter()
            .any(|f| f.contains("idx_events_run")),
        "{start:?}"
    );
    let repaired = start.repaired.expect("repaired");
    assert_eq!(repaired.action, RepairAction::Reindexed, "{repaired:?}");
    assert!(repaired.after.is_ok(), "{repaired:?}");
    // The session goes on, on the next generation.
    assert!(board.check(CheckLevel::Full).unwrap().is_ok());
    drop(board);

    assert!(full_check(&db).is_ok());
    assert_eq!(events(&db), rows);
}

#[test]
fn the_default_stops_on_table_damage_and_leaves_the_file_as_it_was() {
    let (_dir, db) = table_damaged();
    let before = bytes(&db);

    let mut board = Board::open_with(&db, gateway()).unwrap();
    match board.check_at_start() {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("kanban-db repair"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(board);
    assert!(bytes(&db) == before, "the file changed");
    // The operator's check says what to do.
    let run = kanban_db([OsStr::new("check"), OsStr::new("--full"), db.as_os_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let next = run.stdout.lines().last().unwrap_or_default();
    assert!(
        next.starts_with("next: `kanban-db repair` rebuilds") && next.contains("stops"),
        "{run:?}"
    );
}

#[test]
fn an_operator_may_let_the_gateway_rebuild_a_damaged_table() {
    let (_dir, db) = table_damaged();
    let mut board = gateway_on_any(&db, OnDamage::Repair);
    let repaired = board.check_at_start().unwrap().repaired.expect("repaired");
    assert_eq!(repaired.action, RepairAction::Rebuilt, "{repaired:?}");
    drop(board);
    assert!(full_check(&db).is_ok());
}

#[test]
fn upstreams_policy_reports_and_goes_on() {
    for (_dir, db) in [index_damaged(), table_damaged()] {
        let mut board = gateway_with(&db, DamagePolicy::UPSTREAM);
        let start = board.check_at_start().unwrap();
        assert!(start.check.is_corrupt(), "{start:?}");
        assert!(start.repaired.is_none());
        drop(board);
        assert!(!full_check(&db).is_ok(), "nothing was repaired");
    }
}

#[test]
fn index_damage_can_stop_the_gateway_too() {
    let (_dir, db) = index_damaged();
    let mut board = gateway_on_any(&db, OnDamage::Stop);
    assert!(
        matches!(board.check_at_start(), Err(Error::Corrupt { .. })),
        "stop on index damage"
    );
}

#[test]
fn a_healthy_board_is_left_alone() {
    let (_dir, db) = new_path();
    make_board(&db, 20);
    let before = bytes(&db);
    let mut board = Board::open_with(&db, gateway()).unwrap();
    let start = board.check_at_start().unwrap();
    assert!(start.check.is_ok() && start.repaired.is_none(), "{start:?}");
    drop(board);
    assert!(bytes(&db) == before);
}

/// An idle session holds nothing (the shared lock is taken per operation): another session
/// of this process, opened before the start-up check, no longer stops its repair; it reads
/// the repaired board at its next operation.
#[test]
fn another_idle_session_of_this_process_lets_the_repair_run() {
    let (_dir, db) = index_damaged();
    let mut board = Board::open_with(&db, gateway()).unwrap();
    let mut other = Board::open(&db, Role::Worker).unwrap();
    let tasks = other.list_board().unwrap().len();
    let start = board.check_at_start().expect("the start-up repair");
    assert_eq!(
        start.repaired.map(|r| r.action),
        Some(RepairAction::Reindexed)
    );
    assert_eq!(other.list_board().unwrap().len(), tasks);
    assert!(other.check(CheckLevel::Full).unwrap().is_ok());
}

#[test]
fn only_the_gateway_has_a_start_up_check() {
    let (_dir, db) = index_damaged();
    let mut board = Board::open(&db, Role::Dashboard).unwrap();
    assert!(matches!(
        board.check_at_start(),
        Err(Error::WrongRole { .. })
    ));
}

#[test]
fn a_repair_held_to_indexes_leaves_a_damaged_table_as_it_was() {
    let (_dir, db) = table_damaged();
    let before = bytes(&db);
    match repair_within(&db, &gateway(), Scope::Indexes) {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("beyond indexes"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(bytes(&db) == before, "the file changed");
    let run = kanban_db([
        OsStr::new("repair"),
        OsStr::new("--indexes-only"),
        db.as_os_str(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("beyond indexes"), "{run:?}");
    assert!(bytes(&db) == before, "the file changed");
    assert!(
        quarantine::list(&db).unwrap().is_empty(),
        "no copy was needed"
    );
}

#[test]
fn a_repair_held_to_indexes_reindexes() {
    let (_dir, db) = index_damaged();
    let run = kanban_db([
        OsStr::new("repair"),
        OsStr::new("--indexes-only"),
        db.as_os_str(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(full_check(&db).is_ok());
}

/// Two rows with one key under a UNIQUE index: the check's finding (`non-unique entry in
/// index`) looks like index damage, but `REINDEX` cannot rebuild a UNIQUE index over
/// duplicate rows. The default policy tries, and stops the gateway with `Corrupt` (damage
/// beyond indexes) and the file as it was, not with the raw SQLite error.
#[cfg(feature = "hazards")]
#[test]
fn duplicate_keys_under_a_unique_index_stop_the_gateway_as_damage_beyond_indexes() {
    let (_dir, db) = new_path();
    make_board(&db, 50);
    kanban_store::hazards::damage_unique_index(&db).unwrap();
    let before = bytes(&db);

    let mut board = Board::open_with(&db, gateway()).unwrap();
    match board.check_at_start() {
        Err(Error::Corrupt { detail, .. }) => assert!(
            detail.contains("beyond indexes") && detail.contains("UNIQUE constraint failed"),
            "{detail}"
        ),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    drop(board);
    assert!(bytes(&db) == before, "the file changed");
}
