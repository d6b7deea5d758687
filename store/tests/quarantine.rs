//! Quarantine copies that are honest after a kill and in a hostile folder: a file at a
//! copy's name that is not a whole copy (a copy killed midway by a build that wrote in
//! place) is replaced, not taken for the copy; partial files of dead writers are swept and
//! never listed; a quarantine folder that is a link is refused and nothing is written.
// Tests read/write quarantine files with std::fs; no connection has them open.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};

use common::{bytes, gateway, make_board, random_bytes, write};
use kanban_store::{Board, CheckLevel, Quarantined, quarantine};

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A board with a first copy kept, and that copy's path.
fn board_with_a_copy() -> (tempfile::TempDir, PathBuf, Board, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 30);
    let mut b = Board::open_with(&db, gateway()).unwrap();
    let Quarantined::Saved(copy) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    (dir, db, b, copy)
}

/// The copy at `copy` opens as a board with 30 tasks and passes the full check.
fn assert_whole(copy: &Path) {
    let mut c = Board::inspect(copy).unwrap();
    assert_eq!(c.list_board().unwrap().len(), 30);
    assert!(c.check(CheckLevel::Full).unwrap().is_ok());
}

#[test]
fn a_file_at_the_copys_name_that_is_no_whole_copy_is_replaced() {
    let (_dir, _db, mut b, copy) = board_with_a_copy();
    let whole = bytes(&copy);
    for (what, cut) in [
        ("cut short", whole[..4096].to_vec()),
        ("empty", Vec::new()),
        ("garbage", random_bytes(whole.len(), 7)),
    ] {
        write(&copy, &cut);
        // A stale journal beside it must not be rolled back into the new copy.
        let mut journal = copy.clone().into_os_string();
        journal.push("-journal");
        write(Path::new(&journal), &random_bytes(4096, 8));
        let got = b.quarantine().unwrap();
        assert_eq!(
            format!("{got:?}"),
            format!("Replaced({copy:?})"),
            "{what}: the copy was {} bytes",
            cut.len()
        );
        assert!(!Path::new(&journal).exists(), "{what}");
        assert!(bytes(&copy) == whole, "{what}: not the same copy");
        assert_whole(&copy);
        assert_eq!(
            b.quarantine().unwrap(),
            Quarantined::AlreadyKept(copy.clone())
        );
    }
}

#[test]
fn partial_copies_are_never_listed_and_a_dead_writers_are_swept() {
    let (_dir, db, mut b, copy) = board_with_a_copy();
    let folder = quarantine::folder(&db);
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let hex = "0".repeat(24);
    let of_dead = format!(".partial-{hex}-{dead}-0");
    let of_live = format!(".partial-{hex}-1-0");
    for partial in [&of_dead, &of_live] {
        write(&folder.join(partial), b"half a copy");
    }
    let survey = quarantine::survey(&db).unwrap();
    assert_eq!(survey.copies, vec![copy.clone()]);
    assert_eq!(survey.others, 2);

    b.create_task(&common_task()).unwrap();
    let Quarantined::Saved(second) = b.quarantine().unwrap() else {
        panic!("a changed board is a new copy")
    };
    let mut expected = vec![
        copy.file_name().unwrap().to_string_lossy().into_owned(),
        second.file_name().unwrap().to_string_lossy().into_owned(),
        of_live,
    ];
    expected.sort();
    assert_eq!(
        names(&folder),
        expected,
        "the dead writer's partial is swept"
    );
}

fn common_task() -> kanban_store::NewTask {
    kanban_store::NewTask {
        title: "one more".into(),
        body: String::new(),
        priority: 0,
        parents: Vec::new(),
    }
}

#[test]
fn a_quarantine_folder_that_is_a_link_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    make_board(&db, 30);
    let folder = quarantine::folder(&db);
    std::os::unix::fs::symlink(".", &folder).unwrap();
    let mut b = Board::open_with(&db, gateway()).unwrap();
    let before = names(dir.path());
    let refused = format!(
        "{}: the quarantine folder {} is a symbolic link; refusing to use it",
        db.display(),
        folder.display()
    );
    let err = b.quarantine().expect_err("a linked folder is refused");
    assert_eq!(err.to_string(), refused);
    assert_eq!(names(dir.path()), before, "nothing was written");
    drop(b);
    let list = quarantine::survey(&db).map(|s| s.copies);
    assert_eq!(list.map_err(|e| e.to_string()), Err(refused.clone()));
    // A plain file is no folder either.
    std::fs::remove_file(&folder).unwrap();
    write(&folder, b"not a folder");
    let err = quarantine::prune(&db, 0).expect_err("a file is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the quarantine folder {} is not a directory; refusing to use it",
            db.display(),
            folder.display()
        )
    );
    assert_eq!(bytes(&folder), b"not a folder");
}
