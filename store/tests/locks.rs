//! R2 and R3, watched from outside: `/proc/locks` while a process works on a board.
//!
//! A child process keeps one session open and, in a loop, connects a second session, runs a
//! quick check and writes, like a busy gateway. The parent samples `/proc/locks` the whole
//! time: the child must always hold SQLite's POSIX locks on the database file and on its
//! `-shm` (the lock every WAL connection holds for its lifetime). (Our OFD lock on
//! `<db>.lock` is held during each operation only, so that a repair is not kept waiting by
//! idle sessions: `rules.rs` and `idle.rs` test it.) A plain `open`/`close` of the database anywhere in the store would drop the
//! POSIX ones for good; the hazard test below shows this detector catching exactly that.

use crate::child;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kanban_store::{Board, CheckLevel, NewTask, Role, StoreConfig};

const ENTRY: &str = "locks::busy_session_child";

/// The child: one long session, and a loop of connect / check / write on a second one.
#[test]
#[ignore = "child process entry"]
fn busy_session_child() {
    if child::role().is_none() {
        return;
    }
    let db = std::env::var("KANBAN_DB").unwrap();
    let cfg = || {
        #[allow(unused_mut)]
        let mut cfg = StoreConfig::new(Role::Worker);
        #[cfg(feature = "hazards")]
        if std::env::var("KANBAN_HAZARD").is_ok() {
            use kanban_store::hazards::{Hazard, HazardSet};
            cfg = cfg.hazards(HazardSet::default().with(Hazard::RawHeaderPeek));
        }
        cfg
    };
    let mut long = Board::open_with(&db, cfg()).unwrap();
    long.list_board().unwrap();
    println!("ready");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        let mut b = Board::open_with(&db, cfg()).unwrap();
        assert!(b.check(CheckLevel::Quick).unwrap().is_ok());
        b.create_task(&NewTask {
            title: "t".into(),
            ..Default::default()
        })
        .unwrap();
    }
    println!("done");
    drop(long);
}

/// One `/proc/locks` entry.
#[derive(Debug)]
struct Lock {
    kind: String,
    pid: i64,
    inode: u64,
}

#[allow(clippy::disallowed_methods)] // a /proc file, not a board
fn proc_locks() -> Vec<Lock> {
    let text = std::fs::read_to_string("/proc/locks").unwrap();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
            Some(Lock {
                kind: f.get(1)?.to_string(),
                pid: f.get(4)?.parse().ok()?,
                inode: f.get(5)?.rsplit(':').next()?.parse().ok()?,
            })
        })
        .collect()
}

/// How many samples were taken, and how many lacked the child's locks on db / -shm.
///
/// `/proc/locks` is not read atomically (it comes in chunks while other processes lock and
/// unlock), so one read can miss an entry that is there. A lock counts as missing only when
/// [`MISSES`] reads in a row lack it; a dropped POSIX lock stays dropped, so it still shows.
#[derive(Debug)]
struct Watch {
    samples: usize,
    without_db_lock: usize,
    without_shm_lock: usize,
}

/// Reads in a row that must lack a lock before it counts as missing.
const MISSES: usize = 10;

fn watch(hazard: bool) -> Watch {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, StoreConfig::new(Role::Worker)).unwrap());
    let mut env = vec![("KANBAN_DB", db.display().to_string())];
    if hazard {
        env.push(("KANBAN_HAZARD", "1".into()));
    }
    let mut child = child::spawn(ENTRY, "busy", &env);
    let pid = i64::from(child.id());
    let (ready, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let (ready, done) = (ready.clone(), done.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.ends_with("ready") {
                    ready.store(true, Ordering::SeqCst);
                }
                if line.ends_with("done") {
                    done.store(true, Ordering::SeqCst);
                }
            }
        })
    };
    while !ready.load(Ordering::SeqCst) {
        assert!(child.try_wait().unwrap().is_none(), "child died early");
        std::thread::sleep(Duration::from_millis(1));
    }
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let (db_ino, shm_ino) = (inode(&db), inode(&kanban_store::shm_path(&db)));
    let mut w = Watch {
        samples: 0,
        without_db_lock: 0,
        without_shm_lock: 0,
    };
    let mut streaks = [0usize; 2];
    loop {
        let locks = proc_locks();
        // Sample only while the child certainly still has its long session open.
        if done.load(Ordering::SeqCst) {
            break;
        }
        let posix_on = |ino| {
            locks
                .iter()
                .any(|l| l.kind == "POSIX" && l.pid == pid && l.inode == ino)
        };
        w.samples += 1;
        let [db_streak, shm_streak] = &mut streaks;
        for (held, streak, missing) in [
            (posix_on(db_ino), db_streak, &mut w.without_db_lock),
            (posix_on(shm_ino), shm_streak, &mut w.without_shm_lock),
        ] {
            *streak = if held { 0 } else { *streak + 1 };
            *missing += usize::from(*streak >= MISSES);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "child failed: {status}");
    w
}

#[test]
fn a_working_process_keeps_its_sqlite_locks() {
    let w = watch(false);
    eprintln!("{w:?}");
    assert!(w.samples >= 100, "too few samples: {w:?}");
    assert_eq!(w.without_db_lock, 0, "{w:?}");
    assert_eq!(w.without_shm_lock, 0, "{w:?}");
}

/// The detector works: with the upstream header peek, the locks vanish.
#[cfg(feature = "hazards")]
#[test]
fn the_header_peek_drops_them() {
    let w = watch(true);
    eprintln!("{w:?}");
    assert!(w.without_db_lock > w.samples / 2, "{w:?}");
}
