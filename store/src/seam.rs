//! Ground layer: the hook interface through which a hazard changes the store ([`Hooks`]).
//!
//! The fault harness needs the upstream mistakes back, one switch at a time, to show that
//! each one really breaks a board. Rather than `cfg` blocks across opening, connecting,
//! writing and checking, the store calls these hooks at the few points a hazard may change,
//! and every hook's default is what the hardened store does. The one implementation that
//! changes anything is `hazards.rs`'s, for the configuration's hazard set, behind the
//! `hazards` feature; `StoreConfig::hooks` installs it, or `()`, whose hooks are the
//! defaults. So a build without the feature has no hazard code at all, only the defaults.
//!
//! The hooks, by where the store calls them:
//! - the board's place (`place.rs`): [`Hooks::raw_siblings`];
//! - the session lock and the generations (`open.rs`, `generation.rs`):
//!   [`Hooks::upstream_init`], [`Hooks::skips_generations`];
//! - the connect step (`open.rs`): [`Hooks::before_connect`], [`Hooks::on_connect`],
//!   [`Hooks::connect_target`], [`Hooks::allows_hard_links`], [`Hooks::configure`], [`Hooks::after_connect`],
//!   [`Hooks::connects_per_operation`], [`Hooks::journal_mode`], [`Hooks::synchronous`];
//! - the write path (`board.rs`): [`Hooks::after_commit`], [`Hooks::on_write_error`],
//!   [`Hooks::records_request_ids`], [`Hooks::allows_use_across_fork`];
//! - the owner's checkpoint (`board.rs`): [`Hooks::syncs_checkpoints`];
//! - the check (`board.rs`): [`Hooks::for_inspection`], [`Hooks::before_check`],
//!   [`Hooks::after_check`];
//! - the store's own renames, links and removes (`copy.rs` `Namespace`, for quarantine
//!   and online copies): [`Hooks::syncs_folders`].

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::config::StoreConfig;
use crate::error::{Error, Result};

/// What the store lets a hazard change. Every default is the hardened store's behaviour.
pub(crate) trait Hooks {
    /// The board's siblings come from the path as given, not its canonical form.
    fn raw_siblings(&self) -> bool {
        false
    }

    /// Upstream's init lock instead of the store's own (R3): `Some`, holding what to drop
    /// once the board is initialised (nothing on a process's later opens); `None`: the
    /// store's locks.
    fn upstream_init(
        &self,
        _path: &Path,
        _cfg: &StoreConfig,
    ) -> Result<Option<Option<std::fs::File>>> {
        Ok(None)
    }

    /// Sessions skip the connection generations (and never let go for a maintenance).
    fn skips_generations(&self) -> bool {
        false
    }

    /// After the session lock, before the session's first connection.
    fn before_connect(&self, _path: &Path, _cfg: &StoreConfig) {}

    /// At the start of every connect.
    fn on_connect(&self, _path: &Path, _cfg: &StoreConfig) {}

    /// A board file with several names (hard links) is not refused.
    fn allows_hard_links(&self) -> bool {
        false
    }

    /// Another name to open the board by (`None`: its own path).
    fn connect_target(&self, _path: &Path, _cfg: &StoreConfig) -> Option<PathBuf> {
        None
    }

    /// Pragmas set after the hardened ones, on every connection.
    fn configure(&self, _conn: &Connection, _cfg: &StoreConfig) -> rusqlite::Result<()> {
        Ok(())
    }

    /// After the session's connections are made.
    fn after_connect(&self, _path: &Path, _cfg: &StoreConfig, _conn: &Connection) -> Result<()> {
        Ok(())
    }

    /// A fresh connection for every operation instead of the session's own.
    fn connects_per_operation(&self) -> bool {
        false
    }

    /// The `synchronous` setting of every connection: `FULL`, so that SQLite fsyncs the WAL
    /// at every commit and an acknowledged commit survives a power cut.
    fn synchronous(&self) -> &'static str {
        "FULL"
    }

    /// The owner's checkpoint runs with the connection's own `synchronous` (FULL), so SQLite
    /// syncs the db after copying WAL frames into it and before the WAL may start over;
    /// `false`: with `synchronous=OFF` for the checkpoint only.
    fn syncs_checkpoints(&self) -> bool {
        true
    }

    /// The journal mode a board must be in (R4: WAL).
    fn journal_mode(&self) -> &'static str {
        "wal"
    }

    /// Carries into `look`, the configuration of a repair's first look at the board, what
    /// of this one decides which board that look finds.
    fn for_inspection(&self, _look: &mut StoreConfig) {}

    /// After every commit of a write transaction.
    fn after_commit(&self, _path: &Path) {}

    /// After a write failed with `err`: what to run on the session's connection, if anything.
    fn on_write_error(&self, _err: &Error) -> Option<fn(&Connection)> {
        None
    }

    /// The board records and looks up request ids (at most once per id).
    fn records_request_ids(&self) -> bool {
        true
    }

    /// A session may be used in a process other than the one that opened it (a fork).
    fn allows_use_across_fork(&self) -> bool {
        false
    }

    /// The store fsyncs a folder after its own renames, links and removes in it (so a
    /// quarantine copy or a backup it reported made survives a power cut).
    fn syncs_folders(&self) -> bool {
        true
    }

    /// Before an explicit check.
    fn before_check(&self, _path: &Path, _cfg: &StoreConfig) {}

    /// After an explicit check that found structural damage (`corrupt`) or not.
    fn after_check(&self, _path: &Path, _cfg: &StoreConfig, _corrupt: bool) -> Result<()> {
        Ok(())
    }
}

/// No hooks: the hardened store.
impl Hooks for () {}
