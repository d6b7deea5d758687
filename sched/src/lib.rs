//! The core of deterministic scheduling across processes, as plain state: no I/O, no
//! SQLite, no processes.
//!
//! In deterministic mode the harness lets exactly one worker process run at a time. Each
//! worker stops at every *scheduling point* (every file operation of SQLite through the
//! I/O shim, every sleep, every lock attempt of the store) and waits for the token; the
//! supervisor hands the token to the worker this crate's [`Scheduler`] picks. Because the
//! pick, the logical clock and the wake-ups depend only on the seed and on the sequence of
//! points, the same seed gives the same interleaving, across real processes.
//!
//! The supervisor drives a [`Scheduler`] with what it hears from the workers (a point, a
//! sleep, an exit) and asks it who runs next. The protocol's safety (one runner at a
//! time, no lost wake-up, a dead unit releases the token) is checked here, without the
//! harness: with `loom` (`RUSTFLAGS="--cfg loom" cargo test -p kanban-sched --test loom`)
//! and with `shuttle` (`tests/shuttle.rs`), which is why this crate must not depend on
//! rusqlite.

#![deny(missing_docs)]

mod driver;
mod scheduler;
mod strategy;

pub use driver::{Event, Transport, step};
pub use scheduler::{Scheduler, State, Unit};
pub use strategy::Strategy;
