//! Single-writer mode: a dashboard's writes go to the gateway over the board's socket.
//!
//! In-process: the gateway serves from a thread of this test (the harness's
//! `single-writer` scenario runs it across processes, with kills of either side).

use std::time::Duration;

use crate::common::{Serving, make_board, new_path};
use kanban_store::{Board, Error, ErrorKind, NewTask, Role, StoreConfig, TaskStatus};

fn dashboard() -> StoreConfig {
    let mut cfg = StoreConfig::new(Role::Dashboard);
    cfg = cfg.single_writer(true);
    cfg = cfg.busy_timeout(Duration::from_millis(500));
    cfg
}

/// A gateway serving the board's socket from a thread until dropped.
fn serve(db: &std::path::Path) -> Serving {
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.single_writer(true);
    Serving::start(db, cfg)
}

#[test]
fn a_dashboards_writes_are_run_by_the_gateway() {
    let (_dir, db) = new_path();
    make_board(&db, 3);
    let gateway = serve(&db);
    let mut dash = Board::open_with(&db, dashboard()).unwrap();
    let id = dash
        .create_task(&NewTask {
            title: "sent to the gateway".into(),
            ..NewTask::default()
        })
        .unwrap();
    dash.comment(id, "alice", "looks good").unwrap();
    dash.move_task(id, TaskStatus::Blocked).unwrap();
    let task = dash
        .list_board()
        .unwrap()
        .into_iter()
        .find(|t| t.id == id)
        .expect("the forwarded task, read back through the dashboard's own reader");
    assert_eq!(task.title, "sent to the gateway");
    assert_eq!(task.status, TaskStatus::Blocked);
    // The gateway's errors come back typed by kind.
    let err = dash.move_task(9_999.into(), TaskStatus::Todo).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Remote {
                kind: ErrorKind::NoSuchTask,
                ..
            }
        ),
        "{err}"
    );
    // A transaction of the dashboard's own would write the file: refused in this mode.
    assert!(matches!(
        dash.transaction(|t| t.recompute_ready()),
        Err(Error::WrongRole { .. })
    ));
    drop(gateway);
}

#[test]
fn without_a_gateway_a_write_is_unavailable_at_once() {
    let (_dir, db) = new_path();
    make_board(&db, 1);
    // "At once": with an hour of busy timeout, waiting would hang this test.
    let mut cfg = dashboard();
    cfg = cfg.busy_timeout(Duration::from_secs(3600));
    let mut dash = Board::open_with(&db, cfg).unwrap();
    let err = dash.create_task(&NewTask::default()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    // A gateway that died leaves its socket file: still unavailable, still at once.
    let gateway = serve(&db);
    drop(gateway);
    let err = dash.create_task(&NewTask::default()).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
}
