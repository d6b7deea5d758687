//! Connection generations on a real board: the [`kanban_generations`] protocol over our
//! lock file and SQLite sessions.
//!
//! A [`Board`](crate::Board) keeps its session (connections + shared lock) in a
//! [`Pool`]; every operation checks it out first, which costs one 8-byte `pread` of the
//! lock file. When a repair asks for the board, the session is dropped between two
//! operations and reopened once the repair has published the next generation.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kanban_generations::{Backend, Maintenance, Word};

use crate::config::StoreConfig;
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
    /// A descriptor of the lock file that holds no lock: it only reads the word.
    watch: LockFile,
}

impl Sessions {
    /// Sessions on `path`; the first is opened with `intent` (then plain sessions).
    pub(crate) fn new(path: &Path, cfg: StoreConfig, intent: Intent) -> Result<Sessions> {
        Ok(Sessions {
            watch: LockFile::open(path)?,
            path: path.to_path_buf(),
            cfg,
            intent: Cell::new(intent),
        })
    }

    /// Removes the lock file if this process's first look at the board created it.
    pub(crate) fn remove_created_lock(&self) {
        self.watch.remove_if_created();
    }
}

/// Sessions open in this process, per board: a session that waits for a repair while
/// another session of its process still holds the board would wait for itself.
static OPEN_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Whether a session of this process is open on `path`.
pub(crate) fn open_here(path: &Path) -> bool {
    OPEN_HERE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p == path)
}

/// A session, counted in [`OPEN_HERE`] while it lives.
pub(crate) struct Counted {
    session: Session,
    path: PathBuf,
}

impl Counted {
    fn new(session: Session, path: &Path) -> Counted {
        OPEN_HERE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
        Counted {
            session,
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = OPEN_HERE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().position(|p| *p == self.path) {
            open.swap_remove(i);
        }
    }
}

impl std::ops::Deref for Counted {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl std::ops::DerefMut for Counted {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

impl Backend for Sessions {
    type Handle = Counted;
    type Error = Error;

    fn word(&self) -> Result<Word> {
        #[cfg(feature = "hazards")]
        if crate::hazards::ignores_generations(&self.cfg) {
            return Ok(Word {
                generation: 0,
                requested: false,
            });
        }
        self.watch.word()
    }

    fn open(&self) -> Result<Counted> {
        let session = open::open(&self.path, &self.cfg, self.intent.get())?;
        if self.intent.get() == Intent::CreateNew {
            self.intent.set(Intent::Session);
        }
        Ok(Counted::new(session, &self.path))
    }

    fn pause(&self, tries: u32) -> Result<()> {
        if open_here(&self.path) {
            // Let the caller go on to its other sessions, which let go in turn.
            return Err(Error::Busy {
                path: self.path.clone(),
                what: "the board (a repair is running; another session of this process still holds it)",
                waited_ms: 0,
            });
        }
        let waited = PAUSE * tries;
        if waited >= self.cfg.lock_timeout {
            return Err(Error::Busy {
                path: self.path.clone(),
                what: "the board (a repair is running)",
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            });
        }
        self.cfg.clock.sleep(PAUSE);
        Ok(())
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
        let mut exclusive = LockFile::open(self.path)?;
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
