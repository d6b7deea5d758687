//! R8: quarantine copies, made with SQLite's backup API, named by content, capped.
//!
//! The upstream health guard copied `db`, `-wal` and `-shm` with plain file I/O on every
//! failed check (dropping the process's locks each time) and kept every copy: 300+ files in
//! half an hour. Here a copy is a consistent snapshot taken through SQLite (the backup API
//! reads pages through the pager, under SQLite's own locks), the same damage is kept once
//! (the name is a hash of the copy's bytes), and no more than the cap are ever kept: the
//! first copies are the ones that show how the damage began.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::backup::Backup;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::reads::SqlResultExt;

/// What [`keep`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quarantined {
    /// A new copy was written here.
    Saved(PathBuf),
    /// An identical copy was already kept here.
    AlreadyKept(PathBuf),
    /// The cap was reached; nothing was written.
    CapReached {
        /// How many copies are kept.
        kept: usize,
    },
}

/// The quarantine folder of the board at `path`, beside its canonical path (see
/// [`crate::place`]).
pub fn folder(path: &Path) -> PathBuf {
    crate::place::quarantine(&crate::place::canonical_or_given(path))
}

/// The copies kept for the board at `path`, oldest name first.
pub fn list(path: &Path) -> Vec<PathBuf> {
    let mut copies: Vec<PathBuf> = std::fs::read_dir(folder(path))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    copies.sort();
    copies
}

/// Copies the database behind `conn` into the quarantine folder, unless an identical copy is
/// there already or `cap` copies are.
pub(crate) fn keep(conn: &Connection, path: &Path, cap: usize) -> Result<Quarantined> {
    let mut snapshot = Connection::open_in_memory().at(path)?;
    Backup::new(conn, &mut snapshot)
        .and_then(|b| b.run_to_completion(256, std::time::Duration::ZERO, None))
        .at(path)?;
    let digest = Sha256::digest(&*snapshot.serialize("main").at(path)?);
    let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let dir = folder(path);
    let dest = dir.join(format!("{name}.db"));
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(Quarantined::AlreadyKept(dest));
    }
    let kept = list(path).len();
    if kept >= cap {
        return Ok(Quarantined::CapReached { kept });
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    snapshot
        .backup(
            rusqlite::MAIN_DB,
            &dest,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .at(path)?;
    Ok(Quarantined::Saved(dest))
}

/// Removes quarantine copies of the board at `path`, keeping the `keep` oldest (the ones
/// that show how the damage began); returns the removed paths. Copies are standalone files
/// that no session opens, never a live board.
pub fn prune(path: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let mut copies: Vec<(std::time::SystemTime, PathBuf)> = list(path)
        .into_iter()
        .map(|p| {
            let at = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (at, p)
        })
        .collect();
    copies.sort();
    let mut removed = Vec::new();
    for (_, copy) in copies.into_iter().skip(keep) {
        #[allow(clippy::disallowed_methods)] // a quarantine copy, never a live board
        std::fs::remove_file(&copy).map_err(|source| Error::Io {
            path: copy.clone(),
            source,
        })?;
        removed.push(copy);
    }
    Ok(removed)
}
