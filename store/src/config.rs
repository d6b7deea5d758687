//! How a process opens a board: its role, its timeouts, its clock (and, for the harness, its
//! hazards).
//!
//! R10: the role decides what a session may do. The gateway is the single writer of dispatch
//! state and the only checkpoint owner (R6); a dashboard reads through a read-only connection
//! and makes short user edits; a worker reports heartbeats and results.
//!
//! Layer: ground (the layer order is in `store/ARCHITECTURE.md`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::damage_policy::DamagePolicy;
use crate::seam::Hooks;

/// What a process is to the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Dispatcher and notifier; the one checkpoint owner; a singleton per board.
    Gateway,
    /// Web API: board reads (through a read-only connection) and short user edits.
    Dashboard,
    /// An agent worker: heartbeats and results for its runs.
    Worker,
}

impl Role {
    /// The role's name as written in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Dashboard => "dashboard",
            Role::Worker => "worker",
        }
    }

    /// R6: only the gateway checkpoints.
    pub fn owns_checkpoints(self) -> bool {
        self == Role::Gateway
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Time as the store sees it: timestamps and the pauses between lock attempts.
///
/// One abstraction so that a deterministic harness can drive both from its seed.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Waits `d` (or, in a simulation, lets others run for that long).
    fn sleep(&self, d: Duration);
    /// Called before each attempt at one of the store's locks: a point where a
    /// deterministic scheduler may let another process run first. The real clock does
    /// nothing.
    fn yield_now(&self) {}
    /// Waits until `fd` has something to read, or `max` has passed (single-writer mode: a
    /// dashboard waiting for the gateway's answer). The real clock polls the descriptor, so
    /// the answer is read the moment it arrives; a simulation lets others run for `max`.
    fn wait_readable(&self, fd: std::os::fd::RawFd, max: Duration) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(max.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd; an early return (EINTR, readiness) is what we want.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
        }
    }
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        crate::millis::i64_ms(since)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A stretch of store work that an observer (the fault harness) may want to act inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `COMMIT` of a write transaction (WAL append and sync).
    Commit,
    /// The owner's PASSIVE checkpoint.
    Checkpoint,
    /// Schema migration at creation or upgrade (under the maintenance lock).
    Migration,
    /// The switch of a new or rollback-mode board to WAL (under the maintenance lock).
    JournalMode,
    /// A quarantine copy through the backup API.
    Quarantine,
    /// A repair, under the maintenance lock: check, REINDEX or rebuild, and the swap.
    Repair,
}

impl Phase {
    /// Every phase, in the order of the enum.
    pub const ALL: [Phase; 6] = [
        Phase::Commit,
        Phase::Checkpoint,
        Phase::Migration,
        Phase::JournalMode,
        Phase::Quarantine,
        Phase::Repair,
    ];

    /// The phase's name, as written in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Commit => "commit",
            Phase::Checkpoint => "checkpoint",
            Phase::Migration => "migration",
            Phase::JournalMode => "journal-mode",
            Phase::Quarantine => "quarantine",
            Phase::Repair => "repair",
        }
    }
}

/// Called with `(phase, true)` on entering a phase and `(phase, false)` on leaving it.
pub type PhaseObserver = Arc<dyn Fn(Phase, bool) + Send + Sync>;

/// Runs `f` inside `phase`, telling `observer` (if any) on both sides.
pub(crate) fn in_phase<T>(
    observer: Option<&PhaseObserver>,
    phase: Phase,
    f: impl FnOnce() -> T,
) -> T {
    match observer {
        Some(observe) => {
            observe(phase, true);
            let out = f();
            observe(phase, false);
            out
        }
        None => f(),
    }
}

/// A change the store itself makes to the names of a board's files, or a sync it makes
/// itself with `std::fs` (quarantine copies, online copies: `copy.rs`, `quarantine.rs`),
/// as a [`FilesObserver`] sees it. Paths are full paths. SQLite's own file work (the board,
/// its journal and WAL, the files it writes for a copy) goes through its VFS and is not
/// told here; nor are `<db>.lock` and `<db>.sock`, which hold no board data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileChange {
    /// Told just before `from` is renamed onto `to`.
    Renaming {
        /// The old name.
        from: PathBuf,
        /// The new name (replaced if it exists).
        to: PathBuf,
    },
    /// Told just before `to` is made a new name (a hard link) of the file `from`.
    Linking {
        /// The existing name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
    },
    /// Told just before the file is removed.
    Removing(PathBuf),
    /// Told after the file's content was fsynced (a quarantine copy the store syncs itself).
    FileSynced(PathBuf),
    /// Told after the folder was fsynced: every change of its names before is durable.
    DirSynced(PathBuf),
}

/// Called at each [`FileChange`] (before a rename, link or remove; after a sync).
pub type FilesObserver = Arc<dyn Fn(&FileChange) + Send + Sync>;

/// One builder method per setting: `name(value)` sets the field of that name.
macro_rules! setters {
    ($($field:ident: $ty:ty,)*) => {
        $(
            #[doc = concat!("Sets [`StoreConfig::", stringify!($field), "`].")]
            pub fn $field(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

/// Everything that decides how a board is opened and used.
///
/// Built from the role's defaults and changed with one builder method per setting, so a
/// new setting is not a breaking change (the struct is `#[non_exhaustive]`: outside this
/// crate it cannot be written as a literal). Each field's doc gives its default and why.
///
/// ```
/// use std::time::Duration;
/// use kanban_store::{Role, StoreConfig};
///
/// let cfg = StoreConfig::new(Role::Dashboard)
///     .busy_timeout(Duration::from_millis(500))
///     .single_writer(true)
///     .creating();
/// assert_eq!(cfg.busy_timeout, Duration::from_millis(500));
/// assert!(cfg.single_writer && cfg.create_if_missing);
/// ```
///
/// A literal does not compile outside the crate, even with the rest taken from `new`:
///
/// ```compile_fail
/// use kanban_store::{Role, StoreConfig};
///
/// let cfg = StoreConfig {
///     single_writer: true,
///     ..StoreConfig::new(Role::Dashboard)
/// };
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// What this process is to the board. No default: [`StoreConfig::new`] takes it.
    pub role: Role,
    /// Create the board (under the maintenance lock) if the file does not exist. Default
    /// `false`: a mistyped path must be an error, not a new empty board.
    pub create_if_missing: bool,
    /// How long SQLite waits for its own locks before returning [`crate::Error::Busy`].
    /// Default 5 s: far above a normal transaction (milliseconds), short enough that a
    /// stuck writer surfaces as an error a caller sees.
    pub busy_timeout: Duration,
    /// How long we wait for our `<db>.lock` before returning [`crate::Error::Busy`].
    /// Default 5 s, for the same reason: a repair holds it exclusively for seconds at most.
    pub lock_timeout: Duration,
    /// The gateway runs a PASSIVE checkpoint once the WAL holds this many frames. Default
    /// 1000 (SQLite's own autocheckpoint threshold, about 4 MB of WAL with 4 KiB pages).
    pub checkpoint_frames: u32,
    /// The most quarantine copies kept per board. Default 5: enough to compare damage over
    /// a few incidents without letting copies of a large board fill the disk.
    pub quarantine_cap: usize,
    /// Keep a quarantine copy when [`crate::Board::check`] finds structural damage. Default
    /// `false`: a copy doubles the board's disk use, so it is asked for, not implied.
    pub quarantine_on_damage: bool,
    /// Single-writer mode: a dashboard sends its writes to the gateway over the board's
    /// socket (`<db>.sock`) instead of writing the file itself (see
    /// [`WriteServer`](crate::WriteServer)). Default `false`: every process writes under R5's
    /// `BEGIN IMMEDIATE`, which needs no gateway to be running.
    pub single_writer: bool,
    /// Single-writer mode: a group whose processes may use the board's socket besides this
    /// process's own user (its gid). `None` (the default): the socket is 0600 and only the
    /// same user is trusted; `Some(gid)`: the socket is 0660 in that group and a peer whose
    /// primary group it is is trusted too (see the `single_writer` module, "Who talks").
    pub socket_group: Option<u32>,
    /// The gateway's reaction to damage its start-up check finds
    /// ([`crate::Board::check_at_start`]). Default: repair index-only damage (nothing is
    /// lost, the rows are intact), stop on anything else (a human decides).
    pub on_damage: DamagePolicy,
    /// Timestamps and retry pauses. Default [`SystemClock`]; the harness gives a logical one.
    pub clock: Arc<dyn Clock>,
    /// Told when the store enters and leaves a [`Phase`]. Default none: only the fault
    /// harness acts inside phases.
    pub observer: Option<PhaseObserver>,
    /// Told of the store's own changes to the names of board files and its own syncs
    /// ([`FileChange`]). Default none: only the fault harness, whose power-cut model
    /// cannot see them otherwise, listens.
    pub files_observer: Option<FilesObserver>,
    /// Open a board on a network or user-space file system (NFS, SMB, FUSE, ...; see
    /// `filesystem.rs`) instead of refusing it. Only when every process using the
    /// board is on one host: WAL's shared memory and OFD locks do not work across hosts.
    /// Default `false`, for that reason.
    pub allow_network_fs: bool,
    /// Upstream mistakes put back on purpose (harness only). Default none.
    #[cfg(feature = "hazards")]
    pub hazards: crate::hazard::HazardSet,
}

impl StoreConfig {
    /// The defaults for `role` (each field's doc gives its default).
    pub fn new(role: Role) -> Self {
        StoreConfig {
            role,
            create_if_missing: false,
            busy_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(5),
            checkpoint_frames: 1000,
            quarantine_cap: 5,
            quarantine_on_damage: false,
            single_writer: false,
            socket_group: None,
            on_damage: DamagePolicy::default(),
            clock: Arc::new(SystemClock),
            observer: None,
            files_observer: None,
            allow_network_fs: false,
            #[cfg(feature = "hazards")]
            hazards: crate::hazard::HazardSet::default(),
        }
    }

    /// The hooks this configuration installs (`seam.rs`): its hazard set's, which
    /// `hazards.rs` implements, or `()`'s (the hardened store) without the feature.
    pub(crate) fn hooks(&self) -> &dyn Hooks {
        #[cfg(feature = "hazards")]
        return &self.hazards;
        #[cfg(not(feature = "hazards"))]
        return &();
    }

    /// Runs `f` inside `phase`, telling the observer (if any) on both sides.
    pub(crate) fn in_phase<T>(&self, phase: Phase, f: impl FnOnce() -> T) -> T {
        in_phase(self.observer.as_ref(), phase, f)
    }

    /// The same configuration, creating the board if it is missing.
    pub fn creating(self) -> Self {
        self.create_if_missing(true)
    }

    setters! {
        role: Role,
        create_if_missing: bool,
        busy_timeout: Duration,
        lock_timeout: Duration,
        checkpoint_frames: u32,
        quarantine_cap: usize,
        quarantine_on_damage: bool,
        single_writer: bool,
        on_damage: DamagePolicy,
        clock: Arc<dyn Clock>,
        allow_network_fs: bool,
    }

    /// Sets [`StoreConfig::observer`].
    pub fn observer(mut self, observer: PhaseObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sets [`StoreConfig::files_observer`].
    pub fn files_observer(mut self, observer: FilesObserver) -> Self {
        self.files_observer = Some(observer);
        self
    }

    #[cfg(feature = "hazards")]
    setters! {
        hazards: crate::hazard::HazardSet,
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("StoreConfig");
        s.field("role", &self.role)
            .field("create_if_missing", &self.create_if_missing)
            .field("busy_timeout", &self.busy_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("checkpoint_frames", &self.checkpoint_frames)
            .field("quarantine_cap", &self.quarantine_cap)
            .field("quarantine_on_damage", &self.quarantine_on_damage)
            .field("single_writer", &self.single_writer)
            .field("socket_group", &self.socket_group)
            .field("on_damage", &self.on_damage)
            .field("observer", &self.observer.is_some())
            .field("files_observer", &self.files_observer.is_some())
            .field("allow_network_fs", &self.allow_network_fs);
        #[cfg(feature = "hazards")]
        s.field("hazards", &self.hazards);
        s.finish_non_exhaustive()
    }
}
