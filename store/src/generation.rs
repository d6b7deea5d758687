//! Connection generations on a real board: the [`kanban_generations`] protocol over our
//! lock file and SQLite sessions.
//!
//! A [`Board`](crate::Board) keeps its connections in a [`Pool`], and one descriptor of the
//! lock file for its whole life. Every operation takes the shared session range on that
//! descriptor, runs, and releases it ([`Pool::with`]): an idle board holds no lock, so a
//! repair gets the board as soon as the operations under way are over, however long other
//! processes keep their boards open. The other way, an idle session noticing the request
//! without an operation, needs a thread (or a signal) in every process that opens a board,
//! which workers that fork must not have. The cost is two `fcntl` calls and two 8-byte
//! `pread`s of the lock file per operation (see the module docs of `kanban-generations`);
//! the connections stay open while idle, and are reopened once after a repair published
//! the next generation.
//!
//! The same descriptor holds the gateway range for as long as the gateway's `Board` lives,
//! so a repair (which has the sessions let go) never lets a second gateway in.
//!
//! An operation nested in another of this process on the same board (a second `Board`
//! used inside the first one's operation) must not wait for a requested repair; the
//! protocol decides that from [`Backend::under_way`], which this backend answers from
//! `HELD_HERE`, one count per board for every `Board` of the process.
//!
//! Layer: sessions (the layer order is in `store/ARCHITECTURE.md`).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kanban_generations::{Backend, Maintenance, Word};

use crate::config::{Role, StoreConfig};
use crate::error::{Error, Result};
use crate::lock::{LockFile, Mode};
use crate::open::{self, Intent, Session};

pub(crate) use kanban_generations::Pool;

/// How long a session waits between two looks at a requested maintenance.
const PAUSE: Duration = Duration::from_millis(2);

/// Sessions of one board for one process.
pub(crate) struct Sessions {
    path: PathBuf,
    cfg: StoreConfig,
    intent: Cell<Intent>,
    /// The lock file, for the board's life: the shared range during each operation, the
    /// gateway range for a gateway, and the word.
    lock: LockFile,
    /// The process that opened it: a forked child never lets go of its parent's lock
    /// (the descriptor, hence the lock, is shared with the parent).
    pid: u32,
}

impl Sessions {
    /// Sessions on `path`; the first is opened with `intent` (then plain sessions). A
    /// gateway takes the gateway lock here, once: [`Error::GatewayRunning`] if another
    /// process has it, even while a repair has every session off the board.
    pub(crate) fn new(path: &Path, cfg: StoreConfig, intent: Intent) -> Result<Sessions> {
        let lock = LockFile::open(path)?;
        let gateway = cfg.role == Role::Gateway && intent != Intent::Inspect;
        if gateway && !upstream_locks(&cfg) {
            lock.lock_gateway(cfg.lock_timeout, cfg.clock.as_ref())?;
        }
        Ok(Sessions {
            lock,
            path: path.to_path_buf(),
            cfg,
            intent: Cell::new(intent),
            pid: std::process::id(),
        })
    }

    /// Whether this board holds the gateway lock (a gateway's, for its whole life).
    pub(crate) fn holds_gateway(&self) -> bool {
        self.lock.holds_gateway()
    }

    /// Removes the lock file if this process's first look at the board created it.
    pub(crate) fn remove_created_lock(&self) {
        self.lock.remove_if_created();
    }
}

/// Whether sessions take upstream's `flock` instead of our locks (a hazard: upstream had
/// no generations, no session lock of ours, no gateway lock).
fn upstream_locks(cfg: &StoreConfig) -> bool {
    cfg.hooks().skips_generations()
}

impl Backend for Sessions {
    type Handle = Session;
    type Error = Error;

    fn word(&self) -> Result<Word> {
        if upstream_locks(&self.cfg) {
            return Ok(Word {
                generation: 0,
                requested: false,
            });
        }
        self.lock.word()
    }

    fn open(&self) -> Result<Session> {
        let session = open::open(&self.path, &self.cfg, self.intent.get(), &self.lock)?;
        if self.intent.get() == Intent::CreateNew {
            self.intent.set(Intent::Session);
        }
        Ok(session)
    }

    fn hold(&self) -> Result<()> {
        if upstream_locks(&self.cfg) {
            return Ok(());
        }
        self.lock
            .lock_session(Mode::Shared, self.cfg.lock_timeout, self.cfg.clock.as_ref())?;
        count_here(&self.path, true);
        Ok(())
    }

    fn let_go(&self) {
        if self.pid == std::process::id() && self.lock.session_mode().is_some() {
            // Releasing a lock we hold on an open descriptor cannot fail; if it did, the
            // descriptor is unusable and the lock goes when it closes.
            let _ = self.lock.unlock_session();
            count_here(&self.path, false);
        }
    }

    fn under_way(&self) -> usize {
        held_here(&self.path)
    }

    fn pause(&self, tries: u32) -> Result<()> {
        let waited = PAUSE * tries;
        if waited >= self.cfg.lock_timeout {
            return Err(Error::Busy {
                path: self.path.clone(),
                what: "the board (a repair is running)",
                waited_ms: crate::millis::u64_ms(waited),
            });
        }
        self.cfg.clock.sleep(PAUSE);
        Ok(())
    }
}

/// Per board (canonical path), how many boards of this process are inside an operation
/// on it now, holding the shared session lock: [`Backend::under_way`] for every `Board` of
/// this process at once. The protocol defines the count; it lives here, process-wide,
/// because each `Board` is a pool of its own, with its own lock-file descriptor.
static HELD_HERE: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

fn held_here(path: &Path) -> usize {
    let held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
    held.iter().find(|(p, _)| p == path).map_or(0, |(_, n)| *n)
}

/// Counts an operation of this process on `path` in (`entered`) or out.
fn count_here(path: &Path, entered: bool) {
    let mut held = HELD_HERE.lock().unwrap_or_else(|e| e.into_inner());
    match held.iter().position(|(p, _)| p == path) {
        Some(i) if entered => held[i].1 += 1,
        Some(i) => {
            held[i].1 = held[i].1.saturating_sub(1);
            if held[i].1 == 0 {
                held.swap_remove(i);
            }
        }
        None if entered => held.push((path.to_path_buf(), 1)),
        None => {}
    }
}

/// The maintenance side: our lock file's word and exclusive range.
pub(crate) struct Maintainer<'a> {
    pub(crate) path: &'a Path,
    pub(crate) cfg: &'a StoreConfig,
    pub(crate) lock: LockFile,
}

impl Maintainer<'_> {
    /// A lock that could not be had in time, told as [`Error::MaintenanceBusy`] with the
    /// holder noted in the lock file.
    fn busy_as_maintenance(&self, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Busy { waited_ms, .. }) => Err(Error::MaintenanceBusy {
                path: self.path.to_path_buf(),
                holder: self.lock.holder()?,
                waited_ms,
            }),
            other => other,
        }
    }
}

impl Maintenance for Maintainer<'_> {
    type Exclusive = LockFile;
    type Error = Error;

    fn word(&self) -> Result<Word> {
        self.lock.word()
    }

    fn request(&self) -> Result<()> {
        let requested = self
            .lock
            .request(self.cfg.lock_timeout, self.cfg.clock.as_ref());
        self.busy_as_maintenance(requested)
    }

    fn finish(&self, generation: Option<u64>) -> Result<()> {
        self.lock.finish(generation)
    }

    fn lock_exclusive(&self) -> Result<LockFile> {
        let exclusive = LockFile::open(self.path)?;
        let locked = exclusive.lock_session(
            Mode::Exclusive,
            self.cfg.lock_timeout,
            self.cfg.clock.as_ref(),
        );
        self.busy_as_maintenance(locked)?;
        exclusive.note_holder(self.cfg.clock.now_ms())?;
        Ok(exclusive)
    }
}
