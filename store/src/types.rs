//! The board's records as callers see them.
//!
//! Layer: ground (the layer order is in `store/ARCHITECTURE.md`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Defines an id newtype over the row id SQLite gives: `Copy`, ordered, shown and
/// serialised as the plain integer, stored and read as an SQL integer.
macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub(crate) i64);

        impl $name {
            /// The row id, for a caller that stores ids as integers (a ledger, a URL).
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.0.to_sql()
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                i64::column_result(value).map($name)
            }
        }
    };
}

row_id! {
    /// A task's id.
    ///
    /// Its own type, so that a run's or an event's id cannot be passed where a task's is
    /// meant:
    ///
    /// ```compile_fail
    /// # fn f(board: &mut kanban_store::Board, task: kanban_store::TaskId) {
    /// board.end_run(task, kanban_store::RunOutcome::Completed, "done");
    /// # }
    /// ```
    TaskId
}
row_id! {
    /// A run's id (one attempt at a task).
    RunId
}
row_id! {
    /// An event's id; events are append-only, so ids only grow.
    EventId
}

/// Where a task is on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaskStatus {
    /// Waiting for its parents.
    Todo,
    /// Can be claimed.
    Ready,
    /// Claimed; has exactly one running run.
    Running,
    /// Stopped by a run or a user.
    Blocked,
    /// Finished.
    Done,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Todo,
        TaskStatus::Ready,
        TaskStatus::Running,
        TaskStatus::Blocked,
        TaskStatus::Done,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::Ready => "ready",
            TaskStatus::Running => "running",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Done => "done",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown task status {s:?}"))
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// The work is done; the task becomes `done`.
    Completed,
    /// The worker cannot go on; the task becomes `blocked`.
    Blocked,
    /// The worker died; the task becomes `ready` again.
    Crashed,
    /// No heartbeat in time; the task becomes `ready` again.
    TimedOut,
}

impl RunOutcome {
    /// Every outcome.
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Completed,
        RunOutcome::Blocked,
        RunOutcome::Crashed,
        RunOutcome::TimedOut,
    ];

    /// The run status (and event kind) stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Blocked => "blocked",
            RunOutcome::Crashed => "crashed",
            RunOutcome::TimedOut => "timed_out",
        }
    }

    /// The status the task moves to.
    pub fn task_status(self) -> TaskStatus {
        match self {
            RunOutcome::Completed => TaskStatus::Done,
            RunOutcome::Blocked => TaskStatus::Blocked,
            RunOutcome::Crashed | RunOutcome::TimedOut => TaskStatus::Ready,
        }
    }
}

/// What a caller gives to create a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewTask {
    /// A short title.
    pub title: String,
    /// Free text.
    pub body: String,
    /// Higher is claimed first.
    pub priority: i64,
    /// Tasks that must be done before this one is ready.
    pub parents: Vec<TaskId>,
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// Its title.
    pub title: String,
    /// Its body.
    pub body: String,
    /// Where it is on the board.
    pub status: TaskStatus,
    /// Higher is claimed first.
    pub priority: i64,
    /// The running run, when `status` is `running`.
    pub current_run_id: Option<RunId>,
    /// Creation time (ms since the epoch, from the store's clock).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

/// A successful claim: the task now runs as `run_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The task claimed.
    pub task_id: TaskId,
    /// The run opened for it.
    pub run_id: RunId,
}

/// One entry of the append-only event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its id (increasing).
    pub id: EventId,
    /// The task it is about.
    pub task_id: TaskId,
    /// The run it is about, if any.
    pub run_id: Option<RunId>,
    /// What happened (`created`, `claimed`, `completed`, ...).
    pub kind: String,
    /// Details.
    pub payload: String,
    /// When (ms since the epoch).
    pub created_at: i64,
}

/// A PASSIVE checkpoint's result (R6): reported, never ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointReport {
    /// SQLite could not finish because a reader or writer was in the way.
    pub busy: bool,
    /// Frames in the WAL.
    pub wal_frames: i64,
    /// Frames copied into the database so far.
    pub checkpointed: i64,
}

/// What keeping a copy did ([`crate::Board::quarantine`], a health check, a repair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quarantined {
    /// A new copy was written here.
    Saved(PathBuf),
    /// A new copy was written here, over a file of that name that was not a whole copy
    /// (one killed midway by an older build, or damaged since).
    Replaced(PathBuf),
    /// The cap was reached and a repair needed a copy: a new copy was written, then the
    /// oldest copies were removed to stay within the cap.
    Evicted {
        /// The new copy.
        saved: PathBuf,
        /// The copies removed, oldest first.
        evicted: Vec<PathBuf>,
    },
    /// An identical copy was already kept here.
    AlreadyKept(PathBuf),
    /// The cap was reached; nothing was written.
    CapReached {
        /// How many copies are kept.
        kept: usize,
    },
}

impl Quarantined {
    /// The copy of the board that is kept now, if any.
    pub fn copy(&self) -> Option<&Path> {
        match self {
            Quarantined::Saved(p) | Quarantined::Replaced(p) | Quarantined::AlreadyKept(p) => {
                Some(p)
            }
            Quarantined::Evicted { saved, .. } => Some(saved),
            Quarantined::CapReached { .. } => None,
        }
    }
}

impl std::fmt::Display for Quarantined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quarantined::Saved(p) => write!(f, "kept in {}", p.display()),
            Quarantined::Replaced(p) => write!(
                f,
                "kept in {}, over a file of that name that was not a whole copy",
                p.display()
            ),
            Quarantined::Evicted { saved, evicted } => {
                write!(
                    f,
                    "kept in {}; the cap was reached, so the oldest copies were removed:",
                    saved.display()
                )?;
                evicted
                    .iter()
                    .try_for_each(|p| write!(f, " {}", p.display()))
            }
            Quarantined::AlreadyKept(p) => write!(f, "already kept in {}", p.display()),
            Quarantined::CapReached { kept } => {
                write!(f, "not kept: the cap of {kept} copies is reached")
            }
        }
    }
}
