//! The store's own namespace changes, as its files observer sees them (the harness's
//! power-cut model records them from it): every rename, link and remove of a quarantine
//! copy or a backup is told before it is made, and followed by a sync of its folder before
//! the store reports success; with the `no-dir-fsync` hazard, no folder is synced.
// Tests write quarantine files with std::fs; no connection has them open.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use crate::common::{gateway, make_board, random_bytes, recording, write};
use kanban_store::FileChange::{self, DirSynced, FileSynced, Linking, Removing, Renaming};
use kanban_store::{Board, Quarantined, StoreConfig, quarantine};

/// A board of 30 tasks in a new folder, and its canonical path.
fn board() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().canonicalize().unwrap().join("kanban.db");
    make_board(&db, 30);
    (dir, db)
}

/// `seen`'s changes, each temporary file's name (unknown to the test) made `PARTIAL`.
fn shown(seen: &[FileChange]) -> Vec<FileChange> {
    let at = |p: &PathBuf| match p.file_name().and_then(|n| n.to_str()) {
        Some(n) if n.starts_with('.') && n.contains(".partial-") => p.with_file_name("PARTIAL"),
        _ => p.clone(),
    };
    seen.iter()
        .map(|c| match c {
            Renaming { from, to } => Renaming {
                from: at(from),
                to: at(to),
            },
            Linking { from, to } => Linking {
                from: at(from),
                to: at(to),
            },
            Removing(p) => Removing(at(p)),
            FileSynced(p) => FileSynced(at(p)),
            DirSynced(p) => DirSynced(at(p)),
        })
        .collect()
}

/// What a board opened with `cfg` and a recording files observer was told so far.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<FileChange>>>;

/// A new board opened with `cfg` and a recording files observer.
fn with_observer(cfg: StoreConfig) -> (Seen, Board, PathBuf, tempfile::TempDir) {
    let (dir, db) = board();
    let (seen, observer) = recording();
    let b = Board::open_with(&db, cfg.files_observer(observer)).unwrap();
    (seen, b, db, dir)
}

#[test]
fn a_quarantine_copy_is_synced_renamed_into_place_and_its_folder_synced() {
    let (seen, mut b, db, _dir) = with_observer(gateway());
    let Quarantined::Saved(copy) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    let folder = quarantine::folder(&db);
    let partial = folder.join("PARTIAL");
    assert_eq!(
        shown(&seen.lock().unwrap()),
        [
            DirSynced(db.parent().unwrap().to_path_buf()), // the new quarantine folder
            FileSynced(partial.clone()),
            Renaming {
                from: partial.clone(),
                to: copy
            },
            DirSynced(folder),
        ]
    );
}

#[test]
fn a_replaced_copy_loses_its_sidecars_before_the_rename_and_the_folder_is_synced_after() {
    let (seen, mut b, db, _dir) = with_observer(gateway());
    let Quarantined::Saved(copy) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    write(&copy, &random_bytes(4096, 3));
    let journal = PathBuf::from(format!("{}-journal", copy.display()));
    write(&journal, b"stale");
    seen.lock().unwrap().clear();
    assert_eq!(b.quarantine().unwrap(), Quarantined::Replaced(copy.clone()));
    let folder = quarantine::folder(&db);
    let partial = folder.join("PARTIAL");
    assert_eq!(
        shown(&seen.lock().unwrap()),
        [
            FileSynced(partial.clone()),
            Removing(journal),
            Renaming {
                from: partial.clone(),
                to: copy
            },
            DirSynced(folder),
        ]
    );
}

#[test]
fn a_backup_is_linked_into_place_its_partial_removed_then_its_folder_synced() {
    let (seen, mut b, _db, _dir) = with_observer(gateway());
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().canonicalize().unwrap().join("backup.db");
    b.backup_to(&dest).unwrap();
    let partial = dest.with_file_name("PARTIAL");
    assert_eq!(
        shown(&seen.lock().unwrap()),
        [
            Linking {
                from: partial.clone(),
                to: dest.clone()
            },
            Removing(partial),
            DirSynced(dest.parent().unwrap().to_path_buf()),
        ]
    );
}

#[cfg(feature = "hazards")]
#[test]
fn with_no_dir_fsync_the_same_changes_are_made_and_no_folder_is_synced() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let cfg = gateway().hazards(HazardSet::default().with(Hazard::NoDirFsync));
    let (seen, mut b, _db, _dir) = with_observer(cfg);
    let Quarantined::Saved(copy) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().canonicalize().unwrap().join("backup.db");
    b.backup_to(&dest).unwrap();
    let seen = seen.lock().unwrap();
    let changes = shown(&seen);
    assert!(changes.contains(&Linking {
        from: dest.with_file_name("PARTIAL"),
        to: dest
    }));
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Renaming { to, .. } if *to == copy))
    );
    assert!(
        !changes.iter().any(|c| matches!(c, DirSynced(_))),
        "{changes:?}"
    );
}

#[test]
fn a_repair_at_the_cap_evicts_before_the_rename_and_syncs_the_folder_after() {
    let (_dir, db, old) = crate::repair::damaged_at_the_cap(5);
    let (seen, observer) = recording();
    let report = kanban_store::repair(&db, &gateway().files_observer(observer)).unwrap();
    let Some(Quarantined::Evicted { saved, evicted }) = report.quarantined else {
        panic!("the oldest copy makes room: {report:?}")
    };
    assert_eq!(evicted, old[..1]);
    let folder = quarantine::folder(&db);
    let partial = folder.join("PARTIAL");
    assert_eq!(
        shown(&seen.lock().unwrap()),
        [
            FileSynced(partial.clone()),
            Removing(old[0].clone()),
            Renaming {
                from: partial,
                to: saved
            },
            DirSynced(folder),
        ]
    );
}

/// The hazards' own changes of board files are told too (here `hard-link-alias`'s link),
/// so the power-cut model sees the upstream mistakes as they are made.
#[cfg(feature = "hazards")]
#[test]
fn a_hazards_link_of_the_board_is_told() {
    use kanban_store::hazards::{Hazard, HazardSet};
    let cfg = StoreConfig::new(kanban_store::Role::Dashboard)
        .hazards(HazardSet::default().with(Hazard::HardLinkAlias));
    let (seen, mut b, db, _dir) = with_observer(cfg);
    b.list_board().unwrap();
    assert_eq!(
        seen.lock().unwrap()[..],
        [Linking {
            from: db.clone(),
            to: PathBuf::from(format!("{}.alias", db.display())),
        }]
    );
}

/// A dead writer's partial file swept by a copy that finds its copy already kept: removed,
/// and the folder synced, though nothing else changes.
#[test]
fn a_swept_partial_is_removed_then_its_folder_synced() {
    let (seen, mut b, db, _dir) = with_observer(gateway());
    let Quarantined::Saved(copy) = b.quarantine().unwrap() else {
        panic!("the first copy is saved")
    };
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        child.id()
    };
    let folder = quarantine::folder(&db);
    let partial = folder.join(format!(".partial-{}-{dead}-0", "0".repeat(24)));
    write(&partial, b"half a copy");
    seen.lock().unwrap().clear();
    assert_eq!(b.quarantine().unwrap(), Quarantined::AlreadyKept(copy));
    assert_eq!(
        seen.lock().unwrap()[..],
        [Removing(partial), DirSynced(folder)]
    );
}
