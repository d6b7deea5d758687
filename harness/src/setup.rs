//! The board each seed starts from, made by the supervisor before any worker is forked
//! (and closed again: no SQLite connection may be open across a fork).

use std::path::Path;
use std::sync::{Arc, Mutex};

use kanban_store::{Board, Clock, NewTask, Role, StoreConfig};

use crate::error::{Error, Result};
use crate::scenario::{BoardSpec, Damage};

/// The clock of a deterministic run's board before the workers start: the logical epoch.
#[derive(Debug)]
struct EpochClock;

impl Clock for EpochClock {
    fn now_ms(&self) -> i64 {
        crate::token::EPOCH_MS
    }

    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// Boards already made in this process, by spec: the seeds of a scenario all start from the
/// same bytes, so the first seed makes the board through the store and the others get a
/// copy of its file (made when nothing had it open, written where nothing exists yet).
static MADE: Mutex<Vec<(MadeFor, Vec<u8>)>> = Mutex::new(Vec::new());

/// What a made board is for: its spec, and whether it is for a deterministic run.
type MadeFor = (BoardSpec, bool);

/// Creates the board at `db` as `spec` says: tasks made ready, damage done. A board for a
/// `deterministic` run has its timestamps at the logical epoch, not the real time.
pub fn prepare(db: &Path, spec: &BoardSpec, deterministic: bool) -> Result<()> {
    let key = (spec.clone(), deterministic);
    let made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, bytes)) = made.iter().find(|(k, _)| *k == key) {
        return std::fs::write(db, bytes)
            .map_err(|e| Error::system(format!("writing {}", db.display()), e));
    }
    drop(made);
    make(db, spec, deterministic)?;
    // Every connection is closed and the WAL checkpointed away: the file is the board.
    if !kanban_store::info::wal_path(db).exists()
        && let Ok(bytes) = std::fs::read(db)
    {
        MADE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, bytes));
    }
    Ok(())
}

/// Makes the board through the store.
fn make(db: &Path, spec: &BoardSpec, deterministic: bool) -> Result<()> {
    let mut cfg = StoreConfig::new(Role::Gateway);
    if deterministic {
        cfg.clock = Arc::new(EpochClock);
    }
    let mut board = Board::create(db, cfg)?;
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
