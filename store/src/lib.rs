//! A hardened SQLite (WAL) kanban board store that several processes share safely.
//!
//! Upstream, a gateway and a dashboard process opened one board database and corrupted it
//! within minutes (`wrong # of entries in index idx_events_run`). The root cause was not
//! SQLite: the code opened and closed the live database files itself, and on Linux `close()`
//! drops every POSIX lock the process holds on a file, so SQLite's locks vanished under its
//! feet. Its "health guard" made it worse: full checks on every connect and unbounded raw
//! copies of the files. This crate is the same board, built so that cannot happen:
//!
//! - **R1** [`version`]: refuse SQLite builds with the WAL-reset bug.
//! - **R2** never touch `db`/`-wal`/`-shm` outside SQLite (clippy enforces it; see
//!   `store/clippy.toml`); [`header`] reads the header through SQLite's VFS.
//! - **R3** [`lock`]: our own OFD lock beside the board, shared for sessions, exclusive for
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
//! [`Txn`] (writes) and `reads` → [`check`] / [`info`] / [`quarantine`].
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

pub mod check;
mod config;
mod error;
pub mod filesystem;
mod generation;
pub mod header;
pub mod info;
pub mod lock;
mod open;
pub mod place;
pub mod policy;
pub mod quarantine;
mod reads;
pub mod repair;
mod salvage;
pub mod schema;
pub mod selftest;
pub mod single_writer;
mod txn;
mod types;
pub mod version;

mod board;
#[cfg(feature = "hazards")]
pub mod hazards;

pub use board::Board;
pub use check::{CheckLevel, CheckReport};
pub use config::{Clock, Phase, PhaseObserver, Role, StoreConfig, SystemClock};
pub use error::{Error, Result};
pub use info::BoardInfo;
pub use policy::{DamagePolicy, OnDamage, StartCheck};
pub use quarantine::Quarantined;
pub use txn::Txn;
pub use types::{
    CheckpointReport, Claim, Event, EventId, NewTask, RunId, RunOutcome, Task, TaskId, TaskStatus,
};
