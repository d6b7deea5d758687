use kanban_store::*;
#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    let mut g = Board::open_with(&db, StoreConfig::new(Role::Gateway).creating()).unwrap();
    let a = g
        .create_task(&NewTask {
            title: "a".into(),
            ..Default::default()
        })
        .unwrap();
    let b = g
        .create_task(&NewTask {
            title: "b".into(),
            parents: vec![a],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(g.recompute_ready().unwrap(), vec![a]);
    let mut d = Board::open(&db, Role::Dashboard).unwrap();
    let c = g.claim_next("w1").unwrap().unwrap();
    assert_eq!(c.task_id, a);
    g.heartbeat(c.run_id).unwrap();
    g.end_run(c.run_id, RunOutcome::Completed, "ok").unwrap();
    assert_eq!(g.recompute_ready().unwrap(), vec![b]);
    assert_eq!(d.list_board().unwrap().len(), 2);
    let ev = d.events_since(0, 100).unwrap();
    println!("{ev:#?}");
    d.comment(b, "me", "hi").unwrap();
    let r = d.check(CheckLevel::Full).unwrap();
    assert!(r.is_ok(), "{r:?}");
    println!("{:?}", g.checkpoint().unwrap());
    println!("{}", d.info().unwrap());
    println!("{:?}", d.checkpoint().unwrap_err().to_string());
    println!(
        "{:?}",
        Board::open(&db, Role::Gateway).unwrap_err().to_string()
    );
    println!("{:?}", d.quarantine().unwrap());
    println!("{:?}", d.quarantine().unwrap());
}
