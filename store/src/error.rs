//! The store's one error type.
//!
//! Every variant names the board it is about, because an operator reading a log line
//! from one of several processes must know which file to look at. Variants are typed
//! by *what the caller should do*: a damaged board (`Corrupt`, `Truncated`, ...) is
//! left untouched for an explicit repair; a contended one (`Busy`) is retried later;
//! a misconfigured one (`ReadOnlyLocation`, `MissingFolder`) needs a human.
//!
//! Layer: ground (the layer order is in `store/ARCHITECTURE.md`).

use std::path::{Path, PathBuf};

use crate::config::Role;

mod kind;

pub use kind::{ErrorKind, UnknownErrorKind};

/// Result alias used throughout the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when opening or using a board.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The linked SQLite has the WAL-reset bug (3.7.0 up to 3.51.2, bar the backports).
    #[error(
        "SQLite {version} has the WAL-reset corruption bug; use 3.51.3 or newer (or 3.50.7+, 3.44.6+)"
    )]
    VulnerableSqlite {
        /// The version found, as `major.minor.patch`.
        version: String,
    },
    /// The folder that should hold the board does not exist.
    #[error("{}: the folder does not exist", path.display())]
    MissingFolder {
        /// The board path whose parent is missing.
        path: PathBuf,
    },
    /// The folder is not writable, so SQLite could not create `-wal`/`-shm` nor we our lock.
    #[error("{}: the folder is read-only (WAL needs to create -wal, -shm and .lock beside the board)", path.display())]
    ReadOnlyLocation {
        /// The board path.
        path: PathBuf,
    },
    /// No board at this path, and the caller did not ask to create one.
    #[error("{}: no board here", path.display())]
    NotFound {
        /// The board path.
        path: PathBuf,
    },
    /// A new board was asked for, but something already exists at the path.
    #[error("{}: already exists; refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The board path.
        path: PathBuf,
    },
    /// The file exists but is empty: not a board, and we will not silently make it one.
    #[error("{}: the file is empty (0 bytes), not a board", path.display())]
    EmptyFile {
        /// The board path.
        path: PathBuf,
    },
    /// The file does not start with the SQLite header.
    #[error("{}: not an SQLite database", path.display())]
    NotADatabase {
        /// The board path.
        path: PathBuf,
    },
    /// The file is an SQLite database cut short: its header promises more pages than it has.
    #[error("{}: truncated database ({size} bytes, header says {expected})", path.display())]
    Truncated {
        /// The board path.
        path: PathBuf,
        /// The file's size in bytes.
        size: u64,
        /// The size its header implies, in bytes.
        expected: u64,
    },
    /// SQLite or a check found structural damage.
    #[error("{}: database is corrupt: {detail}", path.display())]
    Corrupt {
        /// The board path.
        path: PathBuf,
        /// What SQLite or the check reported (e.g. the damaged index).
        detail: String,
    },
    /// A valid SQLite database, but not a kanban board.
    #[error("{}: not a kanban board (application_id {application_id:#x})", path.display())]
    ForeignSchema {
        /// The board path.
        path: PathBuf,
        /// The `PRAGMA application_id` found.
        application_id: i32,
    },
    /// A board written by a newer build of this store.
    #[error("{}: schema version {found} is newer than this build supports ({supported})", path.display())]
    SchemaTooNew {
        /// The board path.
        path: PathBuf,
        /// The `PRAGMA user_version` found.
        found: i32,
        /// The newest schema version this build knows.
        supported: i32,
    },
    /// A lock (ours or SQLite's) could not be had within the configured time.
    #[error("{}: busy: {what} not available after {waited_ms} ms", path.display())]
    Busy {
        /// The board path.
        path: PathBuf,
        /// Which lock was wanted.
        what: &'static str,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A maintenance (repair) could not have the board to itself in time: another
    /// maintenance holds it, or sessions did not let go.
    #[error("{}: busy: another maintenance or open sessions hold the board ({}); waited {waited_ms} ms", path.display(), describe_holder(*holder))]
    MaintenanceBusy {
        /// The board path.
        path: PathBuf,
        /// The last maintenance holder noted in the lock file: process id, since (ms since
        /// the epoch).
        holder: Option<(u32, i64)>,
        /// How long we waited.
        waited_ms: u64,
    },
    /// Single-writer mode: the gateway that owns the writes is not there, or did not answer
    /// within the client's deadline: the write may or may not have happened. A retry with
    /// the same request id ([`crate::Board::submit`]) is always safe: the gateway applies
    /// an id at most once.
    #[error("{}: unavailable: {why}", path.display())]
    Unavailable {
        /// The board path.
        path: PathBuf,
        /// What went wrong with the gateway's socket.
        why: String,
    },
    /// Single-writer mode: the gateway ran the write and it failed there.
    #[error("{}: the gateway refused the write ({kind}): {message}", path.display())]
    Remote {
        /// The board path.
        path: PathBuf,
        /// The kind of the gateway's error (what [`Error::kind`] reports for this one).
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// Another process already runs the gateway (the dispatcher singleton) for this board.
    #[error("{}: another gateway is already running on this board", path.display())]
    GatewayRunning {
        /// The board path.
        path: PathBuf,
    },
    /// The operation is reserved for another role (e.g. checkpoints for the gateway).
    #[error("{}: {operation} is not allowed for the {role} role", path.display())]
    WrongRole {
        /// The board path.
        path: PathBuf,
        /// The role of this session.
        role: Role,
        /// What was attempted.
        operation: &'static str,
    },
    /// A session opened in one process was used in a forked child.
    #[error("{}: session opened by process {opened_by} used in process {used_by} (across fork)", path.display())]
    UsedAcrossFork {
        /// The board path.
        path: PathBuf,
        /// The process that opened the session.
        opened_by: u32,
        /// The process that used it.
        used_by: u32,
    },
    /// The disk (or quota) is full; the transaction was rolled back.
    #[error("{}: disk full; the transaction was rolled back", path.display())]
    DiskFull {
        /// The board path.
        path: PathBuf,
    },
    /// SQLite reported an I/O error (read, write, sync, ...); the transaction was rolled back.
    #[error("{}: I/O error ({detail}); the transaction was rolled back", path.display())]
    IoFailure {
        /// The board path.
        path: PathBuf,
        /// SQLite's description of the failure.
        detail: String,
    },
    /// No task with this id.
    #[error("{}: no task {id}", path.display())]
    NoSuchTask {
        /// The board path.
        path: PathBuf,
        /// The task id asked for.
        id: i64,
    },
    /// No run with this id, or it has already ended.
    #[error("{}: run {id} does not exist or is not running", path.display())]
    RunNotRunning {
        /// The board path.
        path: PathBuf,
        /// The run id asked for.
        id: i64,
    },
    /// The task cannot move to that status from where it is.
    #[error("{}: task {id} cannot move from {from} to {to}", path.display())]
    InvalidMove {
        /// The board path.
        path: PathBuf,
        /// The task id.
        id: i64,
        /// Its current status.
        from: String,
        /// The status asked for.
        to: String,
    },
    // -- quarantine: the folder and the cap
    /// The quarantine folder is a symbolic link or not a directory: listing or pruning it
    /// could reach the live board, so it is not used.
    #[error("{}: the quarantine folder {} is {why}; refusing to use it", path.display(), folder.display())]
    UnsafeQuarantine {
        /// The board path.
        path: PathBuf,
        /// The quarantine folder.
        folder: PathBuf,
        /// What it is instead of a plain directory.
        why: &'static str,
    },
    /// A rebuild would replace the board, and the quarantine cap leaves no room for a copy
    /// of it (a cap of 0): the repair is refused, the board left as it was.
    #[error("{}: the quarantine cap is {cap}: no room for a copy of the board a rebuild would replace; refusing to rebuild", path.display())]
    NoQuarantineRoom {
        /// The board path.
        path: PathBuf,
        /// The configured cap.
        cap: usize,
    },
    /// An I/O error on a file the store owns (the lock file, a quarantine folder).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error("{}: sqlite: {source}", path.display())]
    Sqlite {
        /// The board path.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    // One board, one identity: its names, its lock file, its file system.
    /// The board file has more than one name (hard links): SQLite names `-wal`/`-shm` after
    /// the name it opens, so each name would get a WAL of its own for the one file.
    #[error("{}: the board file has {links} names (hard links); each would get its own -wal and -shm, a split brain: remove the other links (a symlink is fine)", path.display())]
    HardLinked {
        /// The board path.
        path: PathBuf,
        /// How many names the file has (`st_nlink`).
        links: u64,
    },
    /// `<db>.lock` is not a file the store may use as its lock: a symlink, not a regular
    /// file, the board itself, a file with several names, or one owned by another user.
    #[error("{}: unsafe lock file {why}", path.display())]
    UnsafeLockFile {
        /// The board path.
        path: PathBuf,
        /// The lock file, what is wrong with it and what to do.
        why: String,
    },
    /// The board's folder is on a network or user-space file system, where WAL's shared
    /// memory and the store's OFD locks cannot be trusted across hosts.
    #[error("{}: the folder is on {fs}, a network or user-space file system: WAL's shared memory and OFD locks do not work across hosts; move the board to a local disk (or set StoreConfig::allow_network_fs if every process using it runs on one host)", path.display())]
    UnsupportedFileSystem {
        /// The board path.
        path: PathBuf,
        /// The file system (name and magic number).
        fs: String,
    },
    /// The file system does not do what the store needs of it (OFD locks that hold, a
    /// switch to WAL): the environment, not damage to the board.
    #[error("{}: the file system does not do what the store needs: {detail}", path.display())]
    FileSystemFailure {
        /// The board path.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The linked SQLite's version cannot be read, so it cannot be checked for the
    /// WAL-reset bug: refused, as a vulnerable one would be.
    #[error(
        "SQLite reports version {version}, which cannot be read; refusing to run a board with it (it may have the WAL-reset bug)"
    )]
    UnknownSqliteVersion {
        /// The number and text SQLite reported.
        version: String,
    },
    // -- the single-writer protocol: request ids, frames, the socket's owner and peers
    /// A request id already recorded for another write: ids are the caller's promise that
    /// two requests are one, so a second write under one id is refused, not applied.
    #[error("{}: request {id} was already used for another write; refusing it", path.display())]
    RequestIdReused {
        /// The board path.
        path: PathBuf,
        /// The request id, as 32 hex digits.
        id: String,
    },
    /// A single-writer request (or answer) longer than the protocol allows: refused whole,
    /// the connection closed.
    #[error("{}: a frame of {size} bytes or more is over the limit of {max}", path.display())]
    FrameTooLarge {
        /// The board path.
        path: PathBuf,
        /// Its size in bytes (at least this much was seen).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A single-writer request the gateway could not read (not the protocol's JSON).
    #[error("{}: bad request on the gateway's socket: {detail}", path.display())]
    BadRequest {
        /// The board path.
        path: PathBuf,
        /// What the gateway could not read.
        detail: String,
    },
    /// Only the session holding the gateway lock may listen on the board's socket (a
    /// refused second gateway must not take it over).
    #[error("{}: this session does not hold the gateway lock, so it may not listen on the board's socket", path.display())]
    NotGatewayHolder {
        /// The board path.
        path: PathBuf,
    },
    /// The process at the other end of the board's socket is not trusted: another user,
    /// not in the configured group.
    #[error("{}: refusing the peer on the board's socket (process {pid}, uid {uid}, gid {gid}): {why}", path.display())]
    PeerRefused {
        /// The board path.
        path: PathBuf,
        /// The peer's process id (`SO_PEERCRED`).
        pid: i32,
        /// Its user id.
        uid: u32,
        /// Its group id.
        gid: u32,
        /// Who would have been trusted.
        why: String,
    },
    // Liveness: online copies that finish (issue 14).
    /// An online copy did not check out (its page count is not the board's, or its
    /// `quick_check` failed): it was removed and nothing was written at its destination.
    #[error("{}: the copy to {} is not whole, so it was removed: {detail}", path.display(), dest.display())]
    CopyIncomplete {
        /// The board path.
        path: PathBuf,
        /// Where the copy was to go.
        dest: PathBuf,
        /// What did not check out.
        detail: String,
    },
}

impl Error {
    /// Wraps a SQLite error from an operation on `path`, giving the common failures their own
    /// variants (busy, disk full, corrupt, not a database).
    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode as C;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => Error::Busy {
                path,
                what: "the SQLite write lock",
                waited_ms: 0,
            },
            Some(C::DiskFull) => Error::DiskFull { path },
            Some(C::SystemIoFailure) => Error::IoFailure {
                path,
                detail: source.to_string(),
            },
            Some(C::DatabaseCorrupt) => Error::Corrupt {
                path,
                detail: source.to_string(),
            },
            Some(C::NotADatabase) => Error::NotADatabase { path },
            _ => Error::Sqlite { path, source },
        }
    }

    /// True when the path holds nothing this store may use as a board: missing, not a
    /// database, truncated, another application's, too new, several names. (Not contention,
    /// usage or environment: there the path may well be a board that others are using.)
    ///
    /// Not [`Error::Corrupt`]: a corrupt board is still a board, which other processes may
    /// hold sessions on through its lock file (damage that one connection trips over and
    /// another does not see, or upstream's per-process health check in the harness); removing
    /// that lock file would give the next opener a second one.
    pub(crate) fn is_no_board(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. }
                | Error::EmptyFile { .. }
                | Error::NotADatabase { .. }
                | Error::Truncated { .. }
                | Error::ForeignSchema { .. }
                | Error::SchemaTooNew { .. }
                | Error::HardLinked { .. }
        )
    }

    /// The file the error is about (the board, or the store's file beside it for
    /// [`Error::Io`]); `None` for the two errors about the linked SQLite itself.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::VulnerableSqlite { .. } | Error::UnknownSqliteVersion { .. } => None,
            Error::MissingFolder { path }
            | Error::ReadOnlyLocation { path }
            | Error::NotFound { path }
            | Error::AlreadyExists { path }
            | Error::EmptyFile { path }
            | Error::NotADatabase { path }
            | Error::Truncated { path, .. }
            | Error::Corrupt { path, .. }
            | Error::ForeignSchema { path, .. }
            | Error::SchemaTooNew { path, .. }
            | Error::Busy { path, .. }
            | Error::MaintenanceBusy { path, .. }
            | Error::Unavailable { path, .. }
            | Error::Remote { path, .. }
            | Error::GatewayRunning { path }
            | Error::WrongRole { path, .. }
            | Error::UsedAcrossFork { path, .. }
            | Error::DiskFull { path }
            | Error::IoFailure { path, .. }
            | Error::NoSuchTask { path, .. }
            | Error::RunNotRunning { path, .. }
            | Error::InvalidMove { path, .. }
            | Error::UnsafeQuarantine { path, .. }
            | Error::NoQuarantineRoom { path, .. }
            | Error::Io { path, .. }
            | Error::Sqlite { path, .. }
            | Error::HardLinked { path, .. }
            | Error::UnsafeLockFile { path, .. }
            | Error::UnsupportedFileSystem { path, .. }
            | Error::FileSystemFailure { path, .. }
            | Error::RequestIdReused { path, .. }
            | Error::FrameTooLarge { path, .. }
            | Error::BadRequest { path, .. }
            | Error::NotGatewayHolder { path }
            | Error::PeerRefused { path, .. }
            | Error::CopyIncomplete { path, .. } => Some(path),
        }
    }

    /// True when the same call may succeed if simply made again later: contention
    /// ([`Error::Busy`], [`Error::MaintenanceBusy`]: the other holder lets go) and a gateway
    /// that did not answer ([`Error::Unavailable`]: with the same request id the retry is
    /// applied at most once, see [`crate::Board::submit`]); an [`Error::Remote`] is
    /// retryable when the gateway's error is. Damage, bad input, a missing task and the
    /// environment are not: they need a repair, another call or a human.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Busy | ErrorKind::MaintenanceBusy | ErrorKind::Unavailable
        )
    }

    /// True for damage to the board itself (as opposed to contention, usage or environment).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. }
                | Error::Truncated { .. }
                | Error::NotADatabase { .. }
                | Error::EmptyFile { .. }
        )
    }
}

/// The holder part of [`Error::MaintenanceBusy`]'s message.
fn describe_holder(holder: Option<(u32, i64)>) -> String {
    match holder {
        Some((pid, since_ms)) => {
            format!("last maintenance: process {pid}, since {since_ms} ms after the epoch")
        }
        None => "no maintenance noted: sessions still open".into(),
    }
}

/// Attaches the board path to SQLite errors.
pub(crate) trait SqlResultExt<T> {
    /// Converts the error, naming `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> SqlResultExt<T> for rusqlite::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::sqlite(path, e))
    }
}
