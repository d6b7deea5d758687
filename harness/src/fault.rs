//! The fault vocabulary: the names that a scenario plans faults in, that the I/O shim and
//! the token match and deliver them by, and that a worker ledgers their effects under.
//!
//! It sits at the bottom of the harness's layers (see `ARCHITECTURE.md`) because every layer
//! above speaks it: `scenario` parses these names from a scenario file, `plan`
//! turns them into each worker's [`IoFault`]s, `shim` and `token` count and act on the file
//! operations they name, and a worker ledgers an expected error by its [`ErrorKind`] code.
//! Nothing here does anything: the types, their wire orders and their SQLite codes only.

use kanban_store::Error as StoreError;
use serde::Deserialize;

/// What kind of file an operation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// The main database file.
    Db,
    /// The write-ahead log.
    Wal,
    /// A rollback journal (rollback-mode boards, the WAL switch).
    Journal,
    /// Temporary files, statement journals.
    Temp,
    /// The WAL index (`-shm`), reached through the db file's shm methods.
    Shm,
}

impl FileKind {
    /// Every value, in declaration order (the wire format of deterministic mode).
    pub const ALL: [FileKind; 5] = [
        FileKind::Db,
        FileKind::Wal,
        FileKind::Journal,
        FileKind::Temp,
        FileKind::Shm,
    ];
}

/// A file operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoOp {
    /// `xRead`.
    Read,
    /// `xWrite`.
    Write,
    /// `xTruncate`.
    Truncate,
    /// `xSync`.
    Sync,
    /// `xFileSize`.
    FileSize,
    /// `xLock`.
    Lock,
    /// `xUnlock`.
    Unlock,
    /// `xCheckReservedLock`.
    CheckReserved,
    /// `xFileControl`.
    FileControl,
    /// `xSectorSize`.
    SectorSize,
    /// `xDeviceCharacteristics`.
    DeviceCharacteristics,
    /// `xShmMap`.
    ShmMap,
    /// `xShmLock`, except taking the WAL write lock.
    ShmLock,
    /// `xShmLock` taking the WAL write lock (slot 0, exclusive): becoming the writer.
    WalWriteLock,
    /// `xShmBarrier`.
    ShmBarrier,
    /// `xShmUnmap`.
    ShmUnmap,
    /// `xFetch`.
    Fetch,
    /// `xUnfetch`.
    Unfetch,
    /// `xClose`.
    Close,
}

impl IoOp {
    /// Every value, in declaration order (the wire format of deterministic mode).
    pub const ALL: [IoOp; 19] = [
        IoOp::Read,
        IoOp::Write,
        IoOp::Truncate,
        IoOp::Sync,
        IoOp::FileSize,
        IoOp::Lock,
        IoOp::Unlock,
        IoOp::CheckReserved,
        IoOp::FileControl,
        IoOp::SectorSize,
        IoOp::DeviceCharacteristics,
        IoOp::ShmMap,
        IoOp::ShmLock,
        IoOp::WalWriteLock,
        IoOp::ShmBarrier,
        IoOp::ShmUnmap,
        IoOp::Fetch,
        IoOp::Unfetch,
        IoOp::Close,
    ];
}

/// Where in SQLite's or the store's work an operation happens (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoPhase {
    /// Outside every phase.
    None,
    /// The checkpoint's copy loop.
    CheckpointCopy,
    /// The db truncate and sync after a complete checkpoint.
    CheckpointTail,
    /// A WAL truncate.
    WalTruncate,
    /// The store's commit.
    Commit,
    /// The store's checkpoint call.
    Checkpoint,
    /// The store's migration.
    Migration,
    /// The store's switch to WAL.
    JournalMode,
    /// The store's quarantine copy.
    Quarantine,
    /// The store's repair.
    Repair,
}

impl IoPhase {
    /// Every value, in declaration order (the wire format of deterministic mode).
    pub const ALL: [IoPhase; 10] = [
        IoPhase::None,
        IoPhase::CheckpointCopy,
        IoPhase::CheckpointTail,
        IoPhase::WalTruncate,
        IoPhase::Commit,
        IoPhase::Checkpoint,
        IoPhase::Migration,
        IoPhase::JournalMode,
        IoPhase::Quarantine,
        IoPhase::Repair,
    ];
}

impl IoPhase {
    /// The phase of a store mark.
    pub fn of_store(phase: kanban_store::Phase) -> IoPhase {
        use kanban_store::Phase as P;
        match phase {
            P::Commit => IoPhase::Commit,
            P::Checkpoint => IoPhase::Checkpoint,
            P::Migration => IoPhase::Migration,
            P::JournalMode => IoPhase::JournalMode,
            P::Quarantine => IoPhase::Quarantine,
            P::Repair => IoPhase::Repair,
        }
    }
}

/// What a fault does when it acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoAction {
    /// SIGKILL before the operation runs.
    KillBefore,
    /// SIGKILL right after the operation returned.
    KillAfter,
    /// Fail with `SQLITE_IOERR_WRITE`.
    IoerrWrite,
    /// Fail with `SQLITE_IOERR_FSYNC`.
    IoerrFsync,
    /// Fail with `SQLITE_FULL`.
    Full,
    /// SIGSTOP right after the operation succeeded (the supervisor resumes the worker).
    Stop,
    /// Cut the power right after the operation returned: every worker of the seed is
    /// SIGKILLed at once, and the supervisor rewrites the board's files into a state the
    /// disk could hold (the page-cache model, `pagecache`), then restarts them.
    PowerCut,
}

impl IoAction {
    /// Every value, in declaration order (the wire format of deterministic mode).
    pub const ALL: [IoAction; 7] = [
        IoAction::KillBefore,
        IoAction::KillAfter,
        IoAction::IoerrWrite,
        IoAction::IoerrFsync,
        IoAction::Full,
        IoAction::Stop,
        IoAction::PowerCut,
    ];
}

impl IoOp {
    /// Whether the operation returns an SQLite result code that a failing fault can replace
    /// (size and capability queries, barriers and closes cannot fail that way).
    pub fn can_fail(self) -> bool {
        !matches!(
            self,
            IoOp::SectorSize | IoOp::DeviceCharacteristics | IoOp::ShmBarrier | IoOp::Close
        )
    }
}

impl IoAction {
    /// The SQLite error code of a failing action (`None` for kills and stops).
    pub fn error_code(self) -> Option<i32> {
        use rusqlite::ffi;
        match self {
            IoAction::IoerrWrite => Some(ffi::SQLITE_IOERR_WRITE),
            IoAction::IoerrFsync => Some(ffi::SQLITE_IOERR_FSYNC),
            IoAction::Full => Some(ffi::SQLITE_FULL),
            _ => None,
        }
    }
}

/// One planned I/O fault of a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoFault {
    /// Its index in the scenario's list (written to the landed file).
    pub id: usize,
    /// The phase it waits for.
    pub phase: IoPhase,
    /// The file kind it waits for.
    pub file: FileKind,
    /// The operation it waits for.
    pub op: IoOp,
    /// It acts at the Nth matching operation (1-based).
    pub nth: u32,
    /// What it does.
    pub action: IoAction,
    /// For failing actions: fail every later match too, not just the Nth.
    pub sticky: bool,
}

/// The kinds of error a correct store returns under contention, races and faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum ErrorKind {
    /// A lock could not be had in time.
    Busy = 1,
    /// A maintenance could not have the board to itself in time.
    MaintenanceBusy = 2,
    /// Single-writer mode: the gateway is not there.
    Unavailable = 3,
    /// The disk is full.
    DiskFull = 4,
    /// SQLite reported an I/O error.
    IoFailure = 5,
    /// Another gateway runs on the board.
    GatewayRunning = 6,
    /// A session was used across a fork (the hardened store refuses it).
    UsedAcrossFork = 7,
    /// A run ended by someone else (a race between workers, not a storage failure).
    RunNotRunning = 8,
    /// A task another worker has not made yet, or that the board does not have.
    NoSuchTask = 9,
    /// A task moved meanwhile by someone else.
    InvalidMove = 10,
    /// The board is damaged beyond what the store repairs on its own (the gateway's
    /// start-up check stops on it).
    Corrupt = 11,
}

impl ErrorKind {
    const ALL: [ErrorKind; 11] = [
        ErrorKind::Busy,
        ErrorKind::MaintenanceBusy,
        ErrorKind::Unavailable,
        ErrorKind::DiskFull,
        ErrorKind::IoFailure,
        ErrorKind::GatewayRunning,
        ErrorKind::UsedAcrossFork,
        ErrorKind::RunNotRunning,
        ErrorKind::NoSuchTask,
        ErrorKind::InvalidMove,
        ErrorKind::Corrupt,
    ];

    /// The kind of a store error, if it is one a correct store returns (single-writer mode:
    /// the kind the gateway reported).
    pub fn of(e: &StoreError) -> Option<ErrorKind> {
        use kanban_store::ErrorKind as Store;
        Some(match e.kind() {
            Store::Busy => ErrorKind::Busy,
            Store::MaintenanceBusy => ErrorKind::MaintenanceBusy,
            Store::Unavailable => ErrorKind::Unavailable,
            Store::DiskFull => ErrorKind::DiskFull,
            Store::IoFailure => ErrorKind::IoFailure,
            Store::GatewayRunning => ErrorKind::GatewayRunning,
            Store::UsedAcrossFork => ErrorKind::UsedAcrossFork,
            Store::RunNotRunning => ErrorKind::RunNotRunning,
            Store::NoSuchTask => ErrorKind::NoSuchTask,
            Store::InvalidMove => ErrorKind::InvalidMove,
            Store::Corrupt => ErrorKind::Corrupt,
            _ => return None,
        })
    }

    /// The kind with ledger code `code`.
    pub fn from_code(code: i64) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| *k as i64 == code)
    }

    /// The store's name of the kind (`Busy`, `DiskFull`...), as in `allow_errors`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Busy => "Busy",
            ErrorKind::MaintenanceBusy => "MaintenanceBusy",
            ErrorKind::Unavailable => "Unavailable",
            ErrorKind::DiskFull => "DiskFull",
            ErrorKind::IoFailure => "IoFailure",
            ErrorKind::GatewayRunning => "GatewayRunning",
            ErrorKind::UsedAcrossFork => "UsedAcrossFork",
            ErrorKind::RunNotRunning => "RunNotRunning",
            ErrorKind::NoSuchTask => "NoSuchTask",
            ErrorKind::InvalidMove => "InvalidMove",
            ErrorKind::Corrupt => "Corrupt",
        }
    }
}
