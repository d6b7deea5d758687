//! The store's integration tests, one module a file, built as one test binary (as ripgrep
//! does): one link instead of fifteen, each linking the store, SQLite and the test deps
//! again.
//!
//! `Cargo.toml` sets `autotests = false`, so cargo does not also build each file here as a
//! binary of its own: a new test file is run only once it has its `mod` line below. Run
//! one module with `cargo test -p kanban-store --test main <module>::`. Tests that start a
//! child copy of this binary name their entry test by its full name, `<module>::<fn>` (see
//! `child`), and insta names snapshots `main__<module>__<name>.snap`.

mod child;
mod common;

mod bad_input;
mod cli;
mod file_changes;
#[cfg(feature = "hazards")]
mod hazards;
mod idle;
mod layout;
mod liveness;
mod locks;
mod model;
mod policy;
mod protocol;
mod quarantine;
mod repair;
mod rules;
mod single_writer;
#[cfg(feature = "hazards")]
mod upstream_bug;
