//! The board's schema and its migrations, versioned by `PRAGMA user_version`.
//!
//! The shape follows the upstream board: tasks, their runs (one attempt each), an
//! append-only event log with the two indexes the upstream report saw damaged, comments,
//! dependency links and the notifier's cursor. Boards are marked with our
//! `PRAGMA application_id` so that a foreign SQLite file is refused, not "migrated".
//!
//! Migrations run only under the exclusive maintenance lock (R3), inside one transaction
//! each, so a killed migration leaves the previous version intact.
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use rusqlite::Connection;

/// `PRAGMA application_id` of a kanban board: "KANB".
pub const APPLICATION_ID: i32 = 0x4B41_4E42;

/// The schema version this build writes and reads.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Migration `i` takes a board from `user_version` `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the board.
    "
    CREATE TABLE tasks (
        id             INTEGER PRIMARY KEY,
        title          TEXT NOT NULL,
        body           TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL
                       CHECK (status IN ('todo', 'ready', 'running', 'blocked', 'done')),
        priority       INTEGER NOT NULL DEFAULT 0,
        current_run_id INTEGER REFERENCES task_runs(id),
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL
    );
    CREATE INDEX idx_tasks_status ON tasks(status, priority);
    CREATE TABLE task_runs (
        id           INTEGER PRIMARY KEY,
        task_id      INTEGER NOT NULL REFERENCES tasks(id),
        worker       TEXT NOT NULL,
        status       TEXT NOT NULL
                     CHECK (status IN ('running', 'completed', 'blocked', 'crashed', 'timed_out')),
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        ended_at     INTEGER,
        result       TEXT
    );
    CREATE INDEX idx_runs_task ON task_runs(task_id);
    CREATE TABLE task_events (
        id         INTEGER PRIMARY KEY,
        task_id    INTEGER NOT NULL REFERENCES tasks(id),
        run_id     INTEGER REFERENCES task_runs(id),
        kind       TEXT NOT NULL,
        payload    TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    );
    CREATE INDEX idx_events_run ON task_events(run_id, id);
    CREATE INDEX idx_events_task ON task_events(task_id, created_at);
    CREATE TABLE task_comments (
        id         INTEGER PRIMARY KEY,
        task_id    INTEGER NOT NULL REFERENCES tasks(id),
        author     TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX idx_comments_task ON task_comments(task_id);
    CREATE TABLE task_links (
        parent_id INTEGER NOT NULL REFERENCES tasks(id),
        child_id  INTEGER NOT NULL REFERENCES tasks(id),
        PRIMARY KEY (parent_id, child_id),
        CHECK (parent_id <> child_id)
    ) WITHOUT ROWID;
    CREATE INDEX idx_links_child ON task_links(child_id);
    CREATE TABLE notify_subs (
        name          TEXT PRIMARY KEY,
        last_event_id INTEGER NOT NULL DEFAULT 0
    );
    ",
    // 2: the ids of the requests applied (see `single_writer`'s applied ids), so that a
    // retried write is answered, not applied twice.
    "
    CREATE TABLE request_ids (
        seq        INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        digest     TEXT NOT NULL,
        value      INTEGER NOT NULL,
        applied_at INTEGER NOT NULL
    );
    ",
];

/// Brings a board from its `user_version` to [`VERSION`], one transaction per step.
///
/// The caller holds the exclusive maintenance lock.
pub fn migrate(conn: &mut Connection, from: i32) -> rusqlite::Result<()> {
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", step as i32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
