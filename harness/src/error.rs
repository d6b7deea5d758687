//! The harness's one error type: what stops a run before any seed is judged.
//!
//! A failing *seed* is not an error: it is a finding, reported in the summary and the JSON
//! report. Errors are for bad input (a scenario that does not parse, an unknown variant)
//! and for the machine refusing (no fork, no temporary folder).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias for the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops the harness itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file could not be read.
    #[error("{}: {source}", path.display())]
    ReadScenario {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A scenario file is not valid (syntax, unknown key, bad value).
    #[error("{}: {message}", path.display())]
    Scenario {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A variant name that is not `hardened`, `naive` or `hazard:<name>`.
    #[error("unknown variant {0:?} (hardened, naive, or hazard:<name> with one of: {1})")]
    Variant(String, String),
    /// Bad command-line usage the argument parser cannot see (e.g. a bad `--shard`).
    #[error("{0}")]
    Usage(String),
    /// The operating system refused (fork, pipe, temporary folder, ...).
    #[error("{what}: {source}")]
    System {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store refused to set up a board for a seed.
    #[error("setting up the board: {0}")]
    Store(#[from] kanban_store::Error),
    /// The page-cache model: an I/O call on its journal, a board file or a kept link failed.
    #[error("page-cache model: {what} {}: {source}", path.display())]
    PageCacheIo {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The page-cache model: a record does not fit its frame (a name over 64 KiB, bytes
    /// over 4 GiB).
    #[error("page-cache model: record too large: {0}")]
    RecordTooLarge(String),
    /// The page-cache model: an append wrote only part of a record (a full disk, or a
    /// signal): the journal holds a torn record, which the reader skips, and the change
    /// must not be made.
    #[error("page-cache model: journal append wrote {wrote} of {len} bytes")]
    ShortAppend {
        /// Bytes written.
        wrote: usize,
        /// Bytes in the record.
        len: usize,
    },
    /// A power-cut mode name that is not one of `pagecache::Mode::ALL`'s.
    #[error("unknown power-cut mode {0:?} (lose-unsynced, keep-some, torn, garbage)")]
    PowerCutMode(String),
    /// SQLite refused to register the I/O shim (its result code).
    #[error("registering the I/O shim: SQLite error {0}")]
    ShimRegistration(i32),
    /// Job processes that died, exited non-zero, or ended without reporting every seed
    /// they owned: those seeds were never judged, so the run has no verdict.
    #[error("{}", join(.0))]
    Jobs(Vec<JobFailure>),
    /// Runs that judged fewer seeds than were planned for them (or whose seeds could not
    /// run), one line per run: a run with seeds missing has no verdict.
    #[error("seeds planned but not judged: {}", .0.join("; "))]
    SeedsNotJudged(Vec<String>),
    /// Deterministic mode: a worker held the token for the wall-clock cap (`--stuck-ms`)
    /// without reaching a scheduling point. Wall time is no part of a verdict, so this is
    /// no finding: the seed could not be run.
    #[error(
        "worker {worker} ({kind}) held the token for {waited:?} without reaching a scheduling point (blocked outside the scheduler); the seed could not be run; the trace's last lines:\n{tail}"
    )]
    Blocked {
        /// The worker's slot.
        worker: usize,
        /// Its kind.
        kind: String,
        /// The wall-clock cap it reached.
        waited: Duration,
        /// The trace's last lines.
        tail: String,
    },
}

/// A job process of `jobs::run` that did not end cleanly with every item reported.
#[derive(Debug)]
pub struct JobFailure {
    /// The job's index (job `j` owns the items `i` with `i % jobs == j`).
    pub job: usize,
    /// How it ended: `exited with 70`, `was killed by SIGKILL`, ...
    pub status: String,
    /// The items it owned and never reported, as `scenario variant seed N`.
    pub missing: Vec<String>,
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (job, status) = (self.job, &self.status);
        if self.missing.is_empty() {
            write!(f, "job {job} {status} after reporting all its seeds")
        } else {
            write!(
                f,
                "job {job} {status} without reporting {} of its seeds: {}",
                self.missing.len(),
                self.missing.join(", ")
            )
        }
    }
}

fn join(failures: &[JobFailure]) -> String {
    let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

impl Error {
    /// An OS error while doing `what`.
    pub fn system(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The page-cache model's I/O error while doing `what` to `path`.
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::PageCacheIo {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::system("system call", std::io::Error::from(e))
    }
}
