//! Connection generations on a real board: the [`kanban_generations`] protocol over our
//! lock file and SQLite sessions.
//!
//! A [`Board`](crate::Board) keeps its session (connections + shared lock) in a
//! [`Pool`]; every operation checks it out first, which costs one 8-byte `pread` of the
//! lock file. When a repair asks for the board, the session is dropped between two
//! operations and reopened once the repair has published the next generation.

use std::cell::Cell;
use std::path::{Path, PathBuf};
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
}

impl Backend for Sessions {
    type Handle = Session;
    type Error = Error;

    fn word(&self) -> Result<Word> {
        self.watch.word()
    }

    fn open(&self) -> Result<Session> {
        let session = open::open(&self.path, &self.cfg, self.intent.get())?;
        if self.intent.get() == Intent::CreateNew {
            self.intent.set(Intent::Session);
        }
        Ok(session)
    }

    fn pause(&self, tries: u32) -> Result<()> {
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

impl Maintenance for Maintainer<'_> {
    type Exclusive = LockFile;
    type Error = Error;

    fn word(&self) -> Result<Word> {
        self.lock.word()
    }

    fn publish(&self, word: Word) -> Result<()> {
        self.lock.publish(word)
    }

    fn lock_exclusive(&self) -> Result<LockFile> {
        let mut exclusive = LockFile::open(self.path)?;
        match exclusive.lock_session(
            Mode::Exclusive,
            self.cfg.lock_timeout,
            self.cfg.clock.as_ref(),
        ) {
            Ok(()) => {
                exclusive.note_holder(self.cfg.clock.now_ms())?;
                Ok(exclusive)
            }
            Err(Error::Busy { waited_ms, .. }) => Err(Error::MaintenanceBusy {
                path: self.path.to_path_buf(),
                holder: self.lock.holder()?,
                waited_ms,
            }),
            Err(e) => Err(e),
        }
    }
}
