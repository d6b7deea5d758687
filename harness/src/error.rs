//! The harness's one error type: what stops a run before any seed is judged.
//!
//! A failing *seed* is not an error: it is a finding, reported in the summary and the JSON
//! report. Errors are for bad input (a scenario that does not parse, an unknown variant)
//! and for the machine refusing (no fork, no temporary folder).

use std::path::PathBuf;

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
}

impl Error {
    /// An OS error while doing `what`.
    pub fn system(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::System {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::system("system call", std::io::Error::from(e))
    }
}
