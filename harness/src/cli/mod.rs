//! The commands of `kanban-harness`, one module each, and what several of them share (the
//! scenarios and seeds to run, and running them over the jobs). `main.rs` holds the
//! command line itself and hands each command to its module.

pub(crate) mod controls;
pub(crate) mod execute;
pub(crate) mod list;
pub(crate) mod matrix;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod scenarios;
pub(crate) mod shrink;
pub(crate) mod verify;
