//! Repair without losing data, safe while other processes use the board.
//!
//! The upstream operators' recovery was: stop both services, dump, reload, rename files by
//! hand, restart. Here one call does it with the services running:
//! 1. ask every session to let go and take the exclusive maintenance lock (the generation
//!    protocol, [`crate::generation`]): sessions finish their transaction, close, and wait;
//! 2. run the full check; a healthy board is left alone;
//! 3. damage confined to indexes is fixed in place with `REINDEX` (one transaction);
//! 4. anything else: keep a copy of the damaged board in quarantine (backup API,
//!    content-addressed, capped), rebuild what is readable into a new database in memory,
//!    table by table, row by row where a scan breaks, counting what could not be read;
//!    verify the rebuild with the full check; then copy it over the board with the backup
//!    API **in one step**, which is one write transaction on the board's WAL: a kill before
//!    its commit leaves the old board, after it the new one, never none and never a mix;
//! 4. publish the next generation and release the lock; sessions reopen once.
//!
//! Rerunning a repair after a kill finishes the job: it starts again from the check.
//! Nothing here renames, copies or deletes a database file.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::backup::Backup;

use crate::check::{self, CheckLevel, CheckReport};
use crate::config::{Phase, Role, StoreConfig, in_phase};
use crate::error::{Error, Result};
use crate::generation::Maintainer;
use crate::lock::LockFile;
use crate::open::{self, Access};
use crate::quarantine::{self, Quarantined};
use crate::reads::SqlResultExt;
use crate::schema;

/// What a repair did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairAction {
    /// The full check found nothing: nothing was changed.
    Healthy,
    /// The damage was confined to indexes: `REINDEX` fixed it in place.
    Reindexed,
    /// The board was rebuilt from what could be read.
    Rebuilt,
}

/// What one table's salvage saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Salvaged {
    /// The table.
    pub table: String,
    /// Rows copied into the rebuilt board.
    pub copied: u64,
    /// Rows that could not be read (or that pointed at rows that could not).
    pub lost: u64,
}

/// The outcome of [`repair`].
#[derive(Clone, Debug)]
pub struct RepairReport {
    /// What was done.
    pub action: RepairAction,
    /// The full check before the repair.
    pub before: CheckReport,
    /// The full check after it.
    pub after: CheckReport,
    /// Per table, for a rebuild.
    pub salvaged: Vec<Salvaged>,
    /// The copy of the damaged board kept, for a rebuild.
    pub quarantined: Option<Quarantined>,
}

/// Repairs the board at `path` (see the module docs). Refuses what is not a board with the
/// same typed errors as opening; gives [`Error::MaintenanceBusy`] when the board cannot be
/// had to itself within the configured lock timeout.
pub fn repair(path: &Path, cfg: &StoreConfig) -> Result<RepairReport> {
    // A file that is no board (or whose schema cannot be read) is refused untouched.
    drop(crate::Board::inspect(path)?);
    exclusively(path, cfg, || {
        in_phase(cfg.observer.as_ref(), Phase::Repair, || {
            under_lock(path, cfg)
        })
    })
}

/// Runs `f` with the board to itself: every session lets go at its next operation, and
/// reopens once `f` is done and the next generation is published.
pub(crate) fn exclusively<T>(
    path: &Path,
    cfg: &StoreConfig,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let lock = LockFile::open(path)?;
    let maintainer = Maintainer { path, cfg, lock };
    let result = kanban_generations::maintain(&maintainer, |_exclusive| f())?;
    maintainer.lock.clear_holder()?;
    result
}

/// The repair proper; the caller holds the exclusive maintenance lock.
fn under_lock(path: &Path, cfg: &StoreConfig) -> Result<RepairReport> {
    let mut owner = cfg.clone();
    owner.role = Role::Gateway;
    let mut conn = open::connect(path, &owner, Access::ReadWrite)?;
    let before = check::run(&conn, CheckLevel::Full);
    if before.is_ok() {
        return Ok(RepairReport {
            action: RepairAction::Healthy,
            after: before.clone(),
            before,
            salvaged: Vec::new(),
            quarantined: None,
        });
    }
    if index_only(&before) {
        conn.execute_batch("REINDEX").at(path)?;
        let after = check::run(&conn, CheckLevel::Full);
        if after.integrity.is_empty() {
            return Ok(RepairReport {
                action: RepairAction::Reindexed,
                before,
                after,
                salvaged: Vec::new(),
                quarantined: None,
            });
        }
    }
    let quarantined = in_phase(cfg.observer.as_ref(), Phase::Quarantine, || {
        quarantine::keep(&conn, path, cfg.quarantine_cap)
    })?;
    let (fresh, salvaged) = rebuild(&conn, path)?;
    let after = check::run(&fresh, CheckLevel::Full);
    if !after.integrity.is_empty() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the rebuilt board failed its check: {:?}", after.integrity),
        });
    }
    // One step: one write transaction on the board (see the module docs).
    Backup::new(&fresh, &mut conn)
        .and_then(|b| b.step(-1).map(|_| ()))
        .at(path)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .at(path)?;
    Ok(RepairReport {
        action: RepairAction::Rebuilt,
        before,
        after,
        salvaged,
        quarantined: Some(quarantined),
    })
}

/// Whether every finding of the check is about an index (its entries), not a table.
fn index_only(report: &CheckReport) -> bool {
    report.foreign_keys.is_empty()
        && !report.integrity.is_empty()
        && report.integrity.iter().all(|line| {
            line.starts_with("wrong # of entries in index")
                || (line.starts_with("row ") && line.contains(" missing from index "))
                || line.starts_with("non-unique entry in index")
        })
}

/// Copies what can be read of `old` into a new in-memory board, table by table.
fn rebuild(old: &Connection, path: &Path) -> Result<(Connection, Vec<Salvaged>)> {
    let mut fresh = Connection::open_in_memory().at(path)?;
    let page_size: i64 = old
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .at(path)?;
    fresh.pragma_update(None, "page_size", page_size).at(path)?;
    schema::migrate(&mut fresh, 0).at(path)?;
    fresh.pragma_update(None, "foreign_keys", false).at(path)?;
    let tables: Vec<(String, bool)> = fresh
        .prepare(
            "SELECT name, sql LIKE '%WITHOUT ROWID%' FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        )
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .at(path)?;
    let mut salvaged = Vec::new();
    for (table, without_rowid) in tables {
        salvaged.push(salvage(old, &fresh, &table, without_rowid, path)?);
    }
    // Rows whose parent was lost cannot stay (foreign keys); they count as lost too.
    let orphans: Vec<(String, i64)> = fresh
        .prepare("SELECT \"table\", rowid FROM pragma_foreign_key_check WHERE rowid IS NOT NULL")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .at(path)?;
    for (table, rowid) in orphans {
        fresh
            .execute(
                &format!("DELETE FROM \"{table}\" WHERE rowid = ?1"),
                [rowid],
            )
            .at(path)?;
        if let Some(s) = salvaged.iter_mut().find(|s| s.table == table) {
            s.copied -= 1;
            s.lost += 1;
        }
    }
    Ok((fresh, salvaged))
}

/// Copies one table: a scan while it reads, then row by row past what breaks it.
fn salvage(
    old: &Connection,
    fresh: &Connection,
    table: &str,
    without_rowid: bool,
    path: &Path,
) -> Result<Salvaged> {
    let columns: Vec<String> = fresh
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .at(path)?;
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let marks = vec!["?"; columns.len() + usize::from(!without_rowid)].join(", ");
    let (select, insert) = if without_rowid {
        (
            format!("SELECT {list} FROM \"{table}\""),
            format!("INSERT OR IGNORE INTO \"{table}\" ({list}) VALUES ({marks})"),
        )
    } else {
        (
            format!("SELECT rowid, {list} FROM \"{table}\" ORDER BY rowid"),
            format!("INSERT OR IGNORE INTO \"{table}\" (rowid, {list}) VALUES ({marks})"),
        )
    };
    let width = columns.len() + usize::from(!without_rowid);
    let mut ins = fresh.prepare(&insert).at(path)?;
    let mut copy = |row: &rusqlite::Row<'_>| -> rusqlite::Result<i64> {
        let values: Vec<rusqlite::types::Value> = (0..width)
            .map(|i| row.get(i))
            .collect::<rusqlite::Result<_>>()?;
        ins.execute(rusqlite::params_from_iter(values.iter()))?;
        if without_rowid { Ok(0) } else { row.get(0) }
    };
    let mut out = Salvaged {
        table: table.to_string(),
        copied: 0,
        lost: 0,
    };
    let mut last = None;
    let broke = (|| -> rusqlite::Result<()> {
        let mut stmt = old.prepare(&select)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            last = Some(copy(row)?);
            out.copied += 1;
        }
        Ok(())
    })()
    .is_err();
    if broke && !without_rowid {
        // Past the break, one row at a time up to the largest rowid the table admits to.
        let max: Option<i64> = old
            .query_row(&format!("SELECT max(rowid) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap_or(None);
        let from = last.map_or(1, |l| l + 1);
        let one = format!("SELECT rowid, {list} FROM \"{table}\" WHERE rowid = ?1");
        for rowid in from..=max.unwrap_or(from - 1) {
            let got = old
                .prepare_cached(&one)
                .and_then(|mut s| s.query_row([rowid], |row| copy(row)).map(Some))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                });
            match got {
                Ok(Some(_)) => out.copied += 1,
                Ok(None) => {}
                Err(_) => out.lost += 1,
            }
        }
    } else if broke {
        out.lost += 1;
    }
    Ok(out)
}
