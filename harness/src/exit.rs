//! How a worker process ends: the exit codes its supervisor reads from `waitpid`.
//!
//! They sit at the bottom of the layers because both ends of a worker use them: the worker
//! (and its token, which gives up with [`EXIT_SETUP`] when the supervisor's end of its
//! socket is gone) exits with them, and the supervisor counts restarts and panics by
//! them.

/// The worker finished (asked to stop).
pub const EXIT_OK: i32 = 0;
/// The worker panicked.
pub const EXIT_PANIC: i32 = 70;
/// The worker could not start (board refused to open, ledger unwritable).
pub const EXIT_SETUP: i32 = 71;
