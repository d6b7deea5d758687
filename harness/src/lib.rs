//! A multi-process fault harness for the kanban store.
//!
//! It forks real gateway-, dashboard- and agent-like worker processes onto one board, kills
//! and stalls them at seeded moments (and inside store phases), and after every seeded run
//! checks `integrity_check`, the kanban invariants, and a ledger of acknowledged commits.
//!
//! The data flows as the modules are listed: a [`scenario`] file and a seed become a
//! [`plan`]; the [`supervisor`] forks [`worker`]s that write a [`ledger`], delivers the
//! plan's faults, stops everything, and hands the board and ledgers to [`check`] (and its
//! quarantine copies to [`copies`]); the
//! [`report`] gathers outcomes over seeds, run in parallel by [`jobs`]. The [`controls`]
//! are runs built so that each of the harness's figures and verdicts must come out a known
//! way: the proof that the verdicts can fail.
//!
//! The modules are layered, each using only its own layer and those below (the picture,
//! and the fault model module by module, are in `harness/ARCHITECTURE.md`): the ground
//! ([`error`], [`exit`], [`fault`], [`ledger`], [`scenario`]) → [`plan`] → delivery inside a
//! worker ([`shim`], [`token`], and the phase-kill alarm) → [`worker`] → one seed
//! ([`supervisor`], [`setup`], [`inject`], [`check`], [`copies`], [`work`]) → many seeds
//! ([`jobs`], [`report`], [`shrink`], [`matrix`], [`controls`]) → the command line.
#![deny(missing_docs)]

pub(crate) mod alarm;
pub mod check;
pub mod controls;
pub mod copies;
pub mod error;
pub mod exit;
pub mod fault;
pub mod inject;
pub mod jobs;
pub mod ledger;
pub mod matrix;
pub mod pagecache;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod shim;
pub mod shrink;
pub mod supervisor;
pub mod token;
pub mod work;
pub mod worker;

pub use error::{Error, Result};
