//! R8 at the door: every kind of bad file or bad location a board path can point at is
//! refused with its own typed [`Error`] variant, whose message names the path, and the file
//! is left byte-for-byte as it was (no "repair", no silent re-creation). Also guards the
//! full check's report of a damaged index, and (insta snapshots) the schema of a new board
//! and the wording of every error message.
// Tests read/write board files with std::fs only while no connection to them is open.
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{bytes, gateway, listing, make_board, random_bytes, raw, sidecars, write};
use kanban_store::{Board, CheckLevel, Error, ErrorKind, Role, SCHEMA_VERSION, StoreConfig};
use rusqlite::{Connection, OpenFlags};

/// Asserts that `$err` (an [`Error`]) matches `$pat`, showing it when it does not.
macro_rules! assert_variant {
    ($err:expr, $pat:pat $(if $guard:expr)?) => {{
        let err: &Error = $err;
        assert!(
            matches!(err, $pat $(if $guard)?),
            "expected {}, got {err:?} ({err})",
            stringify!($pat)
        );
    }};
}

/// Opens `db` with `open`, expecting a refusal; checks that the message names the path and
/// that the file's bytes and its folder's listing (names, sizes, modes, owners: no lock
/// file, `-wal` or `-shm` left behind) did not change (read only before and after, with
/// nothing open).
fn refuse(how: &str, db: &Path, open: impl FnOnce(&Path) -> kanban_store::Result<Board>) -> Error {
    let folder = db.ancestors().skip(1).find(|p| p.is_dir()).unwrap();
    let before = (db.exists().then(|| bytes(db)), listing(folder));
    let err = open(db).expect_err("the open must be refused");
    let message = err.to_string();
    assert!(
        message.contains(&db.display().to_string()),
        "message {message:?} does not name {}",
        db.display()
    );
    let after = (db.exists().then(|| bytes(db)), listing(folder));
    assert!(
        before.0 == after.0,
        "{how}: the refused file changed: {err:?}"
    );
    assert_eq!(
        after.1, before.1,
        "{how}: the refused open left its folder changed: {err:?}"
    );
    err
}

/// How a refused board was opened.
type Open = fn(&Path) -> kanban_store::Result<Board>;

fn open_gateway(db: &Path) -> kanban_store::Result<Board> {
    Board::open_with(db, gateway())
}

fn inspect(db: &Path) -> kanban_store::Result<Board> {
    Board::inspect(db)
}

/// Every way of opening an existing board: each role's session, and an inspection.
const OPENS: [(&str, Open); 4] = [
    ("gateway", open_gateway),
    ("worker", |db| Board::open(db, Role::Worker)),
    ("dashboard", |db| Board::open(db, Role::Dashboard)),
    ("inspect", inspect),
];

#[test]
fn random_bytes_are_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    write(&db, &random_bytes(8192, 0x5eed));
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(&r, Error::NotADatabase { path } if path == &db);
        assert!(r.is_damage());
    }
}

#[test]
fn a_zero_length_file_is_empty_not_a_new_board() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    write(&db, b"");
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(&r, Error::EmptyFile { path } if path == &db);
    }
    // Not even a session that may create a missing board turns an empty file into one.
    let r = refuse("creating", &db, |db| {
        Board::open_with(db, StoreConfig::new(Role::Gateway).creating())
    });
    assert_variant!(&r, Error::EmptyFile { .. });
    assert_eq!(bytes(&db), b"");
}

#[test]
fn a_board_cut_to_half_its_pages_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 400);
    let full = bytes(&db).len() as u64;
    let page = 4096;
    assert_eq!(full % page, 0);
    assert!(
        full / page >= 20,
        "the board should have many pages ({full} bytes)"
    );
    let half = full / page / 2 * page;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(half)
        .unwrap();
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(
            &r,
            Error::Truncated { path, size, expected }
                if path == &db && *size == half && *expected == full
        );
        assert!(r.is_damage());
    }
}

#[test]
fn the_first_50_bytes_of_a_board_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let board = dir.path().join("whole.db");
    make_board(&board, 10);
    let db = dir.path().join("kanban.db");
    write(&db, &bytes(&board)[..50]);
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(
            &r,
            Error::Truncated { path, size: 50, expected } if path == &db && *expected >= 100
        );
    }
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    raw(&db)
        .execute_batch("CREATE TABLE other(x); INSERT INTO other VALUES (42);")
        .unwrap();
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(
            &r,
            Error::ForeignSchema { path, application_id: 0 } if path == &db
        );
        assert!(!r.is_damage());
    }
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 5);
    raw(&db)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert_eq!(sidecars(&db), Vec::<PathBuf>::new());
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(
            &r,
            Error::SchemaTooNew { path, found, supported }
                if path == &db && *found == SCHEMA_VERSION + 1 && *supported == SCHEMA_VERSION
        );
    }
}

/// The env var that makes [`read_only_folder_child`] do its work.
const RO_ENV: &str = "KANBAN_RO_DB";

/// Opens the board in a read-only folder every way and prints the errors (or `opened`).
fn open_in_read_only_folder(db: &Path) -> String {
    OPENS
        .into_iter()
        .map(|(how, open)| match open(db) {
            Ok(_) => format!("RESULT {how} opened\n"),
            Err(err) => format!("RESULT {how} {err:?}\nMESSAGE {how} {err}\n"),
        })
        .collect()
}

/// Child half of [`a_read_only_folder_is_refused`]: run as `nobody` when the tests run as
/// root (root ignores permission bits). Does nothing unless `KANBAN_RO_DB` is set.
#[test]
#[ignore = "helper: run by a_read_only_folder_is_refused in a child process"]
fn read_only_folder_child() {
    let Some(db) = std::env::var_os(RO_ENV) else {
        return;
    };
    print!("{}", open_in_read_only_folder(Path::new(&db)));
}

#[test]
fn a_read_only_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("ro");
    std::fs::create_dir(&folder).unwrap();
    let db = folder.join("kanban.db");
    make_board(&db, 5);
    let before = bytes(&db);
    let chmod = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    chmod(dir.path(), 0o755).unwrap();
    chmod(&db, 0o644).unwrap();
    chmod(&folder, 0o555).unwrap();

    let output = if nix::unistd::geteuid().is_root() {
        use std::os::unix::process::CommandExt;
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "bad_input::read_only_folder_child",
                "--nocapture",
                "--include-ignored",
            ])
            .env(RO_ENV, &db)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    } else {
        open_in_read_only_folder(&db)
    };
    chmod(&folder, 0o755).unwrap();

    let results: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .collect();
    let messages: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("MESSAGE "))
        .collect();
    assert_eq!(
        results.len(),
        OPENS.len(),
        "every open must report: {output}"
    );
    for result in results {
        assert!(
            result.contains(" ReadOnlyLocation {"),
            "expected ReadOnlyLocation, got {result} (the temporary folder must be \
             traversable by `nobody` when the tests run as root)"
        );
    }
    assert_eq!(messages.len(), OPENS.len(), "{output}");
    for message in messages {
        assert!(message.contains(&db.display().to_string()), "{message}");
        assert!(message.contains("read-only"), "{message}");
    }
    assert_eq!(bytes(&db), before, "the board changed");
    assert_eq!(sidecars(&db), Vec::<PathBuf>::new());
}

#[test]
fn a_missing_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-folder").join("kanban.db");
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(&r, Error::MissingFolder { path } if path == &db);
    }
    let r = refuse("create", &db, |db| Board::create(db, gateway()));
    assert_variant!(&r, Error::MissingFolder { .. });
    let r = refuse("creating", &db, |db| {
        Board::open_with(db, gateway().creating())
    });
    assert_variant!(&r, Error::MissingFolder { .. });
    assert!(
        !db.parent().unwrap().exists(),
        "the folder must not be created"
    );
}

#[test]
fn a_missing_file_is_not_found_unless_creating() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(&r, Error::NotFound { path } if path == &db);
        assert!(!db.exists(), "no board may appear without creating()");
    }
}

#[test]
fn create_refuses_an_existing_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 3);
    let r = refuse("create", &db, |db| Board::create(db, gateway()));
    assert_variant!(&r, Error::AlreadyExists { path } if path == &db);
    // Whatever is there: an empty file, random bytes.
    for contents in [Vec::new(), random_bytes(4096, 7)] {
        write(&db, &contents);
        let r = refuse("create", &db, |db| Board::create(db, gateway()));
        assert_variant!(&r, Error::AlreadyExists { .. });
    }
}

/// Overwrites page 1's b-tree area (the root of `sqlite_master`, right after the 100-byte
/// file header) of a checkpointed board, so that reading the schema fails.
#[test]
fn a_damaged_schema_page_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 50);
    let mut damaged = bytes(&db);
    damaged[100..600].fill(0xA5);
    write(&db, &damaged);
    for (how, open) in OPENS {
        let r = refuse(how, &db, open);
        assert_variant!(&r, Error::Corrupt { path, detail } if path == &db && !detail.is_empty());
        assert!(r.is_damage());
    }
}

#[test]
fn a_full_check_names_the_damaged_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 50);
    common::damage_index(&db);
    let before = bytes(&db);
    let mut board = Board::inspect(&db).expect("a damaged index does not stop an inspection");
    let report = board.check(CheckLevel::Full).unwrap();
    drop(board);
    assert!(report.is_corrupt(), "{report:?}");
    assert!(
        report
            .integrity
            .iter()
            .any(|f| f.contains("wrong # of entries in index idx_events_run")),
        "{report:?}"
    );
    assert!(
        report
            .integrity
            .iter()
            .all(|f| f.contains("idx_events_run")),
        "only the damaged index is named: {report:?}"
    );
    assert!(
        report.foreign_keys.is_empty() && report.invariants.is_empty(),
        "the damage is in the index only: {report:?}"
    );
    assert!(
        report
            .findings()
            .any(|f| f.starts_with("integrity: ") && f.contains("idx_events_run")),
        "{report:?}"
    );
    assert_eq!(bytes(&db), before, "checking changed the board");
}

/// The schema of a new board, as stored in `sqlite_master`, with its identity pragmas.
#[test]
fn snapshot_new_board_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, gateway()).unwrap());
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => format!("{i:#x} ({i})"),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    let mut out = String::new();
    for name in ["application_id", "user_version", "journal_mode"] {
        out.push_str(&format!("PRAGMA {name} = {}\n", pragma(name)));
    }
    out.push('\n');
    for entry in schema(&conn).unwrap() {
        out.push_str(&entry);
        out.push('\n');
    }
    insta::assert_snapshot!("new_board_schema", out);
}

/// The schema as stored in `sqlite_master`, in a stable order.
fn schema(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Every variant of [`Error`], in declaration order, built with a fixed path.
fn every_error() -> Vec<(&'static str, Error)> {
    let path = || PathBuf::from("/boards/kanban.db");
    vec![
        (
            "VulnerableSqlite",
            Error::VulnerableSqlite {
                version: "3.50.4".into(),
            },
        ),
        ("MissingFolder", Error::MissingFolder { path: path() }),
        ("ReadOnlyLocation", Error::ReadOnlyLocation { path: path() }),
        ("NotFound", Error::NotFound { path: path() }),
        ("AlreadyExists", Error::AlreadyExists { path: path() }),
        ("EmptyFile", Error::EmptyFile { path: path() }),
        ("NotADatabase", Error::NotADatabase { path: path() }),
        (
            "Truncated",
            Error::Truncated {
                path: path(),
                size: 81_920,
                expected: 163_840,
            },
        ),
        (
            "Corrupt",
            Error::Corrupt {
                path: path(),
                detail: "wrong # of entries in index idx_events_run".into(),
            },
        ),
        (
            "ForeignSchema",
            Error::ForeignSchema {
                path: path(),
                application_id: 0,
            },
        ),
        (
            "SchemaTooNew",
            Error::SchemaTooNew {
                path: path(),
                found: 2,
                supported: 1,
            },
        ),
        (
            "Busy",
            Error::Busy {
                path: path(),
                what: "the SQLite write lock",
                waited_ms: 5000,
            },
        ),
        (
            "MaintenanceBusy",
            Error::MaintenanceBusy {
                path: path(),
                holder: Some((4242, 1_767_225_600_000)),
                waited_ms: 10_000,
            },
        ),
        (
            "Unavailable",
            Error::Unavailable {
                path: path(),
                why: "no gateway listens on /boards/main/kanban.db.sock: Connection refused (os error 111)".into(),
            },
        ),
        (
            "Remote",
            Error::Remote {
                path: path(),
                kind: ErrorKind::NoSuchTask,
                message: "/boards/main/kanban.db: no task 7".into(),
            },
        ),
        ("GatewayRunning", Error::GatewayRunning { path: path() }),
        (
            "WrongRole",
            Error::WrongRole {
                path: path(),
                role: Role::Dashboard,
                operation: "checkpoint",
            },
        ),
        (
            "UsedAcrossFork",
            Error::UsedAcrossFork {
                path: path(),
                opened_by: 100,
                used_by: 101,
            },
        ),
        ("DiskFull", Error::DiskFull { path: path() }),
        (
            "IoFailure",
            Error::IoFailure {
                path: path(),
                detail: "disk I/O error".into(),
            },
        ),
        (
            "NoSuchTask",
            Error::NoSuchTask {
                path: path(),
                id: 7,
            },
        ),
        (
            "RunNotRunning",
            Error::RunNotRunning {
                path: path(),
                id: 9,
            },
        ),
        (
            "InvalidMove",
            Error::InvalidMove {
                path: path(),
                id: 7,
                from: "done".into(),
                to: "running".into(),
            },
        ),
        // -- quarantine: the folder and the cap
        (
            "UnsafeQuarantine",
            Error::UnsafeQuarantine {
                path: path(),
                folder: PathBuf::from("/boards/kanban.db.quarantine"),
                why: "a symbolic link",
            },
        ),
        (
            "NoQuarantineRoom",
            Error::NoQuarantineRoom {
                path: path(),
                cap: 0,
            },
        ),
        (
            "Io",
            Error::Io {
                path: PathBuf::from("/boards/kanban.db.lock"),
                source: std::io::Error::from_raw_os_error(2),
            },
        ),
        (
            "Sqlite",
            Error::Sqlite {
                path: path(),
                source: rusqlite::Error::QueryReturnedNoRows,
            },
        ),
        // One board, one identity.
        (
            "HardLinked",
            Error::HardLinked {
                path: path(),
                links: 2,
            },
        ),
        (
            "UnsafeLockFile",
            Error::UnsafeLockFile {
                path: path(),
                why: "/boards/kanban.db.lock: a symlink (the store never follows one to its lock file); remove it".into(),
            },
        ),
        (
            "UnsupportedFileSystem",
            Error::UnsupportedFileSystem {
                path: path(),
                fs: "nfs (magic 0x6969)".into(),
            },
        ),
        (
            "FileSystemFailure",
            Error::FileSystemFailure {
                path: path(),
                detail: "OFD locks do not hold (a maintenance lock was granted while a session was open)".into(),
            },
        ),
        (
            "UnknownSqliteVersion",
            Error::UnknownSqliteVersion {
                version: "-1 (\"3.54.1\")".into(),
            },
        ),
        // -- the single-writer protocol
        (
            "RequestIdReused",
            Error::RequestIdReused {
                path: path(),
                id: "0000000000000000000000000000002a".into(),
            },
        ),
        (
            "FrameTooLarge",
            Error::FrameTooLarge {
                path: path(),
                size: 65_537,
                max: 65_536,
            },
        ),
        (
            "BadRequest",
            Error::BadRequest {
                path: path(),
                detail: "expected value at line 1 column 1".into(),
            },
        ),
        ("NotGatewayHolder", Error::NotGatewayHolder { path: path() }),
        (
            "PeerRefused",
            Error::PeerRefused {
                path: path(),
                pid: 4242,
                uid: 65534,
                gid: 65534,
                why: "only uid 1000 is trusted".into(),
            },
        ),
        // Liveness: online copies that finish.
        (
            "CopyIncomplete",
            Error::CopyIncomplete {
                path: path(),
                dest: PathBuf::from("/backups/copy.db"),
                detail: "12800 pages copied of 12801".into(),
            },
        ),
    ]
}

/// Every error has a kind whose stable name reads back as it, one kind per variant (a
/// `Remote` reports the gateway's), and a path unless it is about SQLite itself.
#[test]
fn every_error_has_its_own_kind_and_a_path() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, err) in every_error() {
        let kind = err.kind();
        assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind), "{name}");
        if name == "Remote" {
            assert_eq!(kind, ErrorKind::NoSuchTask);
        } else {
            assert!(seen.insert(kind.as_str()), "{name}: kind {kind} twice");
            assert_eq!(format!("{kind:?}"), name);
        }
        let sqlite_itself = matches!(
            err,
            Error::VulnerableSqlite { .. } | Error::UnknownSqliteVersion { .. }
        );
        assert_eq!(err.path().is_none(), sqlite_itself, "{name}");
    }
    assert_eq!(seen.len(), ErrorKind::ALL.len());
    assert!(
        Error::Busy {
            path: "/b".into(),
            what: "x",
            waited_ms: 0
        }
        .is_retryable()
    );
    assert!(
        !Error::NoSuchTask {
            path: "/b".into(),
            id: 1
        }
        .is_retryable()
    );
}

/// The variant names declared in `src/error.rs`, in order (lines `    Name {` or `    Name,`
/// inside `pub enum Error`), so that a new variant cannot miss the message snapshot.
fn declared_variants() -> Vec<String> {
    let source = include_str!("../src/error.rs");
    let body = source
        .split_once("pub enum Error {")
        .expect("pub enum Error")
        .1
        .split_once("\n}")
        .expect("end of enum")
        .0;
    body.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn snapshot_every_error_message() {
    let errors = every_error();
    let listed: Vec<&str> = errors.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        listed,
        declared_variants(),
        "every_error() must list every Error variant, in declaration order"
    );
    let mut out = String::new();
    for (name, err) in &errors {
        let debug = format!("{err:?}");
        assert!(debug.starts_with(name), "{name} built as {debug}");
        if !matches!(
            err,
            Error::VulnerableSqlite { .. } | Error::Io { .. } | Error::UnknownSqliteVersion { .. }
        ) {
            assert!(err.to_string().starts_with("/boards/kanban.db: "), "{err}");
        }
        out.push_str(&format!("{name}: {err}\n"));
    }
    insta::assert_snapshot!("every_error_message", out);
}
