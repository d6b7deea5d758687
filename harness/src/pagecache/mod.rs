//! The page-cache model: what a power cut may do to the board's files.
//!
//! A SIGKILL leaves the kernel's page cache intact, so every write that reached `write(2)`
//! survives it; a power cut keeps only what was synced. The model keeps, in a journal
//! beside the board (`pagecache.log`), what is needed to undo everything not yet durable:
//! every worker's shim appends to it through a [`Recorder`] just before each write and
//! truncation (with the bytes they replace), after each sync, and around creates, deletes
//! and renames (and the store's own renames, links and removes, told by its files
//! observer: `shim/store_files.rs`). After every worker is dead, [`cut`] replays the journal and rewrites the
//! files into a state a disk could hold after the cut, seeded by [`Mode`], and reports
//! what it did ([`CutReport`]). This is our own take on SQLite's crash VFS (`test6.c`,
//! which at a sync writes, drops or trashes each pending write) and LazyFS's faults
//! (losing unsynced data, torn writes), with the journal in a file so that several
//! processes share one page cache, as they do on a real machine.
//!
//! # What durability means here
//!
//! - A file's content and size are durable up to its last sync (any `SQLITE_SYNC_*`
//!   flags: SQLite's unix VFS calls `fdatasync` for every flag on Linux, and `fdatasync`
//!   makes the size durable too; the flags are recorded so a harsher model can use them).
//! - A create, delete, rename or hard link is durable once its folder is synced (a rename
//!   or a link counts in the new name's folder; an undone link loses its new name). File syncs do not make names durable, as POSIX allows
//!   (ext4 would), and a folder's namespace changes are kept as a *prefix* (metadata is
//!   journalled in order by ext4 and xfs).
//! - The `-shm` files are always deleted: SQLite rebuilds them.
//!
//! # The disk states each mode produces, per file
//!
//! Let the file's pending operations be its writes and truncations since its last sync.
//! - `lose-unsynced`: the content at its last sync; every unsynced namespace change
//!   undone (created files vanish, deleted ones come back if a link kept them).
//! - `keep-some`: the synced content with a subset of the pending operations applied
//!   again in their order, each kept with probability ½; per folder, a random prefix of
//!   the namespace changes. Every byte thus holds the value some moment of its history
//!   gave it; at byte granularity, so two writes that overlap inside one sector can
//!   leave a sector mixing both (SQLite writes whole pages, which do not).
//! - `torn`: `keep-some`, and one kept write torn: each 512-byte sector it covers gets
//!   its new bytes or keeps what it had (some of each when it covers two sectors or
//!   more); the file keeps the write's end as its size.
//! - `garbage`: `keep-some` (the same choices for the same seed), then the bytes one
//!   pending write (kept or not) covers in one of its sectors (within the file's size)
//!   overwritten with random bytes. Never bytes outside the write: SQLite's unix VFS
//!   reports `SQLITE_IOCAP_POWERSAFE_OVERWRITE`, the promise that a write cannot damage
//!   its neighbours, and SQLite's WAL frames (4120 bytes) share sectors with the synced
//!   frames before them.
//!
//! Synced bytes no pending operation touched are never changed, in any mode.
//!
//! # What the model does not cover
//!
//! Memory-mapped writes (the shim sees none: SQLite's `-shm` is mapped, and deleted at
//! the cut anyway; the db is mapped only with `mmap_size`, which the store does not set);
//! writes by processes without the recorder; a delete whose link could not be kept (the
//! file cannot come back: reported as [`NsUndo::NotRestorable`]); a process's old bytes
//! read racing another process's write of the same bytes (SQLite's locks exclude it for
//! the db, journal and WAL); a delete or rename recorded but then refused by the file
//! system (records come first: a refused delete is undone onto the same inode, which is
//! harmless; a refused rename leaves nothing at its new name to move back, and is
//! reported as [`NsUndo::NeverRenamed`]; but a refused link would be undone as if it had
//! been made: a link refused because its new name exists would remove that name); namespace changes made
//! outside the shim other than the store's own (its files observer tells those); folders
//! created (the quarantine folder: the store syncs its parent right after).

mod cut;
mod history;
mod record;
mod recorder;
mod rewrite;

use std::path::{Path, PathBuf};

pub use cut::{CutReport, FileCut, NsUndo, cut};
pub use history::Place;
pub use record::{Op, Parsed, Record};
pub use recorder::{Contents, Recorder};
pub use rewrite::Torn;

/// The sector size the modes tear and trash at.
pub const SECTOR: u64 = 512;

/// The journal of the board folder `dir`.
pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("pagecache.log")
}

/// The folder of hard links that keep deleted and replaced files for the cut.
pub fn kept_dir(dir: &Path) -> PathBuf {
    dir.join("pagecache.kept")
}

/// The journal of `dir`, parsed (an absent journal is an empty one).
pub fn read_journal(dir: &Path) -> Result<Parsed> {
    let path = journal_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(record::parse(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Parsed::default()),
        Err(e) => Err(Error::io("reading the journal", &path, e)),
    }
}

/// What a power cut keeps of what is not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Every unsynced write and namespace change undone.
    LoseUnsynced,
    /// Each unsynced write kept or undone, independently.
    KeepSome,
    /// As `KeepSome`, with one kept write torn at sector granularity.
    Torn,
    /// As `KeepSome`, with one whole sector of an unsynced write overwritten with random
    /// bytes.
    Garbage,
}

impl Mode {
    /// Every mode, in the order of their names.
    pub const ALL: [Mode; 4] = [
        Mode::LoseUnsynced,
        Mode::KeepSome,
        Mode::Torn,
        Mode::Garbage,
    ];

    /// The mode's name in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::LoseUnsynced => "lose-unsynced",
            Mode::KeepSome => "keep-some",
            Mode::Torn => "torn",
            Mode::Garbage => "garbage",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| Error::PowerCutMode(s.into()))
    }
}

/// The supervisor's word that every worker of the seed is dead and reaped, so that no
/// process holds a board file open (or a POSIX lock on one) while [`cut`] rewrites it with
/// `std::fs`.
#[derive(Debug)]
pub struct AllStopped(());

impl AllStopped {
    /// To be called only after every worker has been killed and `waitpid` has returned for
    /// each.
    pub fn after_reaping_every_worker() -> Self {
        AllStopped(())
    }
}

/// The model's errors are the harness's (`crate::error`: `PageCacheIo`, `RecordTooLarge`,
/// `ShortAppend`, `PowerCutMode`).
pub use crate::error::{Error, Result};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_from_its_name_and_nothing_else_does() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
        }
        assert!(matches!(
            "lose".parse::<Mode>(),
            Err(Error::PowerCutMode(_))
        ));
    }
}
