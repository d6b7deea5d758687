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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kanban_store::{Board, CheckLevel, NewTask, Role, StoreConfig};

const ENTRY: &str = "locks::busy_session_child";

/// The child: one long session, and a loop of connect / check / write on a second one
/// (a `round` line after each) until its stdin closes.
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
    let stop = Arc::new(AtomicBool::new(false));
    let stdin = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut long = Board::open_with(&db, cfg()).unwrap();
    long.list_board().unwrap();
    println!("ready");
    while !stop.load(Ordering::SeqCst) {
        let mut b = Board::open_with(&db, cfg()).unwrap();
        assert!(b.check(CheckLevel::Quick).unwrap().is_ok());
        b.create_task(&NewTask {
            title: "t".into(),
            ..Default::default()
        })
        .unwrap();
        println!("round");
    }
    stdin.join().unwrap();
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

/// Samples taken at least, and connect / check / write rounds the child does at least while
/// they are taken, before the parent lets the child go.
const SAMPLES: usize = 200;
const ROUNDS: usize = 20;

/// Starts the busy child on `db` and returns once its long session is open, with the count
/// of rounds it has done so far (its stdout read by a thread; the test harness prints the
/// entry's name on the line of `ready`).
fn start_busy_child(db: &Path, hazard: bool) -> (std::process::Child, Arc<AtomicUsize>) {
    let mut env = vec![("KANBAN_DB", db.display().to_string())];
    if hazard {
        env.push(("KANBAN_HAZARD", "1".into()));
    }
    let mut child = child::command(ENTRY, "busy", &env)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.ends_with("ready"));
    assert!(ready, "the child ended before its session was open");
    let rounds = Arc::new(AtomicUsize::new(0));
    let counter = rounds.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            counter.fetch_add(usize::from(line == "round"), Ordering::SeqCst);
        }
    });
    (child, rounds)
}

fn watch(hazard: bool) -> Watch {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, StoreConfig::new(Role::Worker)).unwrap());
    let (mut child, rounds) = start_busy_child(&db, hazard);
    let pid = i64::from(child.id());
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let (db_ino, shm_ino) = (inode(&db), inode(&kanban_store::shm_path(&db)));
    let mut w = Watch {
        samples: 0,
        without_db_lock: 0,
        without_shm_lock: 0,
    };
    let mut streaks = [0usize; 2];
    // The child keeps its long session open until its stdin closes, so every sample is
    // taken while it certainly has it.
    while w.samples < SAMPLES || rounds.load(Ordering::SeqCst) < ROUNDS {
        assert!(child.try_wait().unwrap().is_none(), "child died early");
        let locks = proc_locks();
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
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    w
}

#[test]
fn a_working_process_keeps_its_sqlite_locks() {
    let w = watch(false);
    eprintln!("{w:?}");
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
