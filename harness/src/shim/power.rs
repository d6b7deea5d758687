//! The shim's side of the page-cache model: every change SQLite makes to the board's files,
//! recorded before it reaches the kernel, and the power cut itself.
//!
//! A worker of a seed that models power loss opens the board folder's journal
//! ([`crate::pagecache::Recorder`]) at start-up; from then on the VFS calls in here right
//! before each write and truncation of the db, the WAL and the rollback journal (with the
//! bytes they replace, read through the same file), after each successful sync, and before
//! a file is created or deleted. SQLite's own directory syncs are recorded
//! where its unix VFS makes them: after a delete asked to sync its folder, and at the first
//! sync of a WAL or journal opened with `SQLITE_OPEN_CREATE` (`UNIXFILE_DIRSYNC` in
//! `os_unix.c`). Temporary files and the `-shm` (memory-mapped, and deleted at every cut)
//! are not recorded.
//!
//! A change the journal could not record is not made: the operation fails with an I/O
//! error, so the model never misses a write that reached the file.
//!
//! A power cut at an exact operation ([`cut_now`]) leaves a request file for the supervisor
//! and SIGKILLs the worker's process group, which in a seed that models power loss holds
//! every worker (`supervisor::power_cut`): no worker runs again before the cut.

use std::ffi::{CStr, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::ffi::{self, sqlite3_file, sqlite3_io_methods};

use super::FileKind;
use crate::pagecache::{Contents, Recorder, Result};

/// The file the worker that cuts the power leaves for the supervisor (in the board folder).
pub const CUT_REQUEST: &str = "power-cut.request";

/// The page-cache model of this worker process.
struct Model {
    /// The board folder, as given and as the file system resolves it.
    dirs: [PathBuf; 2],
    recorder: Recorder,
}

/// Set once, at the worker's start-up: read on every recorded file operation, so a plain
/// `OnceLock` (no lock, no reference count on the hot path).
static MODEL: OnceLock<Model> = OnceLock::new();

fn model() -> Option<&'static Model> {
    MODEL.get()
}

/// Starts recording the changes to the files of the board folder `dir` in its journal
/// (once per process: a worker models one board).
pub fn install(dir: &Path) -> Result<()> {
    let recorder = Recorder::open(dir)?;
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    MODEL
        .set(Model {
            dirs: [dir.to_path_buf(), resolved],
            recorder,
        })
        .map_err(|_| {
            crate::error::Error::system(
                "installing the page-cache model",
                std::io::Error::other("it is installed already in this process"),
            )
        })
}

/// The store's observer of its own namespace changes and syncs (`std::fs`, which the VFS
/// does not see): each recorded in the journal, when this process models power loss. A
/// change that could not be recorded is reported on the worker's log (the store makes it
/// anyway; a cut may then find the model's view of that file out of date).
pub fn store_file_change(change: &kanban_store::FileChange) {
    let Some(model) = model() else { return };
    let path = match change {
        kanban_store::FileChange::Renaming { from, .. }
        | kanban_store::FileChange::Linking { from, .. } => from,
        kanban_store::FileChange::Removing(p)
        | kanban_store::FileChange::FileSynced(p)
        | kanban_store::FileChange::DirSynced(p) => p,
    };
    let dir = (model.dirs.iter())
        .find(|d| path.starts_with(d))
        .unwrap_or(&model.dirs[0]);
    if let Err(e) = super::store_files::record(&model.recorder, dir, change) {
        eprintln!("page-cache model: recording {change:?}: {e}");
    }
}

/// The name, relative to the board folder, under which a file SQLite opens as `kind` is
/// recorded; `None` for what is not recorded (no model, a temporary file, a file outside the
/// folder).
///
/// # Safety
/// `name` is null or a C string SQLite passed to `xOpen` or `xDelete`.
pub(super) unsafe fn recorded_name(name: *const c_char, kind: FileKind) -> Option<String> {
    if name.is_null() || !matches!(kind, FileKind::Db | FileKind::Wal | FileKind::Journal) {
        return None;
    }
    let model = model()?;
    // SAFETY: by the caller's contract.
    let path = Path::new(unsafe { CStr::from_ptr(name) }.to_str().ok()?);
    (model.dirs.iter())
        .find_map(|d| path.strip_prefix(d).ok())
        .map(|rel| rel.to_string_lossy().into_owned())
}

/// Whether a file exists at `name` (before an open that may create it).
///
/// # Safety
/// `name` is a C string.
pub(super) unsafe fn exists(name: *const c_char) -> bool {
    // SAFETY: by the caller's contract.
    unsafe { libc::access(name, libc::F_OK) == 0 }
}

/// A file of the wrapped VFS, read the way the page cache holds it.
pub(super) struct RealFile<'a> {
    pub file: *mut sqlite3_file,
    pub methods: &'a sqlite3_io_methods,
}

impl Contents for RealFile<'_> {
    fn size(&self) -> std::io::Result<u64> {
        let mut size: ffi::sqlite3_int64 = 0;
        let rc = match self.methods.xFileSize {
            // SAFETY: the wrapped file's own method, on its own file.
            Some(f) => unsafe { f(self.file, &mut size) },
            None => ffi::SQLITE_IOERR,
        };
        io_result(rc)?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let (Ok(len), Ok(at)) = (c_int::try_from(buf.len()), i64::try_from(offset)) else {
            return Err(std::io::Error::other("a read beyond SQLite's range"));
        };
        let rc = match self.methods.xRead {
            // SAFETY: the wrapped file's own method; `buf` holds `len` bytes.
            Some(f) => unsafe { f(self.file, buf.as_mut_ptr().cast(), len, at) },
            None => ffi::SQLITE_IOERR,
        };
        io_result(rc)
    }
}

fn io_result(rc: c_int) -> std::io::Result<()> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("SQLite I/O error {rc}")))
    }
}

/// Runs `record` on the model, if this process has one; a failure to record is reported on
/// the worker's log and turned into `error` (the change must not be made).
fn recording(error: c_int, record: impl FnOnce(&Recorder) -> Result<()>) -> c_int {
    let Some(model) = model() else {
        return ffi::SQLITE_OK;
    };
    match record(&model.recorder) {
        Ok(()) => ffi::SQLITE_OK,
        Err(e) => {
            eprintln!("page-cache model: {e}");
            error
        }
    }
}

/// Before a write of `len` bytes at `offset` to `name`.
pub(super) fn before_write(name: &str, real: &RealFile, offset: i64, len: c_int) -> c_int {
    let (offset, len) = (offset.max(0) as u64, len.max(0) as u64);
    recording(ffi::SQLITE_IOERR_WRITE, |r| {
        r.write(name, real, offset, len)
    })
}

/// Before `name` is truncated to `size`.
pub(super) fn before_truncate(name: &str, real: &RealFile, size: i64) -> c_int {
    recording(ffi::SQLITE_IOERR_TRUNCATE, |r| {
        r.truncate(name, real, size.max(0) as u64)
    })
}

/// After a successful sync of `name` with `flags`; with `dir_too`, SQLite's unix VFS synced
/// the file's folder as well.
pub(super) fn after_sync(name: &str, flags: c_int, dir_too: bool) -> c_int {
    recording(ffi::SQLITE_IOERR_FSYNC, |r| {
        r.sync(name, flags as u32)?;
        if dir_too {
            r.dir_sync(&folder_of(name))?;
        }
        Ok(())
    })
}

/// Before `name`, which does not exist, is created.
pub(super) fn before_create(name: &str) -> c_int {
    recording(ffi::SQLITE_CANTOPEN, |r| r.create(name))
}

/// Before `name` is deleted.
pub(super) fn before_delete(name: &str) -> c_int {
    recording(ffi::SQLITE_IOERR_DELETE, |r| r.delete(name))
}

/// After a delete of `name` that synced its folder.
pub(super) fn after_delete_synced(name: &str) -> c_int {
    recording(ffi::SQLITE_IOERR_DIR_FSYNC, |r| {
        r.dir_sync(&folder_of(name))
    })
}

/// The folder of a recorded name, as the journal names folders (`""`: the board folder).
fn folder_of(name: &str) -> String {
    Path::new(name)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Cuts the power now: leaves the request for the supervisor, then SIGKILLs this process's
/// group (every worker of the seed). Without a model (never, in a seed planned with a cut)
/// it kills only this process.
pub(super) fn cut_now() -> ! {
    if let Some(model) = model() {
        let _ = std::fs::write(
            model.dirs[0].join(CUT_REQUEST),
            format!("{}\n", std::process::id()),
        );
        // SAFETY: plain kill(2) of this process's group.
        unsafe {
            libc::kill(0, libc::SIGKILL);
        }
    }
    // SAFETY: plain kill(2) of this process.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(crate::exit::EXIT_PANIC)
    }
}
