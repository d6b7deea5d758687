//! The board each seed starts from, made by the supervisor before any worker is forked
//! (and closed again: no SQLite connection may be open across a fork).

use std::path::Path;

use kanban_store::{Board, NewTask, Role, StoreConfig};

use crate::error::{Error, Result};
use crate::scenario::{BoardSpec, Damage};

/// Creates the board at `db` as `spec` says: tasks made ready, damage done.
pub fn prepare(db: &Path, spec: &BoardSpec) -> Result<()> {
    let mut board = Board::create(db, StoreConfig::new(Role::Gateway))?;
    board.transaction(|t| {
        for i in 0..spec.tasks {
            t.create_task(&NewTask {
                title: format!("seed-task-{i}"),
                body: "on the board before the workers start".into(),
                priority: i64::from(i % 5),
                parents: Vec::new(),
            })?;
        }
        t.recompute_ready()
    })?;
    drop(board);
    if spec.rollback {
        // What upstream's WAL-to-DELETE fallback left behind.
        let conn = rusqlite::Connection::open(db).map_err(|e| sql_error(db, e))?;
        conn.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| sql_error(db, e))?;
    }
    if spec.damage == Damage::Index {
        kanban_store::hazards::damage_index(db).map_err(|e| sql_error(db, e))?;
    }
    Ok(())
}

fn sql_error(db: &Path, e: rusqlite::Error) -> Error {
    Error::System {
        what: format!("preparing {}", db.display()),
        source: std::io::Error::other(e),
    }
}
