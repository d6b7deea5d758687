//! R8: quarantine copies, made with SQLite's backup API, named by content, capped, and
//! honest about what they hold even when a copy is killed midway.
//!
//! The upstream health guard copied `db`, `-wal` and `-shm` with plain file I/O on every
//! failed check (dropping the process's locks each time) and kept every copy: 300+ files in
//! half an hour. Here a copy is a consistent snapshot taken through SQLite (the backup API
//! reads pages through the pager, under SQLite's own locks), the same damage is kept once
//! (the name is a hash of the copy's bytes), and no more than the cap are kept.
//!
//! **The folder** is `<db>.quarantine/`. It is `lstat`ed before every use: a symbolic link
//! (to the board's own folder, say) or anything that is not a directory is refused with
//! [`Error::UnsafeQuarantine`], and only names this module writes (24 lowercase hex digits
//! and `.db`, a regular file, not a link) are listed, counted or deleted. Anything else in
//! the folder is left alone: with `<db>.quarantine -> .`, the live board would otherwise be
//! listed as a copy and pruned.
//!
//! **A copy is crash-honest.** It is written (backup API, no journal) to a temporary name
//! in the folder, `.partial-<name>-<pid>-<n>`, which no listing matches; the file is
//! fsynced; its bytes are read back and must hash to its name; only then is it renamed to
//! `<name>.db` and the folder fsynced. (The partial's own folder entry needs no fsync: a
//! partial file lost to a power cut is a copy not made, the same as one killed.) Two
//! fsyncs per copy: health checks of a damaged board run this while others wait for the
//! board. A kill at any point leaves either no copy or a whole one under the final name,
//! plus at worst a partial file that the next copy made removes (once the process that
//! wrote it is gone: a live one may still be writing it). A file at the final name that does not hash to its name (left by a
//! build that wrote copies in place, or damaged since) is no copy: the new one replaces it
//! ([`Quarantined::Replaced`]).
//!
//! The check is the name, not `quick_check`: a quarantine copy is a copy of a *damaged*
//! board, so a faithful copy fails `quick_check` as often as the board does. The hash
//! leaves out the four header fields that a backup rewrites (the change counter, the
//! schema cookie, version-valid-for and the SQLite version), so a copy on disk hashes like
//! the snapshot it was made from: `sha256` of those bytes, first 12 bytes, is the name.
//!
//! **The cap.** A health check ([`crate::Board::check`] with `quarantine_on_damage`) that
//! finds the cap reached keeps nothing ([`Quarantined::CapReached`]): it replaces nothing,
//! so the board still holds what it would have copied. A repair that rebuilds replaces the
//! board, and what the rebuild cannot read is then gone but for the copy: it never goes
//! ahead without one. At the cap it writes its copy, then removes the oldest copies to
//! stay within it ([`Quarantined::Evicted`], which names them): the oldest copies are of
//! boards already repaired, the new one is the only record of the rows this rebuild
//! loses. The new copy is written (as a partial file) before anything is evicted, so a
//! copy that fails (a full disk) leaves every old one and stops the repair; the oldest go
//! before the rename, so a kill never leaves more than the cap. With a cap of 0 no room
//! can be made and a rebuild is refused ([`Error::NoQuarantineRoom`]).
//!
//! **Oldest and newest** are by modification time, then by name (times can tie, and a copy's
//! content cannot say when it was made); [`prune`] keeps the newest.
//!
//! Copies and partial files are standalone files that no session opens, never a live
//! board: this module reads, renames and deletes them with `std::fs` (each use allowed
//! where it happens). The live board is only ever read through the backup API.
//!
//! Layer: maintenance (the layer order is in `store/ARCHITECTURE.md`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::copy::{Namespace, remove_partial as discard};
use crate::error::{Error, Result, SqlResultExt};
// Defined in the ground layer (a check report holds one), public here as it always was.
pub use crate::types::Quarantined;

/// What [`keep`] does when the cap is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtCap {
    /// Keep nothing (a health check: it replaces nothing).
    Skip,
    /// Make room by removing the oldest copies (a repair: it never rebuilds without a copy).
    Evict,
}

/// The quarantine folder of the board at `path`, beside its canonical path (see
/// [`Board::path`](crate::Board::path)).
pub fn folder(path: &Path) -> PathBuf {
    crate::place::quarantine(&crate::place::canonical_or_given(path))
}

/// What the quarantine folder of a board holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Survey {
    /// The copies, oldest first (by modification time, then name).
    pub copies: Vec<PathBuf>,
    /// How many other entries the folder holds (left alone: not written by the store, or a
    /// copy still being written).
    pub others: usize,
}

/// The copies kept for the board at `path` and how many other entries their folder holds.
/// No folder: no copies. A folder that is a symbolic link or not a directory:
/// [`Error::UnsafeQuarantine`].
pub fn survey(path: &Path) -> Result<Survey> {
    let Some(dir) = checked_folder(path)? else {
        return Ok(Survey::default());
    };
    let io = |source| Error::Io {
        path: dir.clone(),
        source,
    };
    let mut copies: Vec<(SystemTime, PathBuf)> = Vec::new();
    let mut others = 0;
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?; // lstat: a link is not a copy
        match copy_name(&entry.file_name()) && meta.is_file() {
            true => copies.push((meta.modified().map_err(io)?, entry.path())),
            false => others += 1,
        }
    }
    copies.sort();
    Ok(Survey {
        copies: copies.into_iter().map(|(_, p)| p).collect(),
        others,
    })
}

/// The copies kept for the board at `path`, oldest first (see [`survey`]).
pub fn list(path: &Path) -> Result<Vec<PathBuf>> {
    survey(path).map(|s| s.copies)
}

/// Removes quarantine copies of the board at `path`, keeping the `keep` newest (`0` removes
/// them all); returns the removed paths, oldest first. Only copies are removed: nothing
/// else in the folder, and nothing at all when the folder is not a plain directory. The
/// folder is fsynced after, so the copies reported removed stay removed.
pub fn prune(path: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let ns = Namespace::default(); // no observer: the CLI's prune
    let mut copies = list(path)?;
    copies.truncate(copies.len().saturating_sub(keep));
    for copy in &copies {
        remove(copy, &ns)?;
    }
    if !copies.is_empty() {
        ns.sync_folder(&folder(path))?;
    }
    Ok(copies)
}

/// Copies the database behind `conn` into the quarantine folder, unless a whole identical
/// copy is there already or `cap` copies are (then `at_cap` decides). Its files are
/// renamed, removed and synced through `ns`.
pub(crate) fn keep(
    conn: &Connection,
    path: &Path,
    cap: usize,
    at_cap: AtCap,
    ns: &Namespace,
) -> Result<Quarantined> {
    // One step under one read transaction: it finishes while others write (see
    // [`crate::copy`]).
    let mut snapshot = Connection::open_in_memory().at(path)?;
    crate::copy::step_whole(conn, path, &mut snapshot, &folder(path))?;
    let name = digest(&snapshot.serialize("main").at(path)?);
    let dir = folder(path);
    let dest = dir.join(format!("{name}.db"));
    let exists = checked_folder(path)?.is_some();
    if exists {
        sweep_partials(&dir, ns)?;
    }
    let copies = list(path)?;
    let present = copies.contains(&dest);
    if present && holds(&dest, &name)? {
        return Ok(Quarantined::AlreadyKept(dest));
    }
    let evict = match (present, copies.len() >= cap, at_cap) {
        (false, true, AtCap::Skip) => {
            return Ok(Quarantined::CapReached { kept: copies.len() });
        }
        (false, true, AtCap::Evict) if cap == 0 => {
            return Err(Error::NoQuarantineRoom {
                path: path.to_path_buf(),
                cap,
            });
        }
        (false, true, AtCap::Evict) => copies.len() + 1 - cap,
        _ => 0,
    };
    if !exists {
        create_folder(&dir, ns)?;
    }
    // The copy is whole before any old one goes, so a failed copy (a full disk) evicts
    // nothing; evictions come before the rename, so a kill never leaves more than the cap.
    let partial = write_partial(&snapshot, &dir, &name, ns)?;
    let evicted: Vec<PathBuf> = copies.into_iter().take(evict).collect();
    for old in &evicted {
        remove(old, ns).inspect_err(|_| discard(&partial, ns))?;
    }
    install(&partial, &dir, &dest, present, ns).inspect_err(|_| discard(&partial, ns))?;
    Ok(match (present, evicted.is_empty()) {
        (true, _) => Quarantined::Replaced(dest),
        (false, true) => Quarantined::Saved(dest),
        (false, false) => Quarantined::Evicted {
            saved: dest,
            evicted,
        },
    })
}

/// Header bytes a backup rewrites: the change counter (24..28), the schema cookie
/// (40..44), version-valid-for and the SQLite version (92..100).
const REWRITTEN: [std::ops::Range<usize>; 3] = [24..28, 40..44, 92..100];

/// A copy's name: 24 hex digits of the SHA-256 of `bytes`, with [`REWRITTEN`] left out.
fn digest(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    let mut at = 0;
    for skip in REWRITTEN.iter().filter(|r| r.end <= bytes.len()) {
        hasher.update(&bytes[at..skip.start]);
        at = skip.end;
    }
    hasher.update(&bytes[at.min(bytes.len())..]);
    hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True for the names of copies: 24 lowercase hex digits and `.db`.
fn copy_name(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_suffix(".db"))
        .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// The quarantine folder, if it exists and is a plain directory (not a link).
fn checked_folder(path: &Path) -> Result<Option<PathBuf>> {
    let dir = folder(path);
    let why = match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: dir, source }),
        Ok(m) if m.file_type().is_symlink() => "a symbolic link",
        Ok(m) if !m.is_dir() => "not a directory",
        Ok(_) => return Ok(Some(dir)),
    };
    Err(Error::UnsafeQuarantine {
        path: path.to_path_buf(),
        folder: dir,
        why,
    })
}

/// Creates the quarantine folder and makes its entry durable in the board's folder.
fn create_folder(dir: &Path, ns: &Namespace) -> Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: e,
            });
        }
        _ => {}
    }
    ns.sync_folder(dir.parent().unwrap_or(Path::new(".")))
}

/// True if the file at `copy` hashes to `name` (a whole copy of that snapshot).
fn holds(copy: &Path, name: &str) -> Result<bool> {
    #[allow(clippy::disallowed_methods)] // a quarantine copy, never a live board
    let bytes = std::fs::read(copy).map_err(|source| Error::Io {
        path: copy.to_path_buf(),
        source,
    })?;
    Ok(digest(&bytes) == name)
}

/// Distinguishes the partial files of one process's copies.
static PARTIALS: AtomicU64 = AtomicU64::new(0);

/// The prefix of a copy still being written.
const PARTIAL: &str = ".partial-";

/// Writes `snapshot` to a new partial file in `dir` (see the module docs): backup API,
/// fsynced, read back; returns its path. A failed copy leaves nothing.
fn write_partial(snapshot: &Connection, dir: &Path, name: &str, ns: &Namespace) -> Result<PathBuf> {
    let n = PARTIALS.fetch_add(1, Ordering::Relaxed);
    let partial = dir.join(format!("{PARTIAL}{name}-{}-{n}", std::process::id()));
    let written = backup_into(snapshot, &partial).and_then(|()| {
        ns.sync_file(&partial)?;
        match holds(&partial, name)? {
            true => Ok(()),
            false => Err(Error::Io {
                path: partial.clone(),
                source: std::io::Error::other("the copy does not read back as written"),
            }),
        }
    });
    written
        .inspect_err(|_| discard(&partial, ns))
        .map(|()| partial)
}

/// Renames `partial` to `dest` and fsyncs the folder. With `replacing`, the file at `dest`
/// is no whole copy; the sidecars SQLite may have left beside it go first, so that no
/// stale journal or WAL is ever applied to the new copy.
fn install(partial: &Path, dir: &Path, dest: &Path, replacing: bool, ns: &Namespace) -> Result<()> {
    if replacing {
        for sidecar in ["-journal", "-wal", "-shm"] {
            let mut side = dest.as_os_str().to_owned();
            side.push(sidecar);
            remove_if_file(Path::new(&side), ns)?;
        }
    }
    ns.rename(partial, dest).map_err(|source| Error::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    ns.sync_folder(dir)
}

/// Copies `snapshot` into a new file at `partial` with the backup API, without a journal
/// (a partial file is thrown away whole, never rolled back) and without SQLite's own sync
/// (the caller fsyncs the whole file once).
fn backup_into(snapshot: &Connection, partial: &Path) -> Result<()> {
    let mut out = Connection::open(partial).at(partial)?;
    out.pragma_update(None, "journal_mode", "OFF").at(partial)?;
    out.pragma_update(None, "synchronous", "OFF").at(partial)?;
    crate::copy::step_whole(snapshot, partial, &mut out, partial)?;
    out.close().map_err(|(_, e)| Error::sqlite(partial, e))
}

/// Removes the partial files of copies whose writer is gone (killed midway). A partial file
/// of a live process may still be written, and is left alone.
fn sweep_partials(dir: &Path, ns: &Namespace) -> Result<()> {
    // `.partial-<name>-<pid>-<n>`: the writer is the second field after the prefix.
    crate::copy::sweep(dir, PARTIAL, 1, ns)
}

/// Removes `file` if it is a regular file (not a link, not a folder); nothing if absent.
fn remove_if_file(file: &Path, ns: &Namespace) -> Result<()> {
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.is_file() => remove(file, ns),
        _ => Ok(()),
    }
}

/// Removes a quarantine copy or partial file.
fn remove(file: &Path, ns: &Namespace) -> Result<()> {
    ns.remove(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_store_writes_are_copies() {
        let hex = "0123456789abcdef01234567";
        assert!(copy_name(OsStr::new(&format!("{hex}.db"))));
        for other in [
            "kanban.db".to_string(),
            format!("{}.db", hex.to_uppercase()),
            format!("{hex}0.db"),
            format!("{hex}.db-wal"),
            format!("{PARTIAL}{hex}-12-0"),
            hex.to_string(),
        ] {
            assert!(!copy_name(OsStr::new(&other)), "{other}");
        }
    }

    #[test]
    fn the_name_leaves_out_what_a_backup_rewrites() {
        let bytes: Vec<u8> = (0..200u8).collect();
        let mut rewritten = bytes.clone();
        for r in REWRITTEN {
            rewritten[r].fill(0xff);
        }
        assert_eq!(digest(&bytes), digest(&rewritten));
        let mut other = bytes.clone();
        other[100] ^= 1;
        assert_ne!(digest(&bytes), digest(&other));
        assert_eq!(digest(&bytes).len(), 24);
        // A file cut inside the header still has a name (it is simply a different one).
        assert_ne!(digest(&bytes[..30]), digest(&bytes));
    }
}
