//! Explicit health checks (R7: never on the open path).
//!
//! A check is something an operator, the gateway at start-up, or the harness asks for:
//! SQLite's `quick_check` or full `integrity_check`, `foreign_key_check`, and the kanban
//! invariants that no single SQL constraint expresses. Every finding is a line of text that
//! names what is wrong (e.g. `wrong # of entries in index idx_events_run`); an error while
//! checking is itself a finding, never a pass.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use rusqlite::Connection;

/// How thorough a check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckLevel {
    /// `PRAGMA quick_check`: page structure, without index-versus-table cross checks.
    Quick,
    /// `PRAGMA integrity_check`: everything, including every index entry.
    Full,
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Findings of `quick_check` / `integrity_check`.
    pub integrity: Vec<String>,
    /// Findings of `foreign_key_check`.
    pub foreign_keys: Vec<String>,
    /// Broken kanban invariants.
    pub invariants: Vec<String>,
    /// What the quarantine policy did about damage, if it was asked to act.
    pub quarantined: Option<crate::types::Quarantined>,
}

impl CheckReport {
    /// True when nothing was found.
    pub fn is_ok(&self) -> bool {
        self.integrity.is_empty() && self.foreign_keys.is_empty() && self.invariants.is_empty()
    }

    /// True when SQLite itself found structural damage.
    pub fn is_corrupt(&self) -> bool {
        !self.integrity.is_empty()
    }

    /// True when every finding is about an index's entries (what `REINDEX` fixes without
    /// losing anything), and there is at least one.
    pub fn is_index_only(&self) -> bool {
        index_only(self)
    }

    /// Every finding, one per line, with its kind.
    pub fn findings(&self) -> impl Iterator<Item = String> + '_ {
        let tag = |kind: &'static str| move |f: &String| format!("{kind}: {f}");
        self.integrity
            .iter()
            .map(tag("integrity"))
            .chain(self.foreign_keys.iter().map(tag("foreign_key")))
            .chain(self.invariants.iter().map(tag("invariant")))
    }
}

/// The kanban invariants: each query returns one row per violation, described.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "running task without its running run",
        "SELECT 'task ' || t.id FROM tasks t LEFT JOIN task_runs r ON r.id = t.current_run_id
         WHERE t.status = 'running'
           AND (r.id IS NULL OR r.status <> 'running' OR r.task_id <> t.id)",
    ),
    (
        "task not running but has a current run",
        "SELECT 'task ' || id FROM tasks WHERE status <> 'running' AND current_run_id IS NOT NULL",
    ),
    (
        "running run that is not its task's current run",
        "SELECT 'run ' || r.id FROM task_runs r JOIN tasks t ON t.id = r.task_id
         WHERE r.status = 'running' AND t.current_run_id IS NOT r.id",
    ),
    (
        "run without a claimed event",
        "SELECT 'run ' || r.id FROM task_runs r WHERE NOT EXISTS (
             SELECT 1 FROM task_events e WHERE e.run_id = r.id AND e.kind = 'claimed')",
    ),
    (
        "ended run without an end time, or running run with one",
        "SELECT 'run ' || id FROM task_runs
         WHERE (status = 'running') = (ended_at IS NOT NULL)",
    ),
    (
        "event of a run that belongs to another task",
        "SELECT 'event ' || e.id FROM task_events e JOIN task_runs r ON r.id = e.run_id
         WHERE r.task_id <> e.task_id",
    ),
    (
        "notifier cursor past the last event",
        "SELECT 'cursor ' || name FROM notify_subs
         WHERE last_event_id > (SELECT coalesce(max(id), 0) FROM task_events)",
    ),
];

/// Runs a check on `conn`. SQLite errors while checking become findings.
pub fn run(conn: &Connection, level: CheckLevel) -> CheckReport {
    let pragma = match level {
        CheckLevel::Quick => "PRAGMA quick_check",
        CheckLevel::Full => "PRAGMA integrity_check",
    };
    let mut report = CheckReport {
        integrity: rows(conn, pragma),
        foreign_keys: rows(
            conn,
            "SELECT \"table\" || ' row ' || coalesce(rowid, '?') || ' -> ' || parent
             FROM pragma_foreign_key_check",
        ),
        invariants: Vec::new(),
        quarantined: None,
    };
    report.integrity.retain(|line| line != "ok");
    for (what, sql) in INVARIANTS {
        report.invariants.extend(
            rows(conn, sql)
                .into_iter()
                .map(|row| format!("{what}: {row}")),
        );
    }
    report
}

/// The first column of every row, as text; an error becomes one `error: ...` row.
fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    let result = conn
        .prepare(sql)
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect());
    result.unwrap_or_else(|e: rusqlite::Error| vec![format!("error: {e}")])
}

/// Whether every finding of the check is about an index's entries, not a table, a
/// reference or an invariant: what `REINDEX` fixes without losing anything, if it can.
/// A `non-unique entry in index` may be a stale entry (then `REINDEX` fixes it) or two
/// rows with one key (then `REINDEX` fails, changing nothing): the check cannot tell them
/// apart, so the repair tries, and takes a failed `REINDEX` for damage beyond indexes.
pub(crate) fn index_only(report: &CheckReport) -> bool {
    report.foreign_keys.is_empty()
        && report.invariants.is_empty()
        && !report.integrity.is_empty()
        && report.integrity.iter().all(|line| {
            line.starts_with("wrong # of entries in index")
                || (line.starts_with("row ") && line.contains(" missing from index "))
                || line.starts_with("non-unique entry in index")
        })
}
