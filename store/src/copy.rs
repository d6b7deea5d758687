//! Online copies of a live board that finish under a steady write load, and never leave a
//! partial file at their destination.
//!
//! **One step.** SQLite's backup API copies a given number of pages per step, and a step
//! that finds the source changed by another connection since the last one starts over. The
//! old copies stepped 100 or 256 pages at a time: a 50 MB board with another process
//! committing a row every millisecond never finished. Here every online copy of the live
//! board is one `step(-1)`: all pages under one read transaction. In WAL mode a reader
//! holds its snapshot while writers go on appending to the WAL, so the copy finishes
//! whatever the write load (no restart bound is needed: nothing can make it start over),
//! and holds the board as it was when the step began. The price: while it runs, a
//! checkpoint cannot pass its snapshot (the gateway's PASSIVE checkpoint reports `busy` and
//! the WAL grows by what is written meanwhile), for about as long as reading the board once
//! takes. A step that cannot have its read lock at all waits on the source connection's
//! busy handler (its busy timeout), then gives [`Error::Busy`].
//!
//! **A destination file is whole or absent.** [`to_new_file`] writes the copy under a
//! temporary name beside DEST, `.<DEST's name>.partial-<pid>-<n>`, with no journal (no
//! `-journal` is ever made: a partial file is thrown away whole, never rolled back); checks
//! it (`quick_check`, and its page count is the source's); fsyncs it; then gives it DEST's
//! name with `link(2)`, which refuses if DEST appeared meanwhile ([`Error::AlreadyExists`],
//! nothing replaced), removes the temporary name and fsyncs the folder. A kill at any point
//! leaves no DEST or a whole one, plus at worst the temporary file, which the next copy to
//! the same DEST removes once the process that wrote it is gone.
//!
//! The temporary file and DEST are new files that no session of the board opens: this
//! module links and removes them with `std::fs` (each use allowed where it happens). The
//! live board is only ever read through the backup API.
//!
//! **The store's own namespace changes** (here and in `quarantine.rs`) all go through
//! [`Namespace`]: it tells the configuration's files observer of each rename, link and
//! remove before it is made and of each sync after it succeeded (the harness's power-cut
//! model sees SQLite's file work through its VFS, but not these), and it fsyncs folders
//! unless the `no-dir-fsync` hazard's hook says not to.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::config::{FileChange, FilesObserver, StoreConfig};
use crate::error::{Error, Result, SqlResultExt};

/// The store's own renames, links, removes and syncs of files that are not a live board
/// (see the module docs), told to a files observer and with the folder syncs the hooks
/// want.
#[derive(Default)]
pub(crate) struct Namespace {
    /// Told of every change (the configuration's files observer).
    observer: Option<FilesObserver>,
    /// Folder syncs are skipped (the `no-dir-fsync` hazard).
    skip_dir_syncs: bool,
}

impl Namespace {
    /// The namespace changes of a board opened with `cfg`.
    pub(crate) fn of(cfg: &StoreConfig) -> Namespace {
        Namespace {
            observer: cfg.files_observer.clone(),
            skip_dir_syncs: !cfg.hooks().syncs_folders(),
        }
    }

    fn tell(&self, change: impl FnOnce() -> FileChange) {
        if let Some(observe) = &self.observer {
            observe(&change());
        }
    }

    /// Renames `from` onto `to`.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.tell(|| FileChange::Renaming {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        #[allow(clippy::disallowed_methods)] // a copy's files, never a live board
        std::fs::rename(from, to)
    }

    /// Gives the file `from` the new name `to` (refused if `to` exists).
    pub(crate) fn link(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.tell(|| FileChange::Linking {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        #[allow(clippy::disallowed_methods)] // a copy's files, never a live board
        std::fs::hard_link(from, to)
    }

    /// Removes `file`.
    pub(crate) fn remove(&self, file: &Path) -> std::io::Result<()> {
        self.tell(|| FileChange::Removing(file.to_path_buf()));
        #[allow(clippy::disallowed_methods)] // a copy's files, never a live board
        std::fs::remove_file(file)
    }

    /// fsyncs `file` (a copy that no session opens).
    pub(crate) fn sync_file(&self, file: &Path) -> Result<()> {
        fsync(file)?;
        self.tell(|| FileChange::FileSynced(file.to_path_buf()));
        Ok(())
    }

    /// fsyncs the folder `dir`, so its entries are durable (nothing with `no-dir-fsync`).
    pub(crate) fn sync_folder(&self, dir: &Path) -> Result<()> {
        if self.skip_dir_syncs {
            return Ok(());
        }
        fsync(dir)?;
        self.tell(|| FileChange::DirSynced(dir.to_path_buf()));
        Ok(())
    }
}

/// Copies the whole database behind `conn` (the board at `path`) into `out` (bound for
/// `dest`) in one backup step (see the module docs); returns the source's page count.
pub(crate) fn step_whole(
    conn: &Connection,
    path: &Path,
    out: &mut Connection,
    dest: &Path,
) -> Result<i64> {
    let backup = Backup::new(conn, out).at(path)?;
    match backup.step(-1).at(path)? {
        StepResult::Done => Ok(i64::from(backup.progress().pagecount)),
        StepResult::Busy | StepResult::Locked => Err(Error::Busy {
            path: path.to_path_buf(),
            what: "a read snapshot of the board for a copy",
            waited_ms: 0,
        }),
        more => Err(Error::CopyIncomplete {
            path: path.to_path_buf(),
            dest: dest.to_path_buf(),
            detail: format!("one backup step of the whole board returned {more:?}"),
        }),
    }
}

/// Writes a copy of the board behind `conn` (at `path`) to `dest`, a new file (see the
/// module docs). Something at `dest` already, or appearing there meanwhile:
/// [`Error::AlreadyExists`].
pub(crate) fn to_new_file(
    conn: &Connection,
    path: &Path,
    dest: &Path,
    ns: &Namespace,
) -> Result<()> {
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(Error::AlreadyExists {
            path: dest.to_path_buf(),
        });
    }
    let dir = crate::place::folder_of(dest);
    let prefix = partial_prefix(dest);
    sweep(&dir, &prefix, 0, ns)?;
    let n = PARTIALS.fetch_add(1, Ordering::Relaxed);
    let partial = dir.join(format!("{prefix}{}-{n}", std::process::id()));
    let written = write_checked(conn, path, &partial, dest).and_then(|()| {
        ns.link(&partial, dest)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    path: dest.to_path_buf(),
                },
                _ => Error::Io {
                    path: dest.to_path_buf(),
                    source,
                },
            })
    });
    remove_partial(&partial, ns);
    written?;
    ns.sync_folder(&dir)
}

/// Writes the copy into a new file at `partial` and checks it: `quick_check`, the source's
/// page count, fsynced. The file is closed on return.
fn write_checked(conn: &Connection, path: &Path, partial: &Path, dest: &Path) -> Result<()> {
    let mut out = Connection::open(partial).at(partial)?;
    out.pragma_update(None, "journal_mode", "OFF").at(partial)?;
    out.pragma_update(None, "synchronous", "FULL").at(partial)?;
    let pages = step_whole(conn, path, &mut out, dest)?;
    let copied: i64 = out
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(partial)?;
    let check: String = out
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .at(partial)?;
    out.close().map_err(|(_, e)| Error::sqlite(partial, e))?;
    let detail = match (copied == pages, check == "ok") {
        (true, true) => return Ok(()),
        (false, _) => format!("{copied} pages copied of {pages}"),
        (true, false) => format!("quick_check of the copy: {check}"),
    };
    Err(Error::CopyIncomplete {
        path: path.to_path_buf(),
        dest: dest.to_path_buf(),
        detail,
    })
}

/// Distinguishes the temporary files of one process's copies.
static PARTIALS: AtomicU64 = AtomicU64::new(0);

/// The start of the names of copies to `dest` still being written: `.<name>.partial-`.
fn partial_prefix(dest: &Path) -> String {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
    format!(".{}.partial-", name.unwrap_or_default())
}

/// Removes the regular files in `dir` named `<prefix>` and `-`-separated fields, the
/// `field`th (from 0) being the process id of their writer, whose writer is gone (killed
/// midway; SQLite's sidecars of such a file included), then syncs `dir` if any was. A
/// live writer's are left alone.
pub(crate) fn sweep(dir: &Path, prefix: &str, field: usize, ns: &Namespace) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut swept = false;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let writer = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').nth(field))
            .and_then(|pid| pid.parse::<i32>().ok());
        if writer.is_some_and(|pid| !alive(pid)) && entry.metadata().is_ok_and(|m| m.is_file()) {
            remove_partial(&entry.path(), ns);
            swept = true;
        }
    }
    match swept {
        true => ns.sync_folder(dir),
        false => Ok(()),
    }
}

/// Removes a temporary copy file, if it can (else a later sweep will).
pub(crate) fn remove_partial(partial: &Path, ns: &Namespace) {
    let _ = ns.remove(partial);
}

/// True unless no process `pid` exists (a process of another user exists too).
fn alive(pid: i32) -> bool {
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, None) != Err(nix::errno::Errno::ESRCH)
}

/// fsyncs a folder or a file that no session opens (a copy).
fn fsync(at: &Path) -> Result<()> {
    #[allow(clippy::disallowed_methods)] // a folder or a copy: no lock of the board on it
    std::fs::File::open(at)
        .and_then(|f| f.sync_all())
        .map_err(|source| Error::Io {
            path: at.to_path_buf(),
            source,
        })
}
