//! A hardened SQLite (WAL) kanban board store that several processes share safely.
//!
//! Upstream, a gateway and a dashboard process opened one board database and corrupted it
//! within minutes (`wrong # of entries in index idx_events_run`). The root cause was not
//! SQLite: the code opened and closed the live database files itself, and on Linux `close()`
//! drops every POSIX lock the process holds on a file, so SQLite's locks vanished under its
//! feet. Its "health guard" made it worse: full checks on every connect and unbounded raw
//! copies of the files. This crate is the same board, built so that cannot happen:
//!
//! - **R1** `version.rs`: refuse SQLite builds with the WAL-reset bug.
//! - **R2** never touch `db`/`-wal`/`-shm` outside SQLite (clippy enforces it; see
//!   `store/clippy.toml`); `header.rs` reads the header through SQLite's VFS.
//! - **R3** `lock.rs`: our own OFD lock beside the board, shared for sessions, exclusive for
//!   maintenance.
//! - **R4** [`open`](Board::open): WAL is set once, at creation or upgrade, under that lock.
//! - **R5** [`Board::transaction`]: writes are `BEGIN IMMEDIATE` with a busy timeout.
//! - **R6** [`Board::checkpoint`]: one checkpoint owner, its result reported.
//! - **R7** opening reads the header and the schema only; [`Board::check`] is explicit.
//! - **R8** [`Error`]: typed errors naming the path; damaged files are left as they were;
//!   [`Board::quarantine`] keeps content-addressed, capped copies.
//! - **R10** [`Role`]: gateway, dashboard, worker.
//!
//! Data flows: [`StoreConfig`] → `open` (lock, inspect, maintain, connect) → [`Board`] →
//! [`Txn`] (writes) and `reads` → [`Board::check`] / [`Board::info`] / [`quarantine`].
//!
//! `store/ARCHITECTURE.md` states the guarantees and walks the write path step by step.
//!
//! # Example
//!
//! Create a board (or open it, if it exists), write, read:
//!
//! ```
//! use kanban_store::{Board, NewTask, Role, StoreConfig, TaskStatus};
//!
//! # fn main() -> kanban_store::Result<()> {
//! let dir = tempfile::tempdir().expect("a temporary folder");
//! let db = dir.path().join("kanban.db");
//!
//! let mut board = Board::open_with(&db, StoreConfig::new(Role::Gateway).creating())?;
//! let id = board.create_task(&NewTask {
//!     title: "write the docs".into(),
//!     ..NewTask::default()
//! })?;
//!
//! assert_eq!(board.get_task(id)?.map(|t| t.status), Some(TaskStatus::Todo));
//! assert_eq!(board.recompute_ready()?, vec![id]); // no parents: ready to be claimed
//!
//! let task = board.get_task(id)?.expect("the task just created");
//! assert_eq!(task.title, "write the docs");
//! assert_eq!(task.status, TaskStatus::Ready);
//! assert_eq!(board.list_board()?.len(), 1);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

// Private: each holds a piece of a protocol that only the store may drive (taking the
// session lock outside the generation protocol, migrating a live board, reading a header
// around SQLite...). What a user needs is re-exported below.
mod board;
mod check;
mod config;
mod copy;
mod damage_policy;
mod error;
mod filesystem;
mod generation;
mod header;
mod info;
mod lock;
mod millis;
mod open;
mod place;
mod policy;
pub mod quarantine;
mod reads;
mod repair;
mod requests;
mod salvage;
mod schema;
mod seam;
mod selftest;
pub mod single_writer;
mod txn;
mod types;
mod version;
mod wal_size;

#[cfg(feature = "hazards")]
mod hazard;
#[cfg(feature = "hazards")]
pub mod hazards;

pub use board::Board;
pub use check::{CheckLevel, CheckReport, run as check_connection};
pub use config::{
    Clock, FileChange, FilesObserver, Phase, PhaseObserver, Role, StoreConfig, SystemClock,
};
pub use damage_policy::{DamagePolicy, OnDamage};
pub use error::{Error, ErrorKind, Result, UnknownErrorKind};
pub use info::BoardInfo;
pub use lock::lock_path;
pub use place::{shm_path, wal_path};
pub use policy::StartCheck;
pub use repair::{RepairAction, RepairReport, Salvaged, Scope, repair, repair_within};
pub use schema::VERSION as SCHEMA_VERSION;
pub use selftest::run as selftest;
pub use single_writer::{RequestId, Write, WriteServer, socket_path};
pub use txn::Txn;
pub use types::Quarantined;
pub use types::{
    CheckpointReport, Claim, Event, EventId, NewTask, RunId, RunOutcome, Task, TaskId, TaskStatus,
};
