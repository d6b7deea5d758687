//! The board each seed starts from, made by the supervisor before any worker is forked
//! (and closed again: no SQLite connection may be open across a fork): its tasks, the
//! quarantine copies kept of it, its damage, and the other names it is opened by.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kanban_store::{Board, Clock, NewTask, Quarantined, Role, StoreConfig};

use crate::error::{Error, Result};
use crate::scenario::{BoardPath, BoardSpec, Damage};

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
/// copy of its files (made when nothing had them open, written where nothing exists yet).
static MADE: Mutex<Vec<(MadeFor, Made)>> = Mutex::new(Vec::new());

/// What a made board is for: its spec, and whether it is for a deterministic run.
type MadeFor = (BoardSpec, bool);

/// A made board's files: the db, and its quarantine copies by file name.
type Made = (Vec<u8>, Vec<(String, Vec<u8>)>);

/// Creates the board at `db` as `spec` says: tasks made ready, quarantine copies kept,
/// damage done; returns the file names of the copies kept. A board for a `deterministic`
/// run has its timestamps at the logical epoch, not the real time.
pub fn prepare(db: &Path, spec: &BoardSpec, deterministic: bool) -> Result<Vec<String>> {
    let key = (spec.clone(), deterministic);
    let made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, (bytes, copies))) = made.iter().find(|(k, _)| *k == key) {
        let folder = kanban_store::quarantine::folder(db);
        if !copies.is_empty() {
            std::fs::create_dir(&folder).map_err(|e| writing(&folder, e))?;
        }
        for (name, copy) in copies {
            let path = folder.join(name);
            std::fs::write(&path, copy).map_err(|e| writing(&path, e))?;
        }
        std::fs::write(db, bytes).map_err(|e| writing(db, e))?;
        return Ok(copies.iter().map(|(name, _)| name.clone()).collect());
    }
    drop(made);
    let kept = make(db, spec, deterministic)?;
    // Every connection is closed and the WAL checkpointed away: the file is the board.
    let copies: Option<Vec<(String, Vec<u8>)>> = kept
        .iter()
        .map(|p| Some((file_name(p), std::fs::read(p).ok()?)))
        .collect();
    if !kanban_store::wal_path(db).exists()
        && let (Ok(bytes), Some(copies)) = (std::fs::read(db), copies)
    {
        MADE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, (bytes, copies)));
    }
    Ok(kept.iter().map(|p| file_name(p)).collect())
}

/// The path of the board by `name`, in the folder of `db` (the board itself): a `link` is
/// made, as a symlink to the board's file name, when it is not there yet.
pub fn board_path(db: &Path, name: BoardPath) -> Result<PathBuf> {
    let path = db.with_file_name(name.file_name());
    if name == BoardPath::Link && std::fs::symlink_metadata(&path).is_err() {
        std::os::unix::fs::symlink(BoardPath::Target.file_name(), &path)
            .map_err(|e| writing(&path, e))?;
    }
    Ok(path)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn writing(path: &Path, e: std::io::Error) -> Error {
    Error::system(format!("writing {}", path.display()), e)
}

/// Makes the board through the store; returns the quarantine copies kept.
fn make(db: &Path, spec: &BoardSpec, deterministic: bool) -> Result<Vec<PathBuf>> {
    let mut cfg = StoreConfig::new(Role::Gateway);
    if deterministic {
        cfg = cfg.clock(Arc::new(EpochClock));
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
    let mut kept = Vec::new();
    for i in 0..spec.quarantined {
        board.transaction(|t| {
            t.create_task(&NewTask {
                title: format!("quarantined-{i}"),
                body: "each quarantine copy of setup has an edit of its own".into(),
                priority: 0,
                parents: Vec::new(),
            })
            .map(|_| ())
        })?;
        match board.quarantine()? {
            Quarantined::Saved(path) => kept.push(path),
            other => {
                return Err(Error::System {
                    what: format!("keeping quarantine copy {i} of {}", db.display()),
                    source: std::io::Error::other(format!("{other:?}")),
                });
            }
        }
    }
    drop(board);
    if spec.rollback {
        // What upstream's WAL-to-DELETE fallback left behind.
        let conn = rusqlite::Connection::open(db).map_err(|e| sql_error(db, e))?;
        conn.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| sql_error(db, e))?;
    }
    match spec.damage {
        Damage::None => {}
        Damage::Index => kanban_store::hazards::damage_index(db).map_err(|e| sql_error(db, e))?,
        Damage::Reference => {
            kanban_store::hazards::damage_reference(db).map_err(|e| sql_error(db, e))?
        }
        Damage::UniqueIndex => {
            kanban_store::hazards::damage_unique_index(db).map_err(|e| sql_error(db, e))?
        }
    }
    Ok(kept)
}

fn sql_error(db: &Path, e: rusqlite::Error) -> Error {
    Error::System {
        what: format!("preparing {}", db.display()),
        source: std::io::Error::other(e),
    }
}
