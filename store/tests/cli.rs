//! The `kanban-db` operator binary, driven as an operator would: `init` creates a board and
//! never overwrites anything; `info` and `check` report (exit 0 healthy, 1 damaged, 2
//! unusable path, with the typed error on stderr) and never change a byte of the board,
//! not even while another process holds it open with an un-checkpointed WAL.
// Tests read/write board files with std::fs only while no connection to them is open.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::path::Path;

use crate::common::{
    bytes, bytes_via_child, damage_index, gateway, kanban_db, make_board, random_bytes, write,
    write_at,
};
use kanban_store::{Board, NewTask, SCHEMA_VERSION, wal_path};

fn shown(db: &Path) -> String {
    db.display().to_string()
}

#[test]
fn init_creates_a_board() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    let run = kanban_db([OsStr::new("init"), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("created {}\n", shown(&db)));
    assert_eq!(run.stderr, "");
    let info = Board::inspect(&db).unwrap().info().unwrap();
    assert_eq!(info.journal_mode, "wal");
    assert_eq!(info.schema_version, SCHEMA_VERSION);
}

#[test]
fn init_refuses_an_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 5);
    let other = dir.path().join("other.db");
    write(&other, &random_bytes(4096, 3));
    for path in [&db, &other] {
        let before = bytes(path);
        let run = kanban_db([OsStr::new("init"), path.as_os_str()]);
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "kanban-db: {}: already exists; refusing to overwrite it\n",
                shown(path)
            )
        );
        assert_eq!(bytes(path), before, "init changed {}", shown(path));
    }
}

/// `info` of a new, checkpointed board, with the temporary path and the SQLite version
/// (which changes with the bundled library) replaced.
#[test]
fn info_shows_wal_mode_versions_pages_and_wal_size() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, gateway()).unwrap());
    let run = kanban_db([OsStr::new("info"), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "");
    let filtered: String = run
        .stdout
        .replace(&shown(&db), "[DB]")
        .lines()
        .map(|line| match line.strip_prefix("sqlite:") {
            Some(_) => "sqlite:         [SQLITE VERSION]\n".to_string(),
            None => format!("{line}\n"),
        })
        .collect();
    insta::assert_snapshot!("info_new_board", filtered);
}

#[test]
fn check_passes_a_healthy_board() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 30);
    for args in [&["check"][..], &["check", "--full"]] {
        let run = kanban_db(args.iter().map(OsStr::new).chain([db.as_os_str()]));
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert_eq!(run.stdout, format!("{}: ok\n", shown(&db)));
        assert_eq!(run.stderr, "");
    }
}

#[test]
fn check_full_refuses_random_bytes_with_the_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    write(&db, &random_bytes(8192, 11));
    let before = bytes(&db);
    let run = kanban_db([OsStr::new("check"), OsStr::new("--full"), db.as_os_str()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!("kanban-db: {}: not an SQLite database\n", shown(&db))
    );
    assert_eq!(bytes(&db), before);
}

/// Duplicate rows under a unique index are not "only indexes": the hint must not promise a
/// REINDEX that loses nothing (the REINDEX fails on them, and the repair rebuilds).
#[cfg(feature = "hazards")]
#[test]
fn check_full_does_not_promise_a_lossless_reindex_for_duplicate_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 5);
    kanban_store::hazards::damage_unique_index(&db).unwrap();
    let run = kanban_db([OsStr::new("check"), OsStr::new("--full"), db.as_os_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let next: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("next: "))
        .collect();
    assert!(
        matches!(&next[..], [n] if n.starts_with("next: a unique index lists one key twice")),
        "what to do next: {next:?}"
    );
}

#[test]
fn check_full_names_the_damaged_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 30);
    damage_index(&db);
    let before = bytes(&db);
    let run = kanban_db([OsStr::new("check"), OsStr::new("--full"), db.as_os_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "");
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{}: damaged", shown(&db)).as_str())
    );
    let (findings, rest): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.starts_with("  "));
    assert!(
        matches!(&rest[..], [next] if next.starts_with("next: only indexes") && next.contains("REINDEX")),
        "what to do next: {rest:?}"
    );
    assert!(
        findings.contains(&"  integrity: wrong # of entries in index idx_events_run"),
        "{findings:?}"
    );
    assert!(
        findings.iter().all(|f| f.contains("idx_events_run")),
        "only the damaged index is named: {findings:?}"
    );
    assert_eq!(bytes(&db), before, "check changed the board");
}

/// Runs `info`, `check` and `check --full` on `db`, expecting success, and returns the
/// `wal size` that `info` reported.
fn info_and_checks(db: &Path) -> u64 {
    let run = kanban_db([OsStr::new("info"), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("journal mode:   wal\n"), "{run:?}");
    for args in [&["check"][..], &["check", "--full"]] {
        let run = kanban_db(args.iter().map(OsStr::new).chain([db.as_os_str()]));
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
    }
    let wal = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wal size:"))
        .expect("a wal size line");
    wal.trim()
        .strip_suffix(" bytes")
        .unwrap()
        .parse()
        .expect("wal size in bytes")
}

#[test]
fn info_and_check_never_modify_a_closed_board() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 100);
    let before = bytes(&db);
    assert_eq!(info_and_checks(&db), 0, "a checkpointed board has no WAL");
    assert_eq!(bytes(&db), before, "info/check changed the board");
}

/// A gateway session stays open in this process with writes only in its WAL (it never
/// checkpoints on its own, R6). The board's files are read by a child process (`cat`) while
/// the session is open, so that no descriptor of ours is closed under SQLite's locks (R2).
#[test]
fn info_and_check_never_modify_a_board_with_an_open_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 20);
    let mut session = Board::open_with(&db, gateway()).unwrap();
    for i in 0..50 {
        session
            .create_task(&NewTask {
                title: format!("uncheckpointed {i}"),
                ..NewTask::default()
            })
            .unwrap();
    }
    let wal = wal_path(&db);
    let db_before = bytes_via_child(&db);
    let wal_before = bytes_via_child(&wal);
    assert!(
        !wal_before.is_empty(),
        "the session's writes are in the WAL"
    );

    let reported = info_and_checks(&db);
    assert_eq!(
        reported,
        wal_before.len() as u64,
        "info reports the WAL size"
    );

    assert!(
        bytes_via_child(&db) == db_before,
        "info/check changed the db file"
    );
    assert!(
        bytes_via_child(&wal) == wal_before,
        "info/check changed the WAL"
    );
    // The session still works and still sees its own writes.
    assert_eq!(session.list_board().unwrap().len(), 70);
    drop(session);
}

#[test]
fn selftest_passes_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let run = kanban_db([OsStr::new("selftest"), dir.path().as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.ends_with("selftest passed\n"), "{run:?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("ok  file system: ") && l.ends_with(", local")),
        "the file system has a line of its own: {run:?}"
    );
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("ok  ")).count(),
        7
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn selftest_in_a_missing_folder_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let run = kanban_db([OsStr::new("selftest"), missing.as_os_str()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("kanban-db: {}: ", shown(&missing))),
        "{run:?}"
    );
}

#[test]
fn help_snapshot() {
    let run = kanban_db(["--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    insta::assert_snapshot!("help", run.stdout);
}

// --------------------------------------------------------------------------- quarantine

/// The names in `dir`, sorted, with what each is (`d` folder, `l` symlink, `f` file).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let kind = if t.is_symlink() {
                'l'
            } else if t.is_dir() {
                'd'
            } else {
                'f'
            };
            format!("{kind} {}", e.file_name().to_string_lossy())
        })
        .collect();
    names.sort();
    names
}

/// The confirmed bug: with `kanban.db.quarantine -> .`, `list` showed the live board as a
/// copy and `prune` deleted it (exit 0, "1 removed"). Both are refused now (exit 2), and
/// nothing in the folder changes.
#[test]
fn quarantine_refuses_a_symlinked_folder_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 5);
    let folder = kanban_store::quarantine::folder(&db);
    std::os::unix::fs::symlink(".", &folder).unwrap();
    let before = (listing(dir.path()), bytes(&db));
    for action in ["list", "prune"] {
        let run = kanban_db([OsStr::new("quarantine"), OsStr::new(action), db.as_os_str()]);
        assert_eq!(run.code, 2, "{action}: {run:?}");
        assert_eq!(run.stdout, "", "{action}: {run:?}");
        assert_eq!(
            run.stderr,
            format!(
                "kanban-db: {}: the quarantine folder {} is a symbolic link; refusing to use it\n",
                shown(&db),
                shown(&folder)
            ),
            "{action}"
        );
        assert_eq!((listing(dir.path()), bytes(&db)), before, "{action}");
    }
}

/// A file named like a copy in `folder`, modified at `secs` after the epoch.
fn fake_copy(folder: &Path, hex: char, secs: u64) -> std::path::PathBuf {
    let copy = folder.join(format!("{}.db", hex.to_string().repeat(24)));
    write_at(&copy, b"a copy", secs);
    copy
}

/// `prune` keeps the newest copy unless told otherwise; `--keep N` keeps the N newest,
/// `--keep 0` removes them all. Newest is by modification time, then by name (`b` and `c`
/// tie on time). Nothing else in the folder is listed or removed: a link named like a
/// copy (to the live board), a folder named like one, other names, a partial copy.
#[test]
fn quarantine_prune_keeps_the_newest_and_only_touches_copies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 5);
    let folder = kanban_store::quarantine::folder(&db);
    std::fs::create_dir(&folder).unwrap();
    let [d, c, b, a] =
        [('d', 10), ('c', 30), ('b', 30), ('a', 40)].map(|(x, t)| fake_copy(&folder, x, t));
    std::os::unix::fs::symlink(&db, folder.join(format!("{}.db", "e".repeat(24)))).unwrap();
    std::fs::create_dir(folder.join(format!("{}.db", "f".repeat(24)))).unwrap();
    write(&folder.join("notes.txt"), b"mine");
    write(&folder.join(format!("{}.db", "A".repeat(24))), b"mine");
    write(
        &folder.join(format!(".partial-{}-1-0", "0".repeat(24))),
        b"half",
    );
    let others: Vec<String> = listing(&folder)
        .into_iter()
        .filter(|n| {
            ![&a, &b, &c, &d]
                .iter()
                .any(|p| n.ends_with(&*p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert_eq!(others.len(), 5, "{others:?}");
    let db_bytes = bytes(&db);

    let run = kanban_db([OsStr::new("quarantine"), OsStr::new("list"), db.as_os_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    let expected: String = [&d, &b, &c, &a]
        .iter()
        .map(|p| format!("{}  6 bytes\n", shown(p)))
        .collect();
    assert_eq!(
        run.stdout,
        format!("{expected}4 copies\n5 other entries left alone\n")
    );

    let prune = |keep: Option<&str>| {
        let mut args = vec![
            OsStr::new("quarantine"),
            OsStr::new("prune"),
            db.as_os_str(),
        ];
        if let Some(n) = keep {
            args.extend([OsStr::new("--keep"), OsStr::new(n)]);
        }
        let run = kanban_db(args);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    };
    assert_eq!(
        prune(Some("2")),
        format!(
            "removed {}\nremoved {}\n2 removed, 2 kept\n",
            shown(&d),
            shown(&b)
        )
    );
    assert_eq!(
        prune(None),
        format!("removed {}\n1 removed, 1 kept\n", shown(&c))
    );
    assert_eq!(prune(None), "0 removed, 1 kept\n");
    assert_eq!(
        prune(Some("0")),
        format!("removed {}\n1 removed, 0 kept\n", shown(&a))
    );
    assert_eq!(listing(&folder), others);
    assert_eq!(bytes(&db), db_bytes);
}
