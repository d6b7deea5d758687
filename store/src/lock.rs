//! R3: the store's own lock, in a file beside the board (`<db>.lock`).
//!
//! SQLite's unix VFS locks the database with POSIX `fcntl` record locks. Those belong to the
//! *process*, and `close()` of any descriptor of the file drops all of them, including the
//! ones other connections of the same process hold. That is how the upstream bug broke
//! boards. Our lock uses Linux open-file-description (OFD) locks instead: they belong to the
//! descriptor we opened, an unrelated `close()` cannot drop them, and the kernel releases
//! them when the process dies, so a killed worker never leaves a board locked.
//!
//! Two one-byte ranges of the lock file are used:
//! - byte 0, the **session** lock: shared by every open board session, exclusive for
//!   maintenance (create, migrate, switch to WAL, repair, quarantine). A maintenance
//!   therefore runs only when no session of any process is open.
//! - byte 1, the **gateway** lock: exclusive, held by the one gateway (dispatcher singleton).
//!
//! A third range, byte 2, is the **request**: a maintenance holds it while it waits for
//! sessions to let go and while it works (see `kanban-generations`); sessions look for it
//! before each operation. The file's *content* holds the board's generation (at byte 8,
//! little-endian, bumped by every maintenance that changed the board) and, at byte 16,
//! who holds the maintenance lock (process id and since when, in ms since the epoch), for
//! the message of a second maintenance that has to wait. The lock ranges and the content
//! are independent: locks cover bytes 0 and 1 as ranges, whatever the file holds.
//!
//! All attempts are non-blocking; we retry with short pauses from the configured clock and
//! give up with [`Error::Busy`] after the timeout, so no process ever blocks in the kernel.
//!
//! The lock file is part of the board's safety, so it is vetted on every open
//! ([`LockFile::open`]): never followed through a symlink (one to the board would put the
//! upstream bug back: our descriptor on the db, closed), a regular file with one name that
//! is not the board, with the board's owner and mode.
//!
//! This is the only module allowed to open files with `std::fs` (see `store/clippy.toml`):
//! it opens the lock file, never the database or its `-wal`/`-shm`.
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kanban_generations::Word;

use crate::config::Clock;
use crate::error::{Error, Result};

/// The path of the lock file that guards `db` (the board's canonical path, see
/// [`Board::path`](crate::Board::path)).
pub fn lock_path(db: &Path) -> PathBuf {
    crate::place::lock(db)
}

/// Where the generation word lives in the lock file.
const WORD_AT: u64 = 8;
/// Where the maintenance holder is noted.
const HOLDER_AT: u64 = 16;

/// Which of the lock file's ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    Session = 0,
    Gateway = 1,
    Request = 2,
}

/// How a range is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Many holders at once (normal sessions).
    Shared,
    /// One holder, no shared holders (maintenance).
    Exclusive,
}

/// An open `<db>.lock`, with the ranges this descriptor holds.
#[derive(Debug)]
pub struct LockFile {
    file: File,
    path: PathBuf,
    board: PathBuf,
    /// This descriptor created the file (`O_EXCL` succeeded).
    created: bool,
    session: Cell<Option<Mode>>,
    gateway: Cell<bool>,
}

/// How often an open retries when the lock file vanishes between `O_EXCL` and a plain open
/// (a refused open removing the one it had just created).
const OPEN_TRIES: usize = 8;

impl LockFile {
    /// Opens (creating if needed) the lock file for the board at `db`, refusing anything
    /// that is not a safe lock file with [`Error::UnsafeLockFile`] (see `LockFile::vet`).
    ///
    /// `O_NOFOLLOW`: a symlink at `<db>.lock` (say, to the board) is never followed, so the
    /// store never opens, writes or closes a descriptor of the board through it. A new file
    /// gets the board's permission bits and owner, as SQLite gives `-wal`/`-shm`: a lock
    /// file made by `sudo kanban-db check` stays usable by the services that own the board.
    pub fn open(db: &Path) -> Result<LockFile> {
        let path = lock_path(db);
        let board = std::fs::metadata(db).ok();
        let bits = board.as_ref().map_or(0o644, |m| m.mode() & 0o777);
        let mut last = None;
        for _ in 0..OPEN_TRIES {
            for create in [true, false] {
                #[allow(clippy::disallowed_methods)] // the lock file, never the database
                let opened = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(create)
                    .mode(bits)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path);
                match opened {
                    Ok(file) => {
                        let lock = LockFile {
                            file,
                            path,
                            board: db.to_path_buf(),
                            created: create,
                            session: Cell::new(None),
                            gateway: Cell::new(false),
                        };
                        return lock.vet(board.as_ref(), bits);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                    Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => {
                        last = Some(e);
                    }
                    Err(e) => return Err(open_error(db, &path, board.as_ref(), e)),
                }
            }
        }
        let gone = last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT));
        Err(open_error(db, &path, board.as_ref(), gone))
    }

    /// Checks what was opened: a regular file with one name, not the board's inode, owned
    /// by the board's owner. A file this open created is given the board's mode (past the
    /// umask) and owner; one left by another user is given the board's owner when we run as
    /// root (what `sudo kanban-db check` before this check left behind), else refused.
    fn vet(self, board: Option<&std::fs::Metadata>, bits: u32) -> Result<LockFile> {
        let unsafe_because = |why: String| Error::UnsafeLockFile {
            path: self.board.clone(),
            why: format!("{}: {why}", self.path.display()),
        };
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let meta = self.file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            return Err(unsafe_because("not a regular file; move it away".into()));
        }
        if board.is_some_and(|db| (db.dev(), db.ino()) == (meta.dev(), meta.ino())) {
            return Err(unsafe_because(
                "it is the board file itself (another name of it); remove that name".into(),
            ));
        }
        if meta.nlink() != 1 {
            return Err(unsafe_because(format!(
                "it has {} names (hard links); remove it while no process uses the board",
                meta.nlink()
            )));
        }
        if self.created {
            self.file
                .set_permissions(std::fs::Permissions::from_mode(bits))
                .map_err(io)?;
        }
        // No board yet: this process creates it, and owns both.
        let Some(db) = board else { return Ok(self) };
        let (uid, gid) = (db.uid(), db.gid());
        if self.created && (meta.uid(), meta.gid()) != (uid, gid) {
            match std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid)) {
                Ok(()) => {}
                // The board's owner, not in the board's group, keeps its own group.
                Err(_) if meta.uid() == uid => {}
                Err(e) => {
                    let why = format!(
                        "it could not be given the board's owner (uid {uid}): {e}; open the board as that user or as root"
                    );
                    self.remove_if_created();
                    return Err(unsafe_because(why));
                }
            }
            return Ok(self);
        }
        if meta.uid() == uid {
            return Ok(self);
        }
        if nix::unistd::geteuid().is_root() {
            // Left by a root process before lock files got the board's owner: fix it, since
            // the board's own services could not open it otherwise.
            std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid)).map_err(io)?;
            return Ok(self);
        }
        Err(unsafe_because(format!(
            "owned by uid {}, the board by uid {uid}; `chown {uid}:{gid} {}` (or remove it while no process uses the board)",
            meta.uid(),
            self.path.display()
        )))
    }

    /// Removes the lock file if this descriptor created it: for an open that is refused
    /// because the path holds no usable board (see `Board::start`).
    pub(crate) fn remove_if_created(&self) {
        if self.created {
            #[allow(clippy::disallowed_methods)] // the lock file, never the database
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// The session range's current mode, if held.
    pub fn session_mode(&self) -> Option<Mode> {
        self.session.get()
    }

    /// Takes (or converts to) the session range in `mode`, waiting up to `timeout`.
    ///
    /// Converting exclusive to shared is atomic: no other maintenance can slip in between.
    pub fn lock_session(&self, mode: Mode, timeout: Duration, clock: &dyn Clock) -> Result<()> {
        let what = match mode {
            Mode::Shared => "the board's session lock",
            Mode::Exclusive => "the board's maintenance lock (other sessions are open)",
        };
        let kind = match mode {
            Mode::Shared => libc::F_RDLCK,
            Mode::Exclusive => libc::F_WRLCK,
        };
        self.retry(Range::Session, kind, timeout, clock, what)?;
        self.session.set(Some(mode));
        Ok(())
    }

    /// The published word: the generation from the file, and whether a maintenance
    /// (through another descriptor) holds the request range.
    pub fn word(&self) -> Result<Word> {
        let mut buf = [0u8; 8];
        let n = self.read_at(&mut buf, WORD_AT)?;
        let generation = if n == 8 { u64::from_le_bytes(buf) } else { 0 };
        Ok(Word {
            generation,
            requested: self.held_elsewhere(Range::Request)?,
        })
    }

    /// Takes the request range, waiting up to `timeout` while another maintenance holds
    /// it. The request is a lock, not a bit in the file, so a maintenance that dies
    /// withdraws it: the kernel drops its locks.
    pub fn request(&self, timeout: Duration, clock: &dyn Clock) -> Result<()> {
        self.retry(
            Range::Request,
            libc::F_WRLCK,
            timeout,
            clock,
            "the maintenance request",
        )
    }

    /// Publishes `generation` (when given), then withdraws the request.
    pub fn finish(&self, generation: Option<u64>) -> Result<()> {
        if let Some(g) = generation {
            self.write_at(&g.to_le_bytes(), WORD_AT)?;
        }
        self.set(Range::Request, libc::F_UNLCK).map(|_| ())
    }

    /// Whether another open file description holds `range` (`F_OFD_GETLK`).
    fn held_elsewhere(&self, range: Range) -> Result<bool> {
        self.conflicts(range, libc::F_WRLCK)
    }

    /// Whether another open file description holds `range` in a way that conflicts with
    /// taking it as `kind` (`F_OFD_GETLK`): any holder for `F_WRLCK`, an exclusive one for
    /// `F_RDLCK`.
    fn conflicts(&self, range: Range, kind: libc::c_int) -> Result<bool> {
        let mut fl = one_byte(range, kind);
        // SAFETY: the descriptor is open for the life of `self.file`; `fl` is a valid flock.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        if rc != 0 {
            return Err(Error::Io {
                path: self.path.clone(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// Notes this process as the maintenance holder, since `now_ms`.
    pub fn note_holder(&self, now_ms: i64) -> Result<()> {
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        buf[8..].copy_from_slice(&now_ms.to_le_bytes());
        self.write_at(&buf, HOLDER_AT)
    }

    /// Clears the maintenance holder (the maintenance is over).
    pub fn clear_holder(&self) -> Result<()> {
        self.write_at(&[0u8; 16], HOLDER_AT)
    }

    /// The maintenance holder noted: process id and since when (ms since the epoch). A note
    /// is ignored while no other descriptor holds the session range exclusively: the
    /// maintenance that wrote it is over, and may have been killed before it could clear it
    /// (the kernel drops a dead process's locks, not its notes).
    pub fn holder(&self) -> Result<Option<(u32, i64)>> {
        if !self.conflicts(Range::Session, libc::F_RDLCK)? {
            return Ok(None);
        }
        let mut buf = [0u8; 16];
        if self.read_at(&mut buf, HOLDER_AT)? < 16 {
            return Ok(None);
        }
        let pid = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
        let since = i64::from_le_bytes(buf[8..].try_into().expect("8 bytes"));
        Ok((pid != 0).then_some((pid as u32, since)))
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<usize> {
        use std::os::unix::fs::FileExt;
        self.file.read_at(buf, at).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(buf, at).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Tries once to take the session range in `mode`; false if another holder conflicts.
    pub fn try_lock_session(&self, mode: Mode) -> Result<bool> {
        let kind = match mode {
            Mode::Shared => libc::F_RDLCK,
            Mode::Exclusive => libc::F_WRLCK,
        };
        let got = self.set(Range::Session, kind)?;
        if got {
            self.session.set(Some(mode));
        }
        Ok(got)
    }

    /// Releases the session range.
    pub fn unlock_session(&self) -> Result<()> {
        self.set(Range::Session, libc::F_UNLCK)?;
        self.session.set(None);
        Ok(())
    }

    /// Takes the gateway range, waiting up to `timeout`: a second gateway gets
    /// [`Error::GatewayRunning`]. (The wait covers a gateway that is just closing, and a
    /// descriptor of ours briefly inherited by a child between its fork and its exec.)
    pub fn lock_gateway(&self, timeout: Duration, clock: &dyn Clock) -> Result<()> {
        match self.retry(
            Range::Gateway,
            libc::F_WRLCK,
            timeout,
            clock,
            "the gateway lock",
        ) {
            Ok(()) => {
                self.gateway.set(true);
                Ok(())
            }
            Err(Error::Busy { .. }) => Err(Error::GatewayRunning {
                path: self.board.clone(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Whether this descriptor holds the gateway range.
    pub fn holds_gateway(&self) -> bool {
        self.gateway.get()
    }

    fn retry(
        &self,
        range: Range,
        kind: libc::c_int,
        timeout: Duration,
        clock: &dyn Clock,
        what: &'static str,
    ) -> Result<()> {
        let mut waited = Duration::ZERO;
        let mut pause = Duration::from_millis(1);
        loop {
            clock.yield_now();
            if self.set(range, kind)? {
                return Ok(());
            }
            if waited >= timeout {
                return Err(Error::Busy {
                    path: self.board.clone(),
                    what,
                    waited_ms: crate::millis::u64_ms(waited),
                });
            }
            clock.sleep(pause);
            waited += pause;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// One non-blocking `F_OFD_SETLK`; `Ok(false)` when another holder conflicts.
    fn set(&self, range: Range, kind: libc::c_int) -> Result<bool> {
        let fl = one_byte(range, kind);
        // SAFETY: the descriptor is open for the life of `self.file`; `fl` is a valid flock.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => Ok(false),
            _ => Err(Error::Io {
                path: self.path.clone(),
                source: err,
            }),
        }
    }
}

/// The typed error for a lock file that could not be opened (`board`: the board's `stat`).
fn open_error(
    db: &Path,
    lock: &Path,
    board: Option<&std::fs::Metadata>,
    source: io::Error,
) -> Error {
    let unsafe_because = |why: String| Error::UnsafeLockFile {
        path: db.to_path_buf(),
        why: format!("{}: {why}", lock.display()),
    };
    let theirs = std::fs::symlink_metadata(lock)
        .ok()
        .filter(|m| m.uid() != nix::unistd::geteuid().as_raw());
    match source.raw_os_error() {
        Some(libc::ELOOP) => unsafe_because(
            "a symlink (the store never follows one to its lock file); remove it".into(),
        ),
        Some(libc::EISDIR) => unsafe_because("a folder, not a file; move it away".into()),
        // Someone else's file we may not write (a root-owned one, say): not a read-only folder.
        Some(libc::EACCES | libc::EPERM) if theirs.is_some() => {
            let owner = theirs.map_or(0, |m| m.uid());
            let (uid, gid) = board.map_or((0, 0), |m| (m.uid(), m.gid()));
            unsafe_because(format!(
                "owned by uid {owner} and not writable by uid {}; `chown {uid}:{gid} {}` (or remove it while no process uses the board)",
                nix::unistd::geteuid(),
                lock.display()
            ))
        }
        Some(libc::EACCES | libc::EROFS | libc::EPERM) => Error::ReadOnlyLocation {
            path: db.to_path_buf(),
        },
        Some(libc::ENOENT) => Error::MissingFolder {
            path: db.to_path_buf(),
        },
        _ => Error::Io {
            path: lock.to_path_buf(),
            source,
        },
    }
}

/// The `flock` for one byte-range `range` of kind `kind` (`l_pid` stays 0, as OFD locks
/// require).
fn one_byte(range: Range, kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is plain old data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = range as libc::off_t;
    fl.l_len = 1;
    fl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemClock;

    fn board() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        (dir, db)
    }

    #[test]
    fn shared_sessions_coexist_and_exclude_maintenance() {
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        let b = LockFile::open(&db).unwrap();
        let m = LockFile::open(&db).unwrap();
        assert!(a.try_lock_session(Mode::Shared).unwrap());
        assert!(b.try_lock_session(Mode::Shared).unwrap());
        assert!(!m.try_lock_session(Mode::Exclusive).unwrap());
        a.unlock_session().unwrap();
        assert!(!m.try_lock_session(Mode::Exclusive).unwrap());
        drop(b);
        assert!(m.try_lock_session(Mode::Exclusive).unwrap());
        assert!(!a.try_lock_session(Mode::Shared).unwrap());
    }

    #[test]
    fn an_unrelated_close_does_not_drop_the_lock() {
        // The very failure of fcntl locks: open and close the lock file elsewhere in the
        // same process; our lock must survive it.
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        a.lock_session(Mode::Exclusive, Duration::ZERO, &SystemClock)
            .unwrap();
        drop(LockFile::open(&db).unwrap());
        let b = LockFile::open(&db).unwrap();
        assert!(!b.try_lock_session(Mode::Shared).unwrap());
    }

    #[test]
    fn downgrade_is_atomic_and_lets_sessions_in() {
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        let b = LockFile::open(&db).unwrap();
        a.lock_session(Mode::Exclusive, Duration::ZERO, &SystemClock)
            .unwrap();
        a.lock_session(Mode::Shared, Duration::ZERO, &SystemClock)
            .unwrap();
        assert!(b.try_lock_session(Mode::Shared).unwrap());
    }

    #[test]
    fn busy_after_the_timeout() {
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        let b = LockFile::open(&db).unwrap();
        a.lock_session(Mode::Shared, Duration::ZERO, &SystemClock)
            .unwrap();
        let err = b
            .lock_session(Mode::Exclusive, Duration::from_millis(30), &SystemClock)
            .unwrap_err();
        assert!(
            matches!(err, Error::Busy { waited_ms, .. } if waited_ms >= 30),
            "{err}"
        );
    }

    #[test]
    fn the_word_and_the_holder_are_shared_through_the_file() {
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        let b = LockFile::open(&db).unwrap();
        assert_eq!(
            b.word().unwrap(),
            Word {
                generation: 0,
                requested: false
            }
        );
        assert_eq!(b.holder().unwrap(), None);
        a.request(Duration::ZERO, &SystemClock).unwrap();
        a.finish(Some(3)).unwrap();
        a.request(Duration::ZERO, &SystemClock).unwrap();
        // A second maintenance waits for the first one's request.
        assert!(b.request(Duration::from_millis(5), &SystemClock).is_err());
        a.lock_session(Mode::Exclusive, Duration::ZERO, &SystemClock)
            .unwrap();
        a.note_holder(1234).unwrap();
        assert_eq!(
            b.word().unwrap(),
            Word {
                generation: 3,
                requested: true
            }
        );
        assert_eq!(b.holder().unwrap(), Some((std::process::id(), 1234)));
        // The request is a lock: it goes with the descriptor that holds it.
        drop(a);
        assert_eq!(
            b.word().unwrap(),
            Word {
                generation: 3,
                requested: false
            }
        );
        // Nobody holds the maintenance lock: the note left in the file names nobody.
        assert_eq!(b.holder().unwrap(), None);
    }

    #[test]
    fn one_gateway_per_board() {
        let (_dir, db) = board();
        let a = LockFile::open(&db).unwrap();
        let b = LockFile::open(&db).unwrap();
        a.lock_gateway(Duration::ZERO, &SystemClock).unwrap();
        assert!(matches!(
            b.lock_gateway(Duration::from_millis(20), &SystemClock),
            Err(Error::GatewayRunning { .. })
        ));
        drop(a);
        b.lock_gateway(Duration::ZERO, &SystemClock).unwrap();
    }
}
