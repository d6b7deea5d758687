//! Liveness of the generation protocol: a repair does not wait for idle sessions, and the
//! gateway singleton stays with its process across a repair.

use crate::child;
use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kanban_store::{Board, CheckLevel, Error, NewTask, Phase, Role, StoreConfig};
use kanban_store::{RepairAction, Scope, repair_within};

use crate::common::{damage_index, gateway, make_board, new_path};

/// The child entry of this binary.
const ENTRY: &str = "idle::idle_child";

/// The child: opens `KANBAN_DB` as a worker, reads it once, says `ready`, then stays idle
/// (no operation) until `KANBAN_GO` exists; then checks the board and says what it saw.
#[test]
#[ignore = "child process entry"]
fn idle_child() {
    if child::role().is_none() {
        return;
    }
    let db = PathBuf::from(std::env::var("KANBAN_DB").unwrap());
    let go = PathBuf::from(std::env::var("KANBAN_GO").unwrap());
    let mut board = Board::open(&db, Role::Worker).unwrap();
    let tasks = board.list_board().unwrap().len();
    println!("ready {tasks}");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let check = board.check(CheckLevel::Full).unwrap();
    let tasks = board.list_board().unwrap().len();
    println!("after ok={} tasks={tasks}", check.is_ok());
}

/// The child's words from `until` on, in the first line that has them.
fn lines_until(out: &mut impl BufRead, until: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended before `{until}`"
        );
        // The harness may print `test idle_child ... ` before the child's own words.
        if let Some(at) = line.find(until) {
            return line[at..].trim_end().to_string();
        }
    }
}

/// A repair's wait (its lock timeout), short next to how long the child stays idle.
fn with_wait(mut cfg: StoreConfig) -> StoreConfig {
    cfg.lock_timeout = Duration::from_secs(2);
    cfg
}

#[test]
fn a_repair_completes_within_its_wait_while_another_process_sits_idle() {
    let (dir, db) = new_path();
    make_board(&db, 30);
    let go = dir.path().join("go");
    let mut idle = child::spawn(
        ENTRY,
        "idle",
        &[
            ("KANBAN_DB", db.display().to_string()),
            ("KANBAN_GO", go.display().to_string()),
        ],
    );
    let mut out = BufReader::new(idle.stdout.take().unwrap());
    assert_eq!(lines_until(&mut out, "ready"), "ready 30");
    damage_index(&db);

    let repaired = repair_within(&db, &with_wait(gateway()), Scope::Indexes);
    // Let the child go whatever happened, so it never outlives the test.
    common::write(&go, b"");
    let report = repaired.expect("the repair gets the board from an idle session");
    assert_eq!(report.action, RepairAction::Reindexed);
    assert!(report.after.is_ok(), "{:?}", report.after);

    // The idle session's next operations work, on the repaired board.
    assert_eq!(lines_until(&mut out, "after"), "after ok=true tasks=30");
    assert!(idle.wait().unwrap().success());
}

/// What a second gateway's open gave.
fn second_gateway(db: &Path) -> std::result::Result<(), Error> {
    let mut cfg = gateway();
    cfg.lock_timeout = Duration::from_millis(50);
    Board::open_with(db, cfg).map(drop)
}

/// An observer that, on entering a repair, tries a second gateway and notes what it got.
fn try_a_second_gateway_during_repairs(
    db: &Path,
    cfg: &mut StoreConfig,
) -> Arc<Mutex<Vec<String>>> {
    let during: Arc<Mutex<Vec<String>>> = Arc::default();
    let (seen, path) = (during.clone(), db.to_path_buf());
    cfg.observer = Some(Arc::new(move |phase, entering| {
        if phase == Phase::Repair && entering {
            let got = match second_gateway(&path) {
                Err(Error::GatewayRunning { .. }) => "GatewayRunning".to_string(),
                other => format!("{other:?}"),
            };
            seen.lock().unwrap().push(got);
        }
    }));
    during
}

/// After a repair, G is still the gateway: a second one is refused, G writes.
fn still_the_gateway(g: &mut Board, db: &Path, tasks: usize) {
    assert!(
        matches!(second_gateway(db), Err(Error::GatewayRunning { .. })),
        "a second gateway after the repair"
    );
    g.create_task(&NewTask {
        title: "after the repair".into(),
        ..Default::default()
    })
    .expect("G writes after the repair");
    assert_eq!(g.list_board().unwrap().len(), tasks + 1);
}

/// The gateway's own start-up repair (its default policy `REINDEX`es a damaged index):
/// during it a second gateway is refused, and G is the gateway after it.
#[test]
fn the_gateways_own_repair_keeps_it_the_gateway() {
    let (_dir, db) = new_path();
    make_board(&db, 5);
    damage_index(&db);
    let mut cfg = with_wait(gateway());
    let during = try_a_second_gateway_during_repairs(&db, &mut cfg);
    let mut g = Board::open_with(&db, cfg).unwrap();
    let start = g.check_at_start().expect("the start-up check");
    let repaired = start.repaired.expect("the damaged index is repaired");
    assert_eq!(repaired.action, RepairAction::Reindexed);
    assert_eq!(*during.lock().unwrap(), ["GatewayRunning"]);
    still_the_gateway(&mut g, &db, 5);
}

/// Another process's repair (`kanban-db repair`) while G sits idle: the same.
#[test]
fn another_repair_keeps_the_gateway_with_its_process() {
    let (_dir, db) = new_path();
    make_board(&db, 5);
    let mut g = Board::open_with(&db, gateway()).unwrap();
    g.list_board().unwrap();
    let mut cfg = with_wait(gateway());
    let during = try_a_second_gateway_during_repairs(&db, &mut cfg);
    let report = repair_within(&db, &cfg, Scope::Indexes).expect("the repair runs");
    assert_eq!(report.action, RepairAction::Healthy);
    assert_eq!(*during.lock().unwrap(), ["GatewayRunning"]);
    still_the_gateway(&mut g, &db, 5);
}

/// A request handler's second connection: inside an operation of one board, another board
/// of the same process reads while a repair waits for that operation to end. The read is
/// part of the operation under way, so it goes ahead (it must not wait for the repair,
/// which waits for the operation, which waits for the read); the repair follows.
#[cfg(feature = "hazards")] // `hazards::LockFile`, to see the repair's request land
#[test]
fn an_operation_nested_in_another_of_this_process_does_not_wait_for_a_repair() {
    use kanban_store::hazards::LockFile;
    let (_dir, db) = new_path();
    make_board(&db, 30);
    damage_index(&db);
    let mut outer = Board::open(&db, Role::Worker).unwrap();
    let mut inner = Board::open(&db, Role::Worker).unwrap();
    let watch = LockFile::open(&db).unwrap();
    let (nested, repaired) = outer
        .transaction(|t| {
            t.comment(kanban_store::TaskId::from(1), "outer", "under way")?;
            let repair = {
                let db = db.clone();
                std::thread::spawn(move || {
                    repair_within(&db, &with_wait(gateway()), Scope::Indexes)
                })
            };
            while !watch.word().unwrap().requested {
                std::thread::sleep(Duration::from_millis(1));
            }
            let nested = inner.list_board().map(|tasks| tasks.len());
            Ok((nested, repair))
        })
        .unwrap();
    assert_eq!(nested.expect("the nested read goes ahead"), 30);
    let report = repaired
        .join()
        .unwrap()
        .expect("the repair follows the operation");
    assert_eq!(report.action, RepairAction::Reindexed);
    assert_eq!(inner.list_board().unwrap().len(), 30);
}
