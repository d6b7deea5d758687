//! Repair without losing data, safe while other processes use the board.
//!
//! The upstream operators' recovery was: stop both services, dump, reload, rename files by
//! hand, restart. Here one call does it with the services running:
//! 1. ask every session to let go and take the exclusive maintenance lock (the generation
//!    protocol, `generation.rs`): idle sessions hold nothing, operations under way
//!    finish, new ones wait;
//! 2. run the full check; a healthy board is left alone;
//! 3. damage confined to indexes is fixed in place with `REINDEX` (one transaction), after
//!    counting as lost the rows an index lists that its table no longer holds;
//! 4. anything else: keep a copy of the damaged board in quarantine (backup API,
//!    content-addressed, capped), rebuild what is readable into a new database in memory,
//!    table by table, row by row where a scan breaks, counting what could not be read;
//!    verify the rebuild with the full check; then copy it over the board with the backup
//!    API **in one step**, which is one write transaction on the board's WAL: a kill before
//!    its commit leaves the old board, after it the new one, never none and never a mix;
//!    a step that could not take the board's write lock is `Busy` (nothing changed), and
//!    the board itself is checked again before the repair says `Rebuilt`;
//! 4. publish the next generation and release the lock; sessions reopen once.
//!
//! Rerunning a repair after a kill finishes the job: it starts again from the check.
//! Nothing here renames, copies or deletes a database file.
//!
//! Layer: maintenance (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::check::{self, CheckLevel, CheckReport, index_only};
use crate::config::{Phase, Role, StoreConfig, in_phase};
use crate::error::{Error, Result, SqlResultExt};
use crate::generation::Maintainer;
use crate::lock::LockFile;
use crate::open::{self, Access};
use crate::quarantine;
use crate::salvage;
use crate::schema;
use crate::types::Quarantined;

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
    /// Rows that could not be read, or that required a row that could not.
    pub lost: u64,
    /// Rows kept but changed to fit what was lost (a reference to a lost row cleared, a
    /// task whose run was lost back to `ready`, a cursor moved back).
    pub changed: u64,
    /// Rows the repair wrote back (the `claimed` event of a run that was kept).
    pub added: u64,
    /// More rows than `lost` may be gone: the table broke, and no index of it could be
    /// read whole to count its rows (a table without rowids whose index is damaged too).
    pub uncounted: bool,
    /// Rowids looked up one by one, between the two scans of a broken table (at most as
    /// many as a table of the file's size can hold rows, and those the indexes list).
    pub probed: u64,
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
    /// Per table, for a rebuild; for a `REINDEX`, the tables whose indexes listed rows the
    /// table no longer held (counted as `lost`; `copied` is the rows the table holds).
    pub salvaged: Vec<Salvaged>,
    /// The copy of the damaged board kept, for a rebuild (never
    /// [`Quarantined::CapReached`]: a rebuild makes room, see [`crate::quarantine`]).
    pub quarantined: Option<Quarantined>,
}

/// Repairs the board at `path` (see the module docs). Refuses what is not a board with the
/// same typed errors as opening; gives [`Error::MaintenanceBusy`] when the board cannot be
/// had to itself within the configured lock timeout.
pub fn repair(path: &Path, cfg: &StoreConfig) -> Result<RepairReport> {
    repair_within(path, cfg, Scope::Rebuild)
}

/// How far a repair may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only `REINDEX`, which loses nothing; damage beyond indexes is [`Error::Corrupt`].
    Indexes,
    /// A rebuild too, when `REINDEX` is not enough.
    Rebuild,
}

/// [`repair`], going no further than `scope`: with [`Scope::Indexes`], damage beyond
/// indexes is [`Error::Corrupt`] and the board is left as it was (what the gateway's
/// default policy uses, and `kanban-db repair --indexes-only`).
pub fn repair_within(given: &Path, cfg: &StoreConfig, scope: Scope) -> Result<RepairReport> {
    // The canonical path, so the exclusive lock is the one sessions opened by any name hold.
    let path = &crate::place::board(given, cfg)?;
    // A file that is no board (or whose schema cannot be read) is refused untouched.
    drop(crate::Board::inspect_for(path, cfg)?);
    exclusively(path, cfg, || {
        in_phase(cfg.observer.as_ref(), Phase::Repair, || {
            under_lock(path, cfg, scope)
        })
    })
}

/// Runs `f` with the board to itself: sessions hold the shared lock only during an
/// operation, so `f` waits for the operations under way, not for idle sessions; each
/// session reopens its connections at its first operation after the next generation is
/// published. A gateway keeps the gateway lock throughout.
pub(crate) fn exclusively<T>(
    path: &Path,
    cfg: &StoreConfig,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let lock = LockFile::open(path)?;
    let maintainer = Maintainer { path, cfg, lock };
    kanban_generations::maintain(&maintainer, |exclusive| {
        let out = f();
        // Cleared whatever `f` gave, while the lock is still ours: a later maintenance
        // notes itself only once it holds the lock, so this cannot erase its note. (A
        // killed maintenance clears nothing: `LockFile::holder` ignores its note.)
        let cleared = exclusive.clear_holder();
        out.and_then(|value| cleared.map(|()| value))
    })?
}

/// The repair proper; the caller holds the exclusive maintenance lock.
fn under_lock(path: &Path, cfg: &StoreConfig, scope: Scope) -> Result<RepairReport> {
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
    // Why `REINDEX` was not enough, when it was tried.
    let mut reindex_failed = String::new();
    if index_only(&before) {
        // A failed `REINDEX` (a UNIQUE index over two rows with one key: `non-unique entry
        // in index`) changed nothing, and is damage beyond indexes.
        match reindex(&conn) {
            Ok(salvaged) => {
                let after = check::run(&conn, CheckLevel::Full);
                if after.integrity.is_empty() {
                    return Ok(RepairReport {
                        action: RepairAction::Reindexed,
                        before,
                        after,
                        salvaged,
                        quarantined: None,
                    });
                }
            }
            Err(e) => reindex_failed = format!(" (the indexes could not be rebuilt: {e})"),
        }
    }
    if scope == Scope::Indexes {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "damage beyond indexes, left for `kanban-db repair`: {}{reindex_failed}",
                before.findings().next().unwrap_or_default()
            ),
        });
    }
    let quarantined = in_phase(cfg.observer.as_ref(), Phase::Quarantine, || {
        // Never rebuild without a copy: at the cap, the oldest copies make room.
        let ns = crate::copy::Namespace::of(cfg);
        quarantine::keep(
            &conn,
            path,
            cfg.quarantine_cap,
            quarantine::AtCap::Evict,
            &ns,
        )
    })?;
    let (fresh, salvaged) = rebuild(&conn, path)?;
    sound(&fresh, path, "the rebuilt board")?;
    copy_over(&fresh, &mut conn, path, cfg)?;
    // The board itself, after the copy: what the report calls `after`.
    let after = sound(&conn, path, "the board after the rebuild's copy")?;
    Ok(RepairReport {
        action: RepairAction::Rebuilt,
        before,
        after,
        salvaged,
        quarantined: Some(quarantined),
    })
}

/// The full check of `conn`, if SQLite finds no damage; else [`Error::Corrupt`], saying
/// `what` failed it.
fn sound(conn: &Connection, path: &Path, what: &str) -> Result<CheckReport> {
    let report = check::run(conn, CheckLevel::Full);
    if !report.integrity.is_empty() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("{what} failed its check: {:?}", report.integrity),
        });
    }
    Ok(report)
}

/// Copies the rebuilt board `fresh` over the board (`conn`) in one backup step: one write
/// transaction on the board (see the module docs). A step that could not finish (the
/// board's write lock held, past the busy timeout, by a connection our maintenance lock
/// does not see) changed nothing, and is [`Error::Busy`]; a board left with another page
/// count than the rebuild's was not copied over, and is [`Error::Corrupt`]. Then the WAL
/// is checkpointed into the main file.
fn copy_over(
    fresh: &Connection,
    conn: &mut Connection,
    path: &Path,
    cfg: &StoreConfig,
) -> Result<()> {
    let step = Backup::new(fresh, conn).and_then(|b| b.step(-1)).at(path)?;
    if step != StepResult::Done {
        return Err(Error::Busy {
            path: path.to_path_buf(),
            what: "the board's SQLite write lock, for the rebuild's copy over it",
            waited_ms: crate::millis::u64_ms(cfg.busy_timeout),
        });
    }
    let pages = |c: &Connection| c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0));
    let (want, got) = (pages(fresh).at(path)?, pages(conn).at(path)?);
    if want != got {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the rebuild's copy left {got} pages, the rebuild has {want}"),
        });
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .at(path)
}

/// The board's tables, in the order they were made, and whether each is `WITHOUT ROWID`.
fn tables(conn: &Connection) -> rusqlite::Result<Vec<(String, bool)>> {
    conn.prepare(
        "SELECT name, sql LIKE '%WITHOUT ROWID%' FROM sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// `REINDEX`, which rebuilds every index from its table, after counting what it would drop
/// without a trace: the rows an index lists that its table no longer holds (the split-brain
/// signature). Those are the tables' lost rows, one entry per table that lost any.
fn reindex(conn: &Connection) -> rusqlite::Result<Vec<Salvaged>> {
    let mut lost = Vec::new();
    for (table, without_rowid) in tables(conn)? {
        let key = salvage::key_of(conn, &table, without_rowid)?;
        let indexes = salvage::indexes_of(conn, &table, without_rowid)?;
        let gone = salvage::vanished(conn, &table, &key, &indexes)?;
        if gone > 0 {
            let kept: i64 = conn.query_row(
                &format!("SELECT count(*) FROM \"{table}\" NOT INDEXED"),
                [],
                |r| r.get(0),
            )?;
            lost.push(Salvaged {
                table,
                copied: kept as u64,
                lost: gone,
                changed: 0,
                added: 0,
                uncounted: false,
                probed: 0,
            });
        }
    }
    conn.execute_batch("REINDEX")?;
    Ok(lost)
}

/// Copies what can be read of `old` into a new in-memory board, table by table, then makes
/// it hold together ([`reconcile`]).
fn rebuild(old: &Connection, path: &Path) -> Result<(Connection, Vec<Salvaged>)> {
    let mut fresh = Connection::open_in_memory().at(path)?;
    let page_size: i64 = old
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .at(path)?;
    fresh.pragma_update(None, "page_size", page_size).at(path)?;
    schema::migrate(&mut fresh, 0).at(path)?;
    fresh.pragma_update(None, "foreign_keys", false).at(path)?;
    let pages: i64 = old
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .at(path)?;
    let max_rows = salvage::max_rows(pages as u64, page_size as u64);
    let mut salvaged = Vec::new();
    for (table, without_rowid) in &tables(&fresh).at(path)? {
        salvaged.push(salvage::salvage(old, &fresh, table, *without_rowid, max_rows).at(path)?);
    }
    reconcile(&fresh, &mut salvaged).at(path)?;
    Ok((fresh, salvaged))
}

/// Makes the rebuilt board hold together after rows were lost, counting per table:
/// - a reference that may be empty (a task's current run, an event's run) to a lost row is
///   cleared (`changed`); a row whose required parent is lost goes too (`lost`), until
///   nothing points at a lost row (one loss can orphan rows that orphan others);
/// - a running task whose run is lost goes back to `ready` (`changed`): it will be claimed
///   again, as after a crash of its agent;
/// - a run whose `claimed` event is lost gets one back (`added`), dated when the run began;
/// - a notifier cursor past the last event left is moved back to it (`changed`).
fn reconcile(fresh: &Connection, salvaged: &mut [Salvaged]) -> rusqlite::Result<()> {
    let mut tally = Tally::default();
    let fks = foreign_keys(fresh)?;
    while tally.orphans(fresh, &fks)? > 0 {}
    let restored = tally.mend(fresh)?;
    for s in salvaged.iter_mut() {
        let n = tally.lost.get(&s.table).copied().unwrap_or(0);
        s.copied -= n;
        s.lost += n;
        s.changed = tally.changed.get(&s.table).map_or(0, |c| c.len() as u64);
        if s.table == "task_events" {
            s.added = restored as u64;
        }
    }
    Ok(())
}

/// One foreign key of the rebuilt board: its table, column, parent table and column,
/// whether the column is `NOT NULL`, whether the table is `WITHOUT ROWID`.
type ForeignKey = (String, String, String, String, bool, bool);

/// Every foreign key of the rebuilt board.
fn foreign_keys(fresh: &Connection) -> rusqlite::Result<Vec<ForeignKey>> {
    fresh
        .prepare(
            "SELECT m.name, f.\"from\", f.\"table\", f.\"to\", i.\"notnull\",
                    m.sql LIKE '%WITHOUT ROWID%'
             FROM sqlite_master m, pragma_foreign_key_list(m.name) f,
                  pragma_table_info(m.name) i
             WHERE m.type = 'table' AND i.name = f.\"from\"",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect()
}

/// The rowids `sql` (a statement `RETURNING rowid`) returns.
fn rowids(fresh: &Connection, sql: &str) -> rusqlite::Result<Vec<i64>> {
    fresh.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
}

/// What [`reconcile`] did, by table. Rows changed are kept by rowid: a row changed twice
/// counts once, and a changed row that goes after all counts as lost only.
#[derive(Default)]
struct Tally {
    changed: std::collections::BTreeMap<String, std::collections::BTreeSet<i64>>,
    lost: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    /// One pass over the foreign keys: a reference to a lost row is cleared where it may be
    /// empty, and its row goes where it may not. Returns how many rows it moved (a pass
    /// that moved none is the last: one loss can orphan rows that orphan others).
    fn orphans(&mut self, fresh: &Connection, fks: &[ForeignKey]) -> rusqlite::Result<usize> {
        let mut moved = 0;
        for (table, from, parent, to, not_null, without_rowid) in fks {
            let missing = format!(
                "\"{from}\" IS NOT NULL AND \"{from}\" NOT IN (SELECT \"{to}\" FROM \"{parent}\")"
            );
            if *not_null && *without_rowid {
                let n = fresh.execute(&format!("DELETE FROM \"{table}\" WHERE {missing}"), [])?;
                *self.lost.entry(table.clone()).or_default() += n as u64;
                moved += n;
            } else if *not_null {
                let gone = rowids(
                    fresh,
                    &format!("DELETE FROM \"{table}\" WHERE {missing} RETURNING rowid"),
                )?;
                let was_changed = self.changed.entry(table.clone()).or_default();
                for id in &gone {
                    was_changed.remove(id);
                }
                *self.lost.entry(table.clone()).or_default() += gone.len() as u64;
                moved += gone.len();
            } else {
                let ids = rowids(
                    fresh,
                    &format!(
                        "UPDATE \"{table}\" SET \"{from}\" = NULL WHERE {missing} RETURNING rowid"
                    ),
                )?;
                moved += ids.len();
                self.changed.entry(table.clone()).or_default().extend(ids);
            }
        }
        Ok(moved)
    }

    /// The kanban invariants no foreign key states: a running task whose run is lost is
    /// ready again, a run whose `claimed` event is lost gets one back, a cursor past the last
    /// event is moved back to it. Returns how many events it added.
    fn mend(&mut self, fresh: &Connection) -> rusqlite::Result<usize> {
        let requeued = rowids(
            fresh,
            "UPDATE tasks SET status = 'ready', current_run_id = NULL
             WHERE status = 'running' AND (current_run_id IS NULL OR current_run_id NOT IN
                 (SELECT id FROM task_runs WHERE status = 'running' AND task_id = tasks.id))
             RETURNING rowid",
        )?;
        self.changed
            .entry("tasks".into())
            .or_default()
            .extend(requeued);
        let restored = fresh.execute(
            "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
             SELECT r.task_id, r.id, 'claimed', 'restored by repair', r.started_at
             FROM task_runs r WHERE NOT EXISTS (
                 SELECT 1 FROM task_events e WHERE e.run_id = r.id AND e.kind = 'claimed')",
            [],
        )?;
        let moved_back = rowids(
            fresh,
            "UPDATE notify_subs SET last_event_id = (SELECT coalesce(max(id), 0) FROM task_events)
             WHERE last_event_id > (SELECT coalesce(max(id), 0) FROM task_events) RETURNING rowid",
        )?;
        self.changed
            .entry("notify_subs".into())
            .or_default()
            .extend(moved_back);
        Ok(restored)
    }
}
