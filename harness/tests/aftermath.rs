//! The checks judge the board as the workers left it, and change nothing of it.
//!
//! A worker killed with commits in the WAL leaves db, `-wal` and `-shm` behind. The check's
//! connection must neither checkpoint nor delete the WAL when it closes (SQLite's last
//! connection does both by default), or the artifacts and digests taken after it show a
//! board no worker left. A helper process (python3's sqlite3, as `command` workers use)
//! writes and leaves with `os._exit`, as a killed worker would; this process never forks.
//! The control (`scenarios/controls/damaged-start-repair-after.toml`) shows the other half:
//! the supervisor's repair after the run no longer hides damage from the checks.

use std::path::{Path, PathBuf};
use std::process::Command;

fn left_by_a_killed_writer(dir: &Path) -> PathBuf {
    let db = dir.join("kanban.db");
    let script = format!(
        "import sqlite3, os\n\
         c = sqlite3.connect({db:?})\n\
         c.execute('PRAGMA journal_mode=WAL')\n\
         c.execute('PRAGMA wal_autocheckpoint=0')\n\
         c.execute('CREATE TABLE t(x)')\n\
         c.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(500)])\n\
         c.commit()\n\
         os._exit(0)\n",
        db = db.to_str().unwrap()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    db
}

/// Each file's name, size and hash (the `-shm` aside: SQLite's scratch, not the board).
fn files(dir: &Path) -> Vec<(String, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<(String, usize, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with("-shm"))
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            let mut hash = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hash);
            let name = e.file_name().to_string_lossy().into_owned();
            (name, bytes.len(), hash.finish())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_checks_leave_db_and_wal_as_the_workers_left_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = left_by_a_killed_writer(dir.path());
    let before = files(dir.path());
    let wal = before.iter().find(|(name, ..)| name == "kanban.db-wal");
    assert!(wal.is_some_and(|&(_, n, _)| n > 0), "the writer left a WAL");
    // Not a kanban board: the ledger and invariant queries find no tables, which is beside
    // the point here. What matters is that it opened and read it, and changed nothing.
    let findings = kanban_harness::check::check(&db, &[], &Default::default(), Vec::new());
    assert!(
        !findings
            .corrupt
            .iter()
            .any(|f| f.starts_with("cannot open")),
        "{findings:?}"
    );
    let conn = kanban_harness::check::open_as_left(&db).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 500, "the committed rows are read through the WAL");
    drop(conn);
    assert_eq!(files(dir.path()), before, "the check changed the files");
}
