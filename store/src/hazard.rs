//! Ground layer (with the `hazards` feature only): the names of the upstream mistakes
//! ([`Hazard`]) and a set of them ([`HazardSet`]), which [`crate::StoreConfig`] carries.
//! What each one does is `hazards.rs`'s, behind the hook interface of `seam.rs`; this is
//! only the vocabulary, so the configuration can name it without depending on the code.

use std::fmt;

/// One upstream mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hazard {
    /// Plain `open`+`read`+`close` of the db and `-shm` on every connect: the `close` drops
    /// every POSIX lock this process holds on them, other connections' included.
    RawHeaderPeek,
    /// Every check first copies db, `-wal` and `-shm` with plain file I/O (more lock loss).
    CopySidecarsOnCheck,
    /// A full `integrity_check` on every connect; damage triggers the health guard.
    IntegrityOnConnect,
    /// A failed write falls back to `journal_mode=DELETE`; every connect sets WAL again.
    JournalToggleOnError,
    /// The health guard rebuilds a damaged board and renames it over the live file.
    ReplaceWhileOpen,
    /// A process's first open deletes `-wal` and `-shm`, "left over from a crash".
    DeleteSidecarsAfterCrash,
    /// The health guard keeps a new backup on every detection: no dedup, no cap.
    UnboundedBackups,
    /// Every role checkpoints automatically (and on close), not just the owner.
    AutocheckpointEverywhere,
    /// Dashboards open the board through a hard link (another name for the same file), so
    /// their `-wal`/`-shm` have other names than everyone else's: two WALs, a split brain.
    HardLinkAlias,
    /// A session opened before `fork()` may be used in the child.
    ConnectionAcrossFork,
    /// `journal_mode=OFF` where the store would set WAL, and on every connect: no rollback
    /// at all, so a process killed mid-write leaves half a transaction in the file.
    JournalOff,
    /// `synchronous=OFF`: bites only on power loss, which process kills cannot show.
    SyncOff,
    /// `synchronous=NORMAL` instead of FULL. In WAL mode SQLite then syncs the WAL only at a
    /// checkpoint, not at each commit: a power cut may roll back a suffix of acknowledged
    /// commits (those after the WAL's last sync), but never damages the board. Process kills
    /// cannot show it (the page cache keeps every write).
    SyncNormal,
    /// The store's own quarantine and backup renames, links and removes are not followed by
    /// a sync of their folder: after a power cut a copy reported kept or made may be gone
    /// (or a removed one back). Process kills cannot show it.
    NoDirFsync,
    /// A new (read-write) connection for every operation, reads included, closed right after.
    ConnectPerOperation,
    /// No lock of our own around sessions: a process takes a blocking `flock` on `<db>.lock`
    /// only while it first initialises the board, then none (no session, maintenance or
    /// gateway lock, no connection generations).
    InitOnlyFlock,
    /// Plain `open`+`read`+`close` of the db after every commit, to read its page count: the
    /// `close` drops this process's POSIX locks on the db, other connections' included.
    PageCountPeekAfterCommit,
    /// Upstream's health guard as it was: a full `integrity_check` on connect until one
    /// passes in this process (then cached for the process's life); damage triggers it.
    IntegrityOncePerProcess,
    /// The board's siblings (`<db>.lock`, `<db>.sock`, `<db>.quarantine`, the open-here key)
    /// come from the path string as given, not its canonical form: a board reached through
    /// a symlink and through its target gets two lock files, so a repair through one name
    /// does not exclude sessions opened through the other.
    RawPathSiblings,
    /// The board neither records nor looks up request ids: every request the gateway reads
    /// is applied, a retry of one that timed out included (the store before request ids).
    ForgetRequestIds,
    /// The owner's checkpoint runs with `synchronous=OFF` (set before it, put back after):
    /// SQLite copies WAL frames into the db and lets the WAL start over without syncing the
    /// db first, so after a power cut the pages only the WAL held are gone from both.
    /// Process kills cannot show it.
    NosyncCheckpoint,
}

impl Hazard {
    /// Every hazard.
    pub const ALL: [Hazard; 21] = [
        Hazard::RawHeaderPeek,
        Hazard::CopySidecarsOnCheck,
        Hazard::IntegrityOnConnect,
        Hazard::JournalToggleOnError,
        Hazard::ReplaceWhileOpen,
        Hazard::DeleteSidecarsAfterCrash,
        Hazard::UnboundedBackups,
        Hazard::AutocheckpointEverywhere,
        Hazard::HardLinkAlias,
        Hazard::ConnectionAcrossFork,
        Hazard::JournalOff,
        Hazard::SyncOff,
        Hazard::ConnectPerOperation,
        Hazard::InitOnlyFlock,
        Hazard::PageCountPeekAfterCommit,
        Hazard::IntegrityOncePerProcess,
        Hazard::RawPathSiblings,
        Hazard::ForgetRequestIds,
        Hazard::SyncNormal,
        Hazard::NoDirFsync,
        Hazard::NosyncCheckpoint,
    ];

    /// The switch's name (as in `hazard:<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Hazard::RawHeaderPeek => "raw-header-peek",
            Hazard::CopySidecarsOnCheck => "copy-sidecars-on-check",
            Hazard::IntegrityOnConnect => "integrity-on-connect",
            Hazard::JournalToggleOnError => "journal-toggle-on-error",
            Hazard::ReplaceWhileOpen => "replace-while-open",
            Hazard::DeleteSidecarsAfterCrash => "delete-sidecars-after-crash",
            Hazard::UnboundedBackups => "unbounded-backups",
            Hazard::AutocheckpointEverywhere => "autocheckpoint-everywhere",
            Hazard::HardLinkAlias => "hard-link-alias",
            Hazard::ConnectionAcrossFork => "connection-across-fork",
            Hazard::JournalOff => "journal-off",
            Hazard::SyncOff => "sync-off",
            Hazard::ConnectPerOperation => "connect-per-operation",
            Hazard::InitOnlyFlock => "init-only-flock",
            Hazard::PageCountPeekAfterCommit => "page-count-peek-after-commit",
            Hazard::IntegrityOncePerProcess => "integrity-once-per-process",
            Hazard::RawPathSiblings => "raw-path-siblings",
            Hazard::ForgetRequestIds => "forget-request-ids",
            Hazard::SyncNormal => "sync-normal",
            Hazard::NoDirFsync => "no-dir-fsync",
            Hazard::NosyncCheckpoint => "nosync-checkpoint",
        }
    }

    /// The hazard with this name.
    pub fn from_name(name: &str) -> Option<Hazard> {
        Hazard::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Whether process kills can show the damage at all (`sync-off`, `sync-normal`,
    /// `no-dir-fsync` and `nosync-checkpoint` need a power loss).
    pub fn visible_to_kills(self) -> bool {
        !matches!(
            self,
            Hazard::SyncOff | Hazard::SyncNormal | Hazard::NoDirFsync | Hazard::NosyncCheckpoint
        )
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of hazards (empty: the hardened store).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HazardSet(u32);

impl HazardSet {
    /// The upstream code at bug time (hermes-agent's `kanban_db.py`, late May 2026): no
    /// lock of its own beyond an init-time `flock`, WAL set on every connect with a fallback
    /// to `DELETE`, automatic checkpoints everywhere, a header peek on every connect and a
    /// page-count peek after every commit, the health guard (an `integrity_check` until one
    /// passes in the process) with plain, uncapped backups, and a connection per operation.
    /// The README maps each upstream behaviour to its switch.
    pub fn naive() -> HazardSet {
        [
            Hazard::RawHeaderPeek,
            Hazard::CopySidecarsOnCheck,
            Hazard::JournalToggleOnError,
            Hazard::UnboundedBackups,
            Hazard::AutocheckpointEverywhere,
            Hazard::ConnectPerOperation,
            Hazard::InitOnlyFlock,
            Hazard::PageCountPeekAfterCommit,
            Hazard::IntegrityOncePerProcess,
        ]
        .into_iter()
        .collect()
    }

    /// Adds `h`.
    pub fn with(mut self, h: Hazard) -> HazardSet {
        self.0 |= 1 << h as u32;
        self
    }

    /// Whether `h` is on.
    pub fn contains(self, h: Hazard) -> bool {
        self.0 & (1 << h as u32) != 0
    }

    /// The hazards that are on.
    pub fn iter(self) -> impl Iterator<Item = Hazard> {
        Hazard::ALL.into_iter().filter(move |&h| self.contains(h))
    }
}

impl FromIterator<Hazard> for HazardSet {
    fn from_iter<I: IntoIterator<Item = Hazard>>(iter: I) -> Self {
        iter.into_iter().fold(HazardSet::default(), HazardSet::with)
    }
}

impl fmt::Debug for HazardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Hazard::name))
            .finish()
    }
}
