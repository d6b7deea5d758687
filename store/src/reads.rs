//! Read queries: the board, the event log, the notifier cursor.
//!
//! Each is one statement, so each sees one consistent snapshot without an explicit
//! transaction. They take a plain connection: the dashboard's read-only one, or the
//! session's own.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Result, SqlResultExt};
use crate::types::{Event, EventId, Task, TaskId, TaskStatus};

const TASK_COLUMNS: &str =
    "id, title, body, status, priority, current_run_id, created_at, updated_at";

fn task(row: &Row<'_>) -> rusqlite::Result<Task> {
    let status: String = row.get(3)?;
    Ok(Task {
        id: row.get(0)?,
        title: row.get(1)?,
        body: row.get(2)?,
        status: status.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
        })?,
        priority: row.get(4)?,
        current_run_id: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// Every task, by id.
pub fn list_board(conn: &Connection, path: &Path) -> Result<Vec<Task>> {
    conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks ORDER BY id"))
        .and_then(|mut s| s.query_map([], task)?.collect())
        .at(path)
}

/// One task.
pub fn get_task(conn: &Connection, path: &Path, id: TaskId) -> Result<Option<Task>> {
    conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], task).optional())
        .at(path)
}

/// A task's status, if it exists.
pub(crate) fn task_status(
    conn: &Connection,
    path: &Path,
    id: TaskId,
) -> Result<Option<TaskStatus>> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM tasks WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .at(path)?;
    Ok(status.and_then(|s| s.parse().ok()))
}

/// Up to `limit` events after `cursor`, oldest first (what a websocket poller asks for).
pub fn events_since(
    conn: &Connection,
    path: &Path,
    cursor: EventId,
    limit: u32,
) -> Result<Vec<Event>> {
    conn.prepare_cached(
        "SELECT id, task_id, run_id, kind, payload, created_at FROM task_events
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![cursor, limit], |r| {
            Ok(Event {
                id: r.get(0)?,
                task_id: r.get(1)?,
                run_id: r.get(2)?,
                kind: r.get(3)?,
                payload: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect()
    })
    .at(path)
}

/// The named notifier cursor (0 before its first advance).
pub fn cursor(conn: &Connection, path: &Path, name: &str) -> Result<EventId> {
    conn.prepare_cached("SELECT last_event_id FROM notify_subs WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map(Option::unwrap_or_default)
        .at(path)
}
