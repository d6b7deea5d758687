//! The board's place on disk: one canonical path, and every sibling derived from it.
//!
//! SQLite follows a symlinked database name to its target and names `-wal`/`-shm` after
//! the target. The store's own siblings (`<db>.lock`, `<db>.sock`, `<db>.quarantine`) and
//! the per-process open-here key must do the same, or two names of one board get two lock
//! files: a repair run through a symlink would take its "exclusive" lock while sessions
//! opened through the target go on writing. So every entry point (`Board::open`/`create`/
//! `inspect`, `repair`, the `kanban-db` commands through them) resolves the path once with
//! `board`, and everything below it works on that one canonical path: the board's folder
//! canonicalized (the file itself may not exist yet, when creating), and the file followed
//! if it is a symlink (to its final target, which may not exist yet either).
//!
//! [`crate::Board::path`] and every error message after the resolution name the canonical
//! path, so that processes reaching one board through different names log one name.
//! Resolution errors name the path the caller gave (there is no canonical one).
//!
//! With the harness's `Hazard::RawPathSiblings` switch, `board` returns the path as given:
//! the siblings come from the raw string, as before this module existed.
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use std::io;
use std::path::{Path, PathBuf};

use crate::config::StoreConfig;
use crate::error::{Error, Result};

/// The most symlinks followed from the board's name (Linux's own limit for a path).
const MAX_LINKS: usize = 40;

/// The path the store uses for the board the caller named `given` (see the module docs).
pub(crate) fn board(given: &Path, cfg: &StoreConfig) -> Result<PathBuf> {
    if cfg.hooks().raw_siblings() {
        return Ok(given.to_path_buf());
    }
    canonical(given)
}

/// `given` with its folder canonicalized and, if it names a symlink, followed to the final
/// target (the target itself need not exist). A path with no file name (`/`, `..`) is
/// canonicalized whole; it is no board, and the open refuses it by `stat`.
pub fn canonical(given: &Path) -> Result<PathBuf> {
    let mut path = given.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Some(name) = path.file_name().map(ToOwned::to_owned) else {
            return Ok(std::fs::canonicalize(&path).unwrap_or(path));
        };
        let folder = std::fs::canonicalize(folder_of(&path)).map_err(|source| {
            match source.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => Error::MissingFolder {
                    path: given.to_path_buf(),
                },
                _ => Error::Io {
                    path: given.to_path_buf(),
                    source,
                },
            }
        })?;
        let here = folder.join(name);
        match std::fs::read_link(&here) {
            // A relative target is relative to the link's folder; `join` keeps an absolute one.
            Ok(target) => path = folder.join(target),
            // Not a symlink, or nothing there yet.
            Err(_) => return Ok(here),
        }
    }
    Err(Error::Io {
        path: given.to_path_buf(),
        source: io::Error::from_raw_os_error(libc::ELOOP),
    })
}

/// Like [`canonical`], but `given` as is when it cannot be resolved (its folder is missing,
/// so no sibling of it exists either): for lookups that report nothing on their own.
pub(crate) fn canonical_or_given(given: &Path) -> PathBuf {
    canonical(given).unwrap_or_else(|_| given.to_path_buf())
}

/// The lock file of the board at (canonical) `db`.
pub fn lock(db: &Path) -> PathBuf {
    sibling(db, ".lock")
}

/// The single-writer socket of the board at (canonical) `db`.
pub fn sock(db: &Path) -> PathBuf {
    sibling(db, ".sock")
}

/// The quarantine folder of the board at (canonical) `db`.
pub fn quarantine(db: &Path) -> PathBuf {
    sibling(db, ".quarantine")
}

/// `db` with `suffix` appended to its name.
pub(crate) fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The `-wal` file of the board at `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    crate::place::sibling(path, "-wal")
}

/// The `-shm` file of the board at `path`.
pub fn shm_path(path: &Path) -> PathBuf {
    crate::place::sibling(path, "-shm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_in_a_symlinked_folder_resolves_beside_the_real_folder() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("via")).unwrap();
        let got = canonical(&dir.path().join("via/kanban.db")).unwrap();
        let want = std::fs::canonicalize(&real).unwrap().join("kanban.db");
        assert_eq!(got, want);
        assert_eq!(lock(&got), want.with_file_name("kanban.db.lock"));
    }

    #[test]
    fn a_chain_of_links_is_followed_to_a_target_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::os::unix::fs::symlink("b.db", base.join("a.db")).unwrap();
        std::os::unix::fs::symlink(base.join("c.db"), base.join("b.db")).unwrap();
        assert_eq!(canonical(&base.join("a.db")).unwrap(), base.join("c.db"));
    }

    #[test]
    fn a_link_loop_and_a_missing_folder_are_typed_errors_naming_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        let looped = dir.path().join("loop.db");
        std::os::unix::fs::symlink("loop.db", &looped).unwrap();
        assert!(matches!(canonical(&looped), Err(Error::Io { path, .. }) if path == looped));
        let missing = dir.path().join("nope/kanban.db");
        assert!(
            matches!(canonical(&missing), Err(Error::MissingFolder { path }) if path == missing)
        );
    }
}
