//! The store's own namespace changes, recorded for the page-cache model.
//!
//! The shim's VFS sees every file operation SQLite makes, but not what the store does
//! itself with `std::fs`: a quarantine copy's rename into place, the sidecars and old
//! copies it removes, a backup's hard link and the removal of its temporary name, the
//! folder syncs after them, and the fsync of a quarantine copy (`kanban_store::FileChange`).
//! The store's files observer tells them, and [`record`] turns each into the journal's
//! record, so a power cut can undo the ones no folder sync made durable. `<db>.lock` and
//! `<db>.sock` hold no board data and are never told.

use std::path::Path;

use kanban_store::FileChange;

use crate::pagecache::{Recorder, Result};

/// The flags a store fsync is recorded with: `SQLITE_SYNC_FULL` (an `fsync` of the file).
const STORE_FSYNC: u32 = rusqlite::ffi::SQLITE_SYNC_FULL as u32;

/// Records `change` in `rec`, the journal of the board folder `board_dir`, with paths
/// relative to that folder (`""` is the folder itself). A change that names a path outside
/// the folder (a backup written elsewhere) is not the model's: nothing is recorded.
pub(crate) fn record(rec: &Recorder, board_dir: &Path, change: &FileChange) -> Result<()> {
    let rel = |p: &Path| p.strip_prefix(board_dir).ok()?.to_str().map(str::to_owned);
    match change {
        FileChange::Renaming { from, to } => match (rel(from), rel(to)) {
            (Some(from), Some(to)) => rec.rename(&from, &to),
            _ => Ok(()),
        },
        FileChange::Linking { from, to } => match (rel(from), rel(to)) {
            (Some(from), Some(to)) => rec.link(&from, &to),
            _ => Ok(()),
        },
        FileChange::Removing(file) => rel(file).map_or(Ok(()), |f| rec.delete(&f)),
        FileChange::FileSynced(file) => rel(file).map_or(Ok(()), |f| rec.sync(&f, STORE_FSYNC)),
        FileChange::DirSynced(dir) => rel(dir).map_or(Ok(()), |d| rec.dir_sync(&d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagecache::{Record, read_journal};

    #[test]
    fn each_change_inside_the_board_folder_is_recorded_relative_to_it_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let board = dir.path();
        let q = board.join("kanban.db.quarantine");
        std::fs::create_dir(&q).unwrap();
        std::fs::write(q.join(".partial-x"), b"copy").unwrap();
        let rec = Recorder::open(board).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let changes = [
            FileChange::FileSynced(q.join(".partial-x")),
            FileChange::Linking {
                from: q.join(".partial-x"),
                to: q.join("c.db"),
            },
            FileChange::Renaming {
                from: q.join(".partial-x"),
                to: q.join("d.db"),
            },
            FileChange::Removing(q.join("d.db")),
            FileChange::DirSynced(q.clone()),
            FileChange::DirSynced(board.to_path_buf()),
            // A backup outside the board folder: not the model's.
            FileChange::Linking {
                from: elsewhere.path().join(".b.partial-1-0"),
                to: elsewhere.path().join("b.db"),
            },
            FileChange::Removing(elsewhere.path().join(".b.partial-1-0")),
            FileChange::DirSynced(elsewhere.path().to_path_buf()),
        ];
        for c in &changes {
            record(&rec, board, c).unwrap();
            // Then the change itself, as the store makes it after telling.
            match c {
                FileChange::Linking { from, to } if to.starts_with(board) => {
                    std::fs::hard_link(from, to).unwrap();
                }
                FileChange::Renaming { from, to } => std::fs::rename(from, to).unwrap(),
                FileChange::Removing(f) if f.starts_with(board) => {
                    std::fs::remove_file(f).unwrap();
                }
                _ => {}
            }
        }
        let q = "kanban.db.quarantine";
        let records = read_journal(board).unwrap().records;
        // The kept links' names are the recorder's (pid-n): take them from what it wrote.
        let kept = |i: usize| match &records[i] {
            Record::Delete { kept, .. } => kept.clone(),
            Record::Rename { replaced, .. } => replaced.clone(),
            r => panic!("record {i}: {r:?}"),
        };
        assert_eq!(
            records,
            [
                Record::Sync {
                    file: format!("{q}/.partial-x"),
                    flags: STORE_FSYNC,
                },
                Record::Link {
                    from: format!("{q}/.partial-x"),
                    to: format!("{q}/c.db"),
                },
                Record::Rename {
                    from: format!("{q}/.partial-x"),
                    to: format!("{q}/d.db"),
                    replaced: kept(2),
                },
                Record::Delete {
                    file: format!("{q}/d.db"),
                    kept: kept(3),
                },
                Record::DirSync { dir: q.into() },
                Record::DirSync { dir: String::new() },
            ]
        );
        assert_eq!(kept(2), None, "nothing was at d.db");
        assert!(kept(3).is_some(), "the removed file is kept for the cut");
    }
}
