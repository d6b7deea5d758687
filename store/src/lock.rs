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
//! This is the only module allowed to open files with `std::fs` (see `store/clippy.toml`):
//! it opens the lock file, never the database or its `-wal`/`-shm`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kanban_generations::Word;

use crate::config::Clock;
use crate::error::{Error, Result};

/// The path of the lock file that guards `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
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
    session: Option<Mode>,
    gateway: bool,
}

impl LockFile {
    /// Opens (creating if needed) the lock file for the board at `db`.
    pub fn open(db: &Path) -> Result<LockFile> {
        let path = lock_path(db);
        #[allow(clippy::disallowed_methods)] // the lock file, never the database
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::EACCES | libc::EROFS | libc::EPERM) => Error::ReadOnlyLocation {
                    path: db.to_path_buf(),
                },
                Some(libc::ENOENT) => Error::MissingFolder {
                    path: db.to_path_buf(),
                },
                _ => Error::Io {
                    path: path.clone(),
                    source,
                },
            })?;
        Ok(LockFile {
            file,
            path,
            board: db.to_path_buf(),
            session: None,
            gateway: false,
        })
    }

    /// The session range's current mode, if held.
    pub fn session_mode(&self) -> Option<Mode> {
        self.session
    }

    /// Takes (or converts to) the session range in `mode`, waiting up to `timeout`.
    ///
    /// Converting exclusive to shared is atomic: no other maintenance can slip in between.
    pub fn lock_session(&mut self, mode: Mode, timeout: Duration, clock: &dyn Clock) -> Result<()> {
        let what = match mode {
            Mode::Shared => "the board's session lock",
            Mode::Exclusive => "the board's maintenance lock (other sessions are open)",
        };
        let kind = match mode {
            Mode::Shared => libc::F_RDLCK,
            Mode::Exclusive => libc::F_WRLCK,
        };
        self.retry(Range::Session, kind, timeout, clock, what)?;
        self.session = Some(mode);
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
    pub fn try_lock_session(&mut self, mode: Mode) -> Result<bool> {
        let kind = match mode {
            Mode::Shared => libc::F_RDLCK,
            Mode::Exclusive => libc::F_WRLCK,
        };
        let got = self.set(Range::Session, kind)?;
        if got {
            self.session = Some(mode);
        }
        Ok(got)
    }

    /// Releases the session range.
    pub fn unlock_session(&mut self) -> Result<()> {
        self.set(Range::Session, libc::F_UNLCK)?;
        self.session = None;
        Ok(())
    }

    /// Takes the gateway range, waiting up to `timeout`: a second gateway gets
    /// [`Error::GatewayRunning`]. (The wait covers a gateway that is just closing, and a
    /// descriptor of ours briefly inherited by a child between its fork and its exec.)
    pub fn lock_gateway(&mut self, timeout: Duration, clock: &dyn Clock) -> Result<()> {
        match self.retry(
            Range::Gateway,
            libc::F_WRLCK,
            timeout,
            clock,
            "the gateway lock",
        ) {
            Ok(()) => {
                self.gateway = true;
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
        self.gateway
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
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
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
        let mut a = LockFile::open(&db).unwrap();
        let mut b = LockFile::open(&db).unwrap();
        let mut m = LockFile::open(&db).unwrap();
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
        let mut a = LockFile::open(&db).unwrap();
        a.lock_session(Mode::Exclusive, Duration::ZERO, &SystemClock)
            .unwrap();
        drop(LockFile::open(&db).unwrap());
        let mut b = LockFile::open(&db).unwrap();
        assert!(!b.try_lock_session(Mode::Shared).unwrap());
    }

    #[test]
    fn downgrade_is_atomic_and_lets_sessions_in() {
        let (_dir, db) = board();
        let mut a = LockFile::open(&db).unwrap();
        let mut b = LockFile::open(&db).unwrap();
        a.lock_session(Mode::Exclusive, Duration::ZERO, &SystemClock)
            .unwrap();
        a.lock_session(Mode::Shared, Duration::ZERO, &SystemClock)
            .unwrap();
        assert!(b.try_lock_session(Mode::Shared).unwrap());
    }

    #[test]
    fn busy_after_the_timeout() {
        let (_dir, db) = board();
        let mut a = LockFile::open(&db).unwrap();
        let mut b = LockFile::open(&db).unwrap();
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
        let mut a = LockFile::open(&db).unwrap();
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
        let mut a = LockFile::open(&db).unwrap();
        let mut b = LockFile::open(&db).unwrap();
        a.lock_gateway(Duration::ZERO, &SystemClock).unwrap();
        assert!(matches!(
            b.lock_gateway(Duration::from_millis(20), &SystemClock),
            Err(Error::GatewayRunning { .. })
        ));
        drop(a);
        b.lock_gateway(Duration::ZERO, &SystemClock).unwrap();
    }
}
