//! Write operations, each a step inside one `BEGIN IMMEDIATE` transaction (R5).
//!
//! [`crate::Board::transaction`] opens the transaction (taking SQLite's write lock at once,
//! so a transaction never has to upgrade from read to write) and hands the closure a
//! [`Txn`]; the convenience methods of `Board` wrap one step each. Several steps in one
//! closure commit together or not at all.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use std::cell::RefCell;
use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use crate::error::{Error, Result, SqlResultExt};
use crate::reads::task_status;
use crate::types::{Claim, EventId, NewTask, RunId, RunOutcome, TaskId, TaskStatus};

/// An open write transaction on a board.
pub struct Txn<'a> {
    pub(crate) tx: &'a Transaction<'a>,
    pub(crate) path: &'a Path,
    pub(crate) now: i64,
    /// Checks, before each statement, that this is still the process that opened the
    /// session (a child forked inside the transaction must not use it).
    pub(crate) guard: &'a dyn Fn() -> Result<()>,
    /// The ids of the events this transaction has logged, in order.
    pub(crate) events: RefCell<Vec<EventId>>,
}

impl Txn<'_> {
    /// The transaction, if this process may use it.
    pub(crate) fn live(&self) -> Result<&Transaction<'_>> {
        (self.guard)()?;
        Ok(self.tx)
    }

    /// Creates a task (status `todo`; [`Txn::recompute_ready`] makes it ready) and its links.
    pub fn create_task(&self, task: &NewTask) -> Result<TaskId> {
        self.live()?
            .execute(
                "INSERT INTO tasks (title, body, status, priority, created_at, updated_at)
                 VALUES (?1, ?2, 'todo', ?3, ?4, ?4)",
                params![task.title, task.body, task.priority, self.now],
            )
            .at(self.path)?;
        let id = TaskId(self.live()?.last_insert_rowid());
        self.event(id, None, "created", &task.title)?;
        for &parent in &task.parents {
            self.link(parent, id)?;
        }
        Ok(id)
    }

    /// The ids of the events this transaction has logged so far, oldest first: one per
    /// step, and one per task or run for [`Txn::recompute_ready`] and [`Txn::expire_runs`]
    /// (in the order they return them). A caller that must find its effect exactly later
    /// (the harness's ledger) takes them from here.
    pub fn event_ids(&self) -> Vec<EventId> {
        self.events.borrow().clone()
    }

    /// Changes a task's title, body and priority; returns the `updated` event's id.
    pub fn update_task(
        &self,
        id: TaskId,
        title: &str,
        body: &str,
        priority: i64,
    ) -> Result<EventId> {
        let n = self
            .tx
            .execute(
                "UPDATE tasks SET title = ?2, body = ?3, priority = ?4, updated_at = ?5
                 WHERE id = ?1",
                params![id, title, body, priority, self.now],
            )
            .at(self.path)?;
        if n == 0 {
            return Err(self.no_task(id));
        }
        self.event(id, None, "updated", title)
    }

    /// A user moves a task. Running tasks move only by ending their run. Returns the
    /// `moved` event's id.
    pub fn move_task(&self, id: TaskId, to: TaskStatus) -> Result<EventId> {
        let from = task_status(self.live()?, self.path, id)?.ok_or_else(|| self.no_task(id))?;
        if from == TaskStatus::Running || to == TaskStatus::Running {
            return Err(Error::InvalidMove {
                path: self.path.to_path_buf(),
                id: id.get(),
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        self.live()?
            .execute(
                "UPDATE tasks SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, to.as_str(), self.now],
            )
            .at(self.path)?;
        self.event(id, None, "moved", to.as_str())
    }

    /// Makes `child` depend on `parent`. A ready child of an unfinished parent waits again.
    /// Returns the `linked` event's id.
    pub fn link(&self, parent: TaskId, child: TaskId) -> Result<EventId> {
        let parent_status =
            task_status(self.live()?, self.path, parent)?.ok_or_else(|| self.no_task(parent))?;
        let child_status =
            task_status(self.live()?, self.path, child)?.ok_or_else(|| self.no_task(child))?;
        if parent == child {
            return Err(Error::InvalidMove {
                path: self.path.to_path_buf(),
                id: child.get(),
                from: "itself".into(),
                to: "its own child".into(),
            });
        }
        self.live()?
            .execute(
                "INSERT OR IGNORE INTO task_links (parent_id, child_id) VALUES (?1, ?2)",
                params![parent, child],
            )
            .at(self.path)?;
        if child_status == TaskStatus::Ready && parent_status != TaskStatus::Done {
            self.live()?
                .execute(
                    "UPDATE tasks SET status = 'todo', updated_at = ?2 WHERE id = ?1",
                    params![child, self.now],
                )
                .at(self.path)?;
        }
        self.event(child, None, "linked", &parent.to_string())
    }

    /// Adds a comment to a task.
    pub fn comment(&self, task: TaskId, author: &str, body: &str) -> Result<i64> {
        task_status(self.live()?, self.path, task)?.ok_or_else(|| self.no_task(task))?;
        self.live()?
            .execute(
                "INSERT INTO task_comments (task_id, author, body, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![task, author, body, self.now],
            )
            .at(self.path)?;
        let id = self.live()?.last_insert_rowid();
        self.event(task, None, "commented", author)?;
        Ok(id)
    }

    /// Promotes every `todo` task whose parents are all done; returns them.
    pub fn recompute_ready(&self) -> Result<Vec<TaskId>> {
        let ids: Vec<TaskId> = self
            .tx
            .prepare(
                "UPDATE tasks SET status = 'ready', updated_at = ?1
                 WHERE status = 'todo' AND NOT EXISTS (
                     SELECT 1 FROM task_links l JOIN tasks p ON p.id = l.parent_id
                     WHERE l.child_id = tasks.id AND p.status <> 'done')
                 RETURNING id",
            )
            .and_then(|mut s| s.query_map([self.now], |r| r.get(0))?.collect())
            .at(self.path)?;
        for &id in &ids {
            self.event(id, None, "ready", "")?;
        }
        Ok(ids)
    }

    /// Compare-and-swap `ready` → `running`, open a run, log `claimed`; `None` if the task
    /// was not ready (someone else claimed it, or it is waiting).
    pub fn claim_task(&self, task: TaskId, worker: &str) -> Result<Option<Claim>> {
        let swapped = self
            .tx
            .execute(
                "UPDATE tasks SET status = 'running', updated_at = ?2
                 WHERE id = ?1 AND status = 'ready'",
                params![task, self.now],
            )
            .at(self.path)?;
        if swapped == 0 {
            task_status(self.live()?, self.path, task)?.ok_or_else(|| self.no_task(task))?;
            return Ok(None);
        }
        self.live()?
            .execute(
                "INSERT INTO task_runs (task_id, worker, status, started_at, heartbeat_at)
                 VALUES (?1, ?2, 'running', ?3, ?3)",
                params![task, worker, self.now],
            )
            .at(self.path)?;
        let run_id = RunId(self.live()?.last_insert_rowid());
        self.live()?
            .execute(
                "UPDATE tasks SET current_run_id = ?2 WHERE id = ?1",
                params![task, run_id],
            )
            .at(self.path)?;
        self.event(task, Some(run_id), "claimed", worker)?;
        Ok(Some(Claim {
            task_id: task,
            run_id,
        }))
    }

    /// Claims the ready task of highest priority (oldest first among equals), if any.
    pub fn claim_next(&self, worker: &str) -> Result<Option<Claim>> {
        let next: Option<TaskId> = self
            .tx
            .query_row(
                "SELECT id FROM tasks WHERE status = 'ready'
                 ORDER BY priority DESC, id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .at(self.path)?;
        match next {
            Some(task) => self.claim_task(task, worker),
            None => Ok(None),
        }
    }

    /// Records that a run's worker is alive; returns the run's heartbeat time now.
    ///
    /// The time never goes backwards: a heartbeat whose clock reading is older than the
    /// one stored (two agents racing, the older reading committing last) leaves it.
    pub fn heartbeat(&self, run: RunId) -> Result<i64> {
        self.tx
            .query_row(
                "UPDATE task_runs SET heartbeat_at = max(heartbeat_at, ?2)
                 WHERE id = ?1 AND status = 'running' RETURNING heartbeat_at",
                params![run, self.now],
                |r| r.get(0),
            )
            .optional()
            .at(self.path)?
            .ok_or_else(|| Error::RunNotRunning {
                path: self.path.to_path_buf(),
                id: run.get(),
            })
    }

    /// Ends a running run; its task moves on as [`RunOutcome::task_status`] says.
    pub fn end_run(&self, run: RunId, outcome: RunOutcome, result: &str) -> Result<TaskId> {
        let task: Option<TaskId> = self
            .tx
            .query_row(
                "UPDATE task_runs SET status = ?2, ended_at = ?3, result = ?4
                 WHERE id = ?1 AND status = 'running' RETURNING task_id",
                params![run, outcome.as_str(), self.now, result],
                |r| r.get(0),
            )
            .optional()
            .at(self.path)?;
        let task = task.ok_or_else(|| Error::RunNotRunning {
            path: self.path.to_path_buf(),
            id: run.get(),
        })?;
        self.live()?
            .execute(
                "UPDATE tasks SET status = ?2, current_run_id = NULL, updated_at = ?3
                 WHERE id = ?1",
                params![task, outcome.task_status().as_str(), self.now],
            )
            .at(self.path)?;
        self.event(task, Some(run), outcome.as_str(), result)?;
        Ok(task)
    }

    /// Ends as `timed_out` every run whose last heartbeat is older than `max_age_ms`.
    pub fn expire_runs(&self, max_age_ms: i64) -> Result<Vec<RunId>> {
        let stale: Vec<RunId> = self
            .tx
            .prepare("SELECT id FROM task_runs WHERE status = 'running' AND heartbeat_at < ?1")
            .and_then(|mut s| {
                s.query_map([self.now - max_age_ms], |r| r.get(0))?
                    .collect()
            })
            .at(self.path)?;
        for &run in &stale {
            self.end_run(run, RunOutcome::TimedOut, "no heartbeat")?;
        }
        Ok(stale)
    }

    /// Moves the named notifier cursor forward to `to`, but never backwards and never past
    /// the last event (a notifier there would silently skip the next ones); returns it.
    pub fn advance_cursor(&self, name: &str, to: EventId) -> Result<EventId> {
        self.live()?
            .query_row(
                "INSERT INTO notify_subs (name, last_event_id)
                 VALUES (?1, max(0, min(?2, (SELECT coalesce(max(id), 0) FROM task_events))))
                 ON CONFLICT (name) DO UPDATE
                 SET last_event_id = max(last_event_id, excluded.last_event_id)
                 RETURNING last_event_id",
                params![name, to],
                |r| r.get(0),
            )
            .at(self.path)
    }

    fn event(
        &self,
        task: TaskId,
        run: Option<RunId>,
        kind: &str,
        payload: &str,
    ) -> Result<EventId> {
        let id = self
            .live()?
            .query_row(
                "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                params![task, run, kind, payload, self.now],
                |r| r.get(0),
            )
            .at(self.path)?;
        self.events.borrow_mut().push(id);
        Ok(id)
    }

    fn no_task(&self, id: TaskId) -> Error {
        Error::NoSuchTask {
            path: self.path.to_path_buf(),
            id: id.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use crate::{Board, Clock, EventId, NewTask, Role, StoreConfig};

    /// A clock the test sets.
    #[derive(Debug, Default)]
    struct Set(AtomicI64);

    impl Clock for Set {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::Relaxed)
        }
        fn sleep(&self, _: Duration) {}
    }

    /// Two agents race: the one whose clock reading is older commits last. The heartbeat
    /// stays at the newer time, and each is told the time the run has (what the harness
    /// ledgers and checks).
    #[test]
    fn a_heartbeat_never_goes_backwards_and_returns_the_runs_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(Set::default());
        let mut cfg = StoreConfig::new(Role::Gateway);
        cfg.clock = clock.clone();
        let mut board = Board::create(dir.path().join("b.db"), cfg).unwrap();
        board.create_task(&NewTask::default()).unwrap();
        board.recompute_ready().unwrap();
        let run = board.claim_next("w").unwrap().unwrap().run_id;
        clock.0.store(100, Ordering::Relaxed);
        assert_eq!(board.heartbeat(run).unwrap(), 100);
        clock.0.store(50, Ordering::Relaxed);
        assert_eq!(board.heartbeat(run).unwrap(), 100);
    }

    /// A transaction's event ids are the ones its steps return, in order.
    #[test]
    fn event_ids_are_the_events_the_steps_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut board =
            Board::create(dir.path().join("b.db"), StoreConfig::new(Role::Gateway)).unwrap();
        let (moved, ids) = board
            .transaction(|t| {
                let task = t.create_task(&NewTask::default())?;
                Ok((
                    t.move_task(task, crate::TaskStatus::Blocked)?,
                    t.event_ids(),
                ))
            })
            .unwrap();
        assert_eq!(ids, vec![EventId(moved.get() - 1), moved]);
        assert_eq!(
            board
                .events_since(EventId::default(), 10)
                .unwrap()
                .last()
                .unwrap()
                .id,
            moved
        );
    }
}
