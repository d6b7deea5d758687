//! Liveness under load: online copies that finish while another process commits
//! continuously, a killed copy that leaves nothing at its destination, and checkpoints
//! that the gateway runs when others fill the WAL while it writes nothing itself.
// Tests stat and list the files of a board's folder; no board file is opened with std::fs.
#![allow(clippy::disallowed_methods)]

use crate::child;
use crate::common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{gateway, names, new_path};
use kanban_store::{Board, CheckLevel, NewTask, Role, StoreConfig, wal_path};

/// Tasks of [`BODY`] bytes each in the big board: about 50 MB.
const BIG_TASKS: usize = 1000;
/// The body of each task of the big board.
const BODY: usize = 50_000;
/// A copy that has not finished after this long never will (it takes about a second here).
const NEVER: Duration = Duration::from_secs(60);

/// The entry test of the child processes: `writer` commits one small task after another
/// until it is killed (printing `writing` after the first); `backup` copies the board to
/// `KANBAN_DEST` (printing `copying` first).
#[test]
#[ignore = "child process entry"]
fn liveness_child() {
    let Some(role) = child::role() else { return };
    let db = PathBuf::from(std::env::var("KANBAN_DB").unwrap());
    match role.as_str() {
        "writer" => {
            let mut b = Board::open_with(&db, StoreConfig::new(Role::Worker)).unwrap();
            for i in 0u64.. {
                b.create_task(&NewTask {
                    title: format!("written during the copy {i}"),
                    ..NewTask::default()
                })
                .unwrap();
                if i == 0 {
                    println!("writing");
                }
            }
        }
        "backup" => {
            let dest = PathBuf::from(std::env::var("KANBAN_DEST").unwrap());
            let mut b = Board::inspect(&db).unwrap();
            println!("copying");
            b.backup_to(&dest).unwrap();
            println!("copied");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A child process, killed when dropped.
struct Child(std::process::Child);

impl Child {
    /// Starts the child `role` on `db` and waits until it prints `ready`.
    fn start(role: &str, env: &[(&str, String)], ready: &str) -> Child {
        let mut child = Child(child::spawn("liveness::liveness_child", role, env));
        let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        while !line.trim_end().ends_with(ready) {
            line.clear();
            let read = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(read > 0, "the {role} child ended before printing {ready}");
        }
        child
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes a board of about 50 MB at `db` (the gateway checkpoints it into the main file on
/// close).
fn make_big_board(db: &Path) {
    let mut board = Board::create(db, gateway()).unwrap();
    for chunk in 0..BIG_TASKS / 100 {
        board
            .transaction(|t| {
                for i in 0..100 {
                    t.create_task(&NewTask {
                        title: format!("big task {chunk}-{i}"),
                        body: {
                            let tag = format!("{chunk}-{i}:");
                            tag.repeat(BODY / tag.len())
                        },
                        ..NewTask::default()
                    })?;
                }
                Ok(())
            })
            .unwrap();
    }
    drop(board);
    let size = std::fs::metadata(db).unwrap().len();
    assert!(size > 45_000_000, "the board is {size} bytes");
}

/// Runs `copy` on a dashboard session of a 50 MB board while a child process commits a
/// small task continuously. `copy` returns the copy's path and `count` counts its tasks:
/// at least those committed before the copy started.
fn copy_under_load(
    copy: impl FnOnce(&mut Board, &Path) -> PathBuf + Send + 'static,
    count: fn(&Path) -> usize,
) {
    let (dir, db) = new_path();
    make_big_board(&db);
    let env = [("KANBAN_DB", db.display().to_string())];
    let _writer = Child::start("writer", &env, "writing");
    let mut board = Board::open_with(&db, StoreConfig::new(Role::Dashboard)).unwrap();
    let before = board.list_board().unwrap().len();
    let (done, finished) = mpsc::channel();
    let dest = dir.path().join("copy.db");
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let copied = copy(&mut board, &dest);
        let during = board.list_board().unwrap().len() - before;
        done.send((copied, started.elapsed(), during)).unwrap();
    });
    let (copied, took, during) = finished
        .recv_timeout(NEVER)
        .expect("the copy never finished under the write load");
    let held = count(&copied);
    println!(
        "copied {} bytes in {took:?}; {before} tasks before, {held} in the copy, {during} written meanwhile",
        std::fs::metadata(&copied).unwrap().len()
    );
    assert!(
        held >= before,
        "{held} tasks in the copy, {before} before it"
    );
    assert!(during > 0, "the writer committed during the copy");
}

/// The tasks of the board at `db`, which passes the quick check.
fn tasks_of(db: &Path) -> usize {
    let mut copy = Board::inspect(db).expect("the copy opens as a board");
    assert!(copy.check(CheckLevel::Quick).unwrap().is_ok());
    copy.list_board().unwrap().len()
}

#[test]
fn a_backup_finishes_while_another_process_commits_continuously() {
    copy_under_load(
        |board, dest| {
            board.backup_to(dest).unwrap();
            dest.to_path_buf()
        },
        tasks_of,
    );
}

#[test]
fn a_quarantine_copy_finishes_while_another_process_commits_continuously() {
    copy_under_load(
        |board, _| board.quarantine().unwrap().copy().unwrap().to_path_buf(),
        // A quarantine copy is no board of its own (no lock file): count its rows directly.
        |copy| {
            let c = rusqlite::Connection::open_with_flags(
                copy,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            c.query_row("SELECT count(*) FROM tasks", [], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
                .unwrap()
        },
    );
}

/// The size of the biggest entry of `dir` whose name holds `part`.
fn biggest(dir: &Path, part: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(part))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// A backup killed (SIGKILL) once its file has grown leaves nothing at DEST and no
/// `DEST-journal`; the next backup to DEST removes what it left and succeeds.
#[test]
fn a_killed_backup_leaves_nothing_at_dest() {
    let (dir, db) = new_path();
    make_big_board(&db);
    let dest = dir.path().join("copy.db");
    let env = [
        ("KANBAN_DB", db.display().to_string()),
        ("KANBAN_DEST", dest.display().to_string()),
    ];
    let mut child = Child::start("backup", &env, "copying");
    let grown = loop {
        let size = biggest(dir.path(), "copy.db");
        if size > 256 * 1024 {
            break size;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "the backup ended before its file was seen growing"
        );
        std::thread::sleep(Duration::from_micros(200));
    };
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    println!("killed at {grown} bytes: {:?}", names(dir.path()));
    assert!(!dest.exists(), "a partial DEST: {:?}", names(dir.path()));
    let journal = dir.path().join("copy.db-journal");
    assert!(!journal.exists(), "a hot DEST-journal beside DEST");

    Board::inspect(&db).unwrap().backup_to(&dest).unwrap();
    let left: Vec<String> = names(dir.path())
        .into_iter()
        .filter(|n| n.contains("copy.db") && n != "copy.db")
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "the stale partial copy is removed"
    );
    assert_eq!(tasks_of(&dest), BIG_TASKS);
}

/// A gateway that writes nothing itself checkpoints on its tick once others have filled
/// the WAL past `checkpoint_frames` pages, and not again until the WAL changes.
#[test]
fn a_silent_gateway_checkpoints_a_wal_that_others_filled() {
    let (_dir, db) = new_path();
    common::make_board(&db, 10);
    let mut cfg = gateway();
    cfg.checkpoint_frames = 100;
    let mut gw = Board::open_with(&db, cfg).unwrap();
    assert_eq!(gw.checkpoint_if_due().unwrap(), None, "nothing written yet");
    let mut other = Board::open_with(&db, StoreConfig::new(Role::Dashboard)).unwrap();
    let wal = wal_path(&db);
    let frames = |wal: &Path| (std::fs::metadata(wal).map_or(0, |m| m.len()) / 4120) as i64;
    let mut written = 0;
    while frames(&wal) < 200 {
        other
            .create_task(&NewTask {
                title: format!("from another session {written}"),
                ..NewTask::default()
            })
            .unwrap();
        written += 1;
    }
    let report = gw
        .checkpoint_if_due()
        .unwrap()
        .unwrap_or_else(|| panic!("no checkpoint after {written} commits of others"));
    println!("{written} commits of others: {report:?}");
    assert!(report.checkpointed >= 200, "{report:?}");
    assert_eq!(
        gw.checkpoint_if_due().unwrap(),
        None,
        "the WAL did not change since"
    );
}
