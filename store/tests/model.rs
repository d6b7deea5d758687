//! Model-based test of the board store: random sequences of operations run against a real
//! board (in a temporary folder) and against a small in-memory model of the kanban rules,
//! and the two must agree exactly after every step.
//!
//! What it guards:
//! - every write operation (`create_task`, `update_task`, `move_task`, `link`, `comment`,
//!   `recompute_ready`, `claim_task`, `claim_next`, `heartbeat`, `end_run`, `expire_runs`,
//!   `advance_cursor`) returns what the model predicts, including the error paths
//!   (`NoSuchTask`, `RunNotRunning`, `InvalidMove`, a claim of a task that is not ready);
//! - a failed operation changes nothing (its transaction rolls back, ids are not used up);
//! - the event log: one event per change with the right task, run, kind, payload and time
//!   (a deterministic clock drives every timestamp, heartbeats and `expire_runs`);
//! - the reads (`list_board`, `get_task`, `events_since`, `cursor`) see exactly the model;
//! - closing and reopening the board, in any role (a dashboard reads through its read-only
//!   connection and writes through its read-write one), loses and changes nothing;
//! - a second gateway is refused with `GatewayRunning` while one is open, other second
//!   sessions see the same board, and a refused open leaves the first session working;
//! - every few steps `check(Quick)` finds nothing, and a `check(Full)` ends every case.
//!
//! The model is the specification: where the store and the model disagree, read the model
//! first; it is written to be obviously right, not fast.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kanban_store::{
    Board, CheckLevel, Claim, Clock, Error, Event, EventId, NewTask, Role, RunId, RunOutcome,
    StoreConfig, Task, TaskId, TaskStatus,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

/// The fake clock's start (ms since the epoch).
const T0: i64 = 1_700_000_000_000;
/// The notifier cursors the test moves and reads.
const CURSORS: [&str; 2] = ["ws", "mail"];
/// Run `check(Quick)` after every this many steps.
const CHECK_EVERY: u32 = 5;
/// Titles, bodies, results: plain, empty, non-ASCII, quotes, SQL-looking.
const TEXTS: &[&str] = &[
    "",
    "a",
    "fix the build",
    "ünïcødé ✓",
    "it's \"quoted\"",
    "x');--",
];
/// Worker and author names.
const NAMES: &[&str] = &["w1", "w2", ""];

// ---------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------

/// What an operation returned, in a form both sides can produce and compare.
type Outcome = Result<Value, Fail>;

/// A successful result.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Unit,
    Id(i64),
    Ids(Vec<i64>),
    Claim(Option<Claim>),
    Tasks(Vec<Task>),
    Task(Option<Task>),
    Events(Vec<Event>),
}

impl Value {
    /// One id (a task's, a run's, an event's or a comment's), as the integer it is.
    fn of(id: impl Into<i64>) -> Value {
        Value::Id(id.into())
    }

    /// Several ids, as integers.
    fn all<T: Into<i64>>(ids: Vec<T>) -> Value {
        Value::Ids(ids.into_iter().map(Into::into).collect())
    }
}

/// An error, without the path every store error carries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fail {
    NoSuchTask(TaskId),
    RunNotRunning(RunId),
    InvalidMove {
        id: TaskId,
        from: String,
        to: String,
    },
    GatewayRunning,
    /// Anything else: the model never predicts it, so it always fails the comparison.
    Other(String),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e {
            Error::NoSuchTask { id, .. } => Fail::NoSuchTask(id.into()),
            Error::RunNotRunning { id, .. } => Fail::RunNotRunning(id.into()),
            Error::InvalidMove { id, from, to, .. } => Fail::InvalidMove {
                id: id.into(),
                from,
                to,
            },
            Error::GatewayRunning { .. } => Fail::GatewayRunning,
            other => Fail::Other(other.to_string()),
        }
    }
}

/// One run as the model sees it.
#[derive(Clone, Debug)]
struct Run {
    task: TaskId,
    running: bool,
    heartbeat_at: i64,
}

/// The whole board, in memory. Ids are dense (nothing is ever deleted, and a rolled-back
/// insert does not use up its id), so `tasks[id - 1]` is task `id`, and so on.
#[derive(Clone, Debug)]
struct Model {
    /// The fake clock's time.
    now: i64,
    /// The open session's role.
    role: Role,
    tasks: Vec<Task>,
    /// `(parent, child)`.
    links: BTreeSet<(TaskId, TaskId)>,
    runs: Vec<Run>,
    events: Vec<Event>,
    comments: i64,
    cursors: BTreeMap<String, EventId>,
    /// What the last transition must return.
    last: Outcome,
}

/// One step of a test case.
#[derive(Clone, Debug)]
enum Op {
    Create {
        title: String,
        body: String,
        priority: i64,
        parents: Vec<TaskId>,
    },
    Update {
        id: TaskId,
        title: String,
        body: String,
        priority: i64,
    },
    Move {
        id: TaskId,
        to: TaskStatus,
    },
    Link {
        parent: TaskId,
        child: TaskId,
    },
    Comment {
        task: TaskId,
        author: String,
        body: String,
    },
    RecomputeReady,
    ClaimTask {
        task: TaskId,
        worker: String,
    },
    ClaimNext {
        worker: String,
    },
    Heartbeat {
        run: RunId,
    },
    EndRun {
        run: RunId,
        outcome: RunOutcome,
        result: String,
    },
    ExpireRuns {
        max_age_ms: i64,
    },
    AdvanceCursor {
        name: String,
        to: EventId,
    },
    ListBoard,
    GetTask {
        id: TaskId,
    },
    EventsSince {
        after: EventId,
        limit: u32,
    },
    Cursor {
        name: String,
    },
    /// Moves the fake clock forward.
    Tick {
        ms: i64,
    },
    /// Drops the session and opens the board again in `role`.
    Reopen {
        role: Role,
    },
    /// Opens a second session beside the first, reads through it, and drops it.
    SecondSession {
        role: Role,
    },
}

impl Model {
    fn new(role: Role) -> Model {
        Model {
            now: T0,
            role,
            tasks: Vec::new(),
            links: BTreeSet::new(),
            runs: Vec::new(),
            events: Vec::new(),
            comments: 0,
            cursors: BTreeMap::new(),
            last: Ok(Value::Unit),
        }
    }

    fn index(id: impl Into<i64>, len: usize) -> Option<usize> {
        usize::try_from(id.into())
            .ok()
            .and_then(|i| i.checked_sub(1))
            .filter(|&i| i < len)
    }

    fn task(&self, id: TaskId) -> Option<&Task> {
        Model::index(id, self.tasks.len()).map(|i| &self.tasks[i])
    }

    fn task_mut(&mut self, id: TaskId) -> &mut Task {
        let i = Model::index(id, self.tasks.len()).expect("an existing task");
        &mut self.tasks[i]
    }

    fn status(&self, id: TaskId) -> Result<TaskStatus, Fail> {
        self.task(id).map(|t| t.status).ok_or(Fail::NoSuchTask(id))
    }

    fn set_status(&mut self, id: TaskId, status: TaskStatus) {
        let now = self.now;
        let t = self.task_mut(id);
        t.status = status;
        t.updated_at = now;
    }

    fn cursor(&self, name: &str) -> EventId {
        self.cursors.get(name).copied().unwrap_or_default()
    }

    fn event(&mut self, task: TaskId, run: Option<RunId>, kind: &str, payload: &str) {
        self.events.push(Event {
            id: EventId::from(self.events.len() as i64 + 1),
            task_id: task,
            run_id: run,
            kind: kind.into(),
            payload: payload.into(),
            created_at: self.now,
        });
    }

    /// Runs one operation; on `Err` the caller throws this copy away (the rollback).
    fn exec(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Create {
                title,
                body,
                priority,
                parents,
            } => {
                let id = TaskId::from(self.tasks.len() as i64 + 1);
                self.tasks.push(Task {
                    id,
                    title: title.clone(),
                    body: body.clone(),
                    status: TaskStatus::Todo,
                    priority: *priority,
                    current_run_id: None,
                    created_at: self.now,
                    updated_at: self.now,
                });
                self.event(id, None, "created", title);
                // A parent naming the id the new task gets is a self-link (InvalidMove).
                for &parent in parents {
                    self.link(parent, id)?;
                }
                Ok(Value::of(id))
            }
            Op::Update {
                id,
                title,
                body,
                priority,
            } => {
                self.status(*id)?;
                let now = self.now;
                let t = self.task_mut(*id);
                t.title = title.clone();
                t.body = body.clone();
                t.priority = *priority;
                t.updated_at = now;
                self.event(*id, None, "updated", title);
                Ok(Value::Unit)
            }
            Op::Move { id, to } => {
                let from = self.status(*id)?;
                if from == TaskStatus::Running || *to == TaskStatus::Running {
                    return Err(Fail::InvalidMove {
                        id: *id,
                        from: from.to_string(),
                        to: to.to_string(),
                    });
                }
                self.set_status(*id, *to);
                self.event(*id, None, "moved", to.as_str());
                Ok(Value::Unit)
            }
            Op::Link { parent, child } => self.link(*parent, *child).map(|()| Value::Unit),
            Op::Comment { task, author, .. } => {
                self.status(*task)?;
                self.comments += 1;
                self.event(*task, None, "commented", author);
                Ok(Value::Id(self.comments))
            }
            Op::RecomputeReady => {
                let promoted: Vec<TaskId> = self
                    .tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Todo)
                    .filter(|t| {
                        self.links
                            .iter()
                            .filter(|&&(_, child)| child == t.id)
                            .all(|&(parent, _)| self.status(parent) == Ok(TaskStatus::Done))
                    })
                    .map(|t| t.id)
                    .collect();
                for &id in &promoted {
                    self.set_status(id, TaskStatus::Ready);
                    self.event(id, None, "ready", "");
                }
                Ok(Value::all(promoted))
            }
            Op::ClaimTask { task, worker } => self.claim(*task, worker),
            Op::ClaimNext { worker } => {
                let best = self
                    .tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Ready)
                    .max_by_key(|t| (t.priority, Reverse(t.id)))
                    .map(|t| t.id);
                match best {
                    Some(id) => self.claim(id, worker),
                    None => Ok(Value::Claim(None)),
                }
            }
            Op::Heartbeat { run } => {
                let now = self.now;
                let r = self.running_run(*run)?;
                r.heartbeat_at = r.heartbeat_at.max(now);
                Ok(Value::Unit)
            }
            Op::EndRun {
                run,
                outcome,
                result,
            } => self.end_run(*run, *outcome, result).map(Value::of),
            Op::ExpireRuns { max_age_ms } => {
                let cutoff = self.now - max_age_ms;
                let stale: Vec<RunId> = (1..=self.runs.len() as i64)
                    .map(RunId::from)
                    .filter(|&id| {
                        let r = &self.runs[id.get() as usize - 1];
                        r.running && r.heartbeat_at < cutoff
                    })
                    .collect();
                for &run in &stale {
                    self.end_run(run, RunOutcome::TimedOut, "no heartbeat")?;
                }
                Ok(Value::all(stale))
            }
            Op::AdvanceCursor { name, to } => {
                // Never backwards (a cursor reads 0 before its first advance), and never past
                // the last event (`check` calls that a broken invariant).
                let last = EventId::from(self.events.len() as i64);
                let at = self.cursor(name).max((*to).min(last));
                self.cursors.insert(name.clone(), at);
                Ok(Value::of(at))
            }
            Op::ListBoard => Ok(Value::Tasks(self.tasks.clone())),
            Op::GetTask { id } => Ok(Value::Task(self.task(*id).cloned())),
            Op::EventsSince { after, limit } => Ok(Value::Events(
                self.events
                    .iter()
                    .filter(|e| e.id > *after)
                    .take(*limit as usize)
                    .cloned()
                    .collect(),
            )),
            Op::Cursor { name } => Ok(Value::of(self.cursor(name))),
            Op::Tick { ms } => {
                self.now += ms;
                Ok(Value::Unit)
            }
            Op::Reopen { role } => {
                self.role = *role;
                Ok(Value::Unit)
            }
            Op::SecondSession { role } => {
                // One gateway per board, however the open one was opened (`Board::create`
                // included).
                if *role == Role::Gateway && self.role == Role::Gateway {
                    Err(Fail::GatewayRunning)
                } else {
                    Ok(Value::Unit)
                }
            }
        }
    }

    fn link(&mut self, parent: TaskId, child: TaskId) -> Result<(), Fail> {
        let parent_status = self.status(parent)?;
        let child_status = self.status(child)?;
        if parent == child {
            return Err(Fail::InvalidMove {
                id: child,
                from: "itself".into(),
                to: "its own child".into(),
            });
        }
        // A duplicate link changes nothing in the table but still counts as a link.
        self.links.insert((parent, child));
        if child_status == TaskStatus::Ready && parent_status != TaskStatus::Done {
            self.set_status(child, TaskStatus::Todo);
        }
        self.event(child, None, "linked", &parent.to_string());
        Ok(())
    }

    fn claim(&mut self, task: TaskId, worker: &str) -> Outcome {
        if self.status(task)? != TaskStatus::Ready {
            return Ok(Value::Claim(None));
        }
        let run = RunId::from(self.runs.len() as i64 + 1);
        self.runs.push(Run {
            task,
            running: true,
            heartbeat_at: self.now,
        });
        self.set_status(task, TaskStatus::Running);
        self.task_mut(task).current_run_id = Some(run);
        self.event(task, Some(run), "claimed", worker);
        Ok(Value::Claim(Some(Claim {
            task_id: task,
            run_id: run,
        })))
    }

    fn running_run(&mut self, run: RunId) -> Result<&mut Run, Fail> {
        Model::index(run, self.runs.len())
            .map(|i| &mut self.runs[i])
            .filter(|r| r.running)
            .ok_or(Fail::RunNotRunning(run))
    }

    fn end_run(&mut self, run: RunId, outcome: RunOutcome, result: &str) -> Result<TaskId, Fail> {
        let r = self.running_run(run)?;
        r.running = false;
        let task = r.task;
        self.set_status(task, outcome.task_status());
        self.task_mut(task).current_run_id = None;
        self.event(task, Some(run), outcome.as_str(), result);
        Ok(task)
    }
}

// ---------------------------------------------------------------------------------------
// Generating operations.
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    select(TEXTS).prop_map(String::from)
}

fn name() -> impl Strategy<Value = String> {
    select(NAMES).prop_map(String::from)
}

fn cursor_name() -> impl Strategy<Value = String> {
    select(&CURSORS[..]).prop_map(String::from)
}

fn role() -> impl Strategy<Value = Role> {
    select(vec![Role::Gateway, Role::Dashboard, Role::Worker])
}

fn priority() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -2i64..=2, 1 => Just(i64::MAX), 1 => Just(i64::MIN)]
}

/// Mostly an existing task; sometimes the next id (not yet there), or 0 and -1.
fn task_id(m: &Model) -> BoxedStrategy<TaskId> {
    let n = m.tasks.len() as i64;
    if n == 0 {
        prop_oneof![Just(1i64), -1i64..=0]
            .prop_map(TaskId::from)
            .boxed()
    } else {
        prop_oneof![12 => 1..=n, 1 => (n + 1)..=(n + 2), 1 => -1i64..=0]
            .prop_map(TaskId::from)
            .boxed()
    }
}

/// Mostly a running run; sometimes any run, one not yet opened, or 0.
fn run_id(m: &Model) -> BoxedStrategy<RunId> {
    let n = m.runs.len() as i64;
    let running: Vec<RunId> = (1..=n)
        .filter(|&id| m.runs[id as usize - 1].running)
        .map(RunId::from)
        .collect();
    let any = prop_oneof![4 => 1..=(n + 1), 1 => Just(0i64)].prop_map(RunId::from);
    if running.is_empty() {
        any.boxed()
    } else {
        prop_oneof![3 => select(running), 1 => any].boxed()
    }
}

struct BoardModel;

impl ReferenceStateMachine for BoardModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        role().prop_map(Model::new).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Op> {
        let task = task_id(m);
        let run = run_id(m);
        let events = m.events.len() as i64;
        let ids_of = |s: TaskStatus| -> Vec<TaskId> {
            m.tasks
                .iter()
                .filter(|t| t.status == s)
                .map(|t| t.id)
                .collect()
        };
        let ready = ids_of(TaskStatus::Ready);
        let running = ids_of(TaskStatus::Running);

        let create = {
            let parents = if m.tasks.is_empty() {
                // The only id to name is the one the new task gets: a self-link.
                prop_oneof![9 => Just(Vec::new()), 1 => vec(task.clone(), 1)].boxed()
            } else {
                vec(task.clone(), 0..=2).boxed()
            };
            (text(), text(), priority(), parents).prop_map(|(title, body, priority, parents)| {
                Op::Create {
                    title,
                    body,
                    priority,
                    parents,
                }
            })
        };
        let link = {
            let mut pairs = vec![(3, (task.clone(), task.clone()).boxed())];
            if !ready.is_empty() {
                // A ready child goes back to `todo` if its new parent is not done.
                pairs.push((2, (task.clone(), select(ready.clone())).boxed()));
            }
            if !m.links.is_empty() {
                // The same link again: no new row, but an event.
                let links: Vec<_> = m.links.iter().copied().collect();
                pairs.push((1, select(links).boxed()));
            }
            Union::new_weighted(pairs).prop_map(|(parent, child)| Op::Link { parent, child })
        };
        let update =
            (task.clone(), text(), text(), priority()).prop_map(|(id, title, body, priority)| {
                Op::Update {
                    id,
                    title,
                    body,
                    priority,
                }
            });
        let moved = (task.clone(), select(TaskStatus::ALL.to_vec()))
            .prop_map(|(id, to)| Op::Move { id, to });
        let comment = (task.clone(), name(), text()).prop_map(|(task, author, body)| Op::Comment {
            task,
            author,
            body,
        });
        let claim_task =
            (task.clone(), name()).prop_map(|(task, worker)| Op::ClaimTask { task, worker });
        let end_run = (run.clone(), select(RunOutcome::ALL.to_vec()), text()).prop_map(
            |(run, outcome, result)| Op::EndRun {
                run,
                outcome,
                result,
            },
        );
        // Round ages and ticks, so that a heartbeat lands exactly on the cutoff now and
        // then; -1 expires every running run, however fresh.
        let expire = prop_oneof![
            3 => select(vec![0i64, 1, 500, 999, 1000, 1500]),
            1 => 0i64..=3000,
            1 => Just(-1i64),
        ]
        .prop_map(|max_age_ms| Op::ExpireRuns { max_age_ms });
        let tick = prop_oneof![3 => select(vec![0i64, 1, 500, 1000]), 1 => 0i64..=2000]
            .prop_map(|ms| Op::Tick { ms });
        // Mostly a real position; sometimes before the start or past the last event.
        let to = prop_oneof![6 => 0..=events, 1 => -3i64..0, 1 => (events + 1)..=(events + 3)];
        let advance = (cursor_name(), to).prop_map(|(name, to)| Op::AdvanceCursor {
            name,
            to: to.into(),
        });
        let most = u32::try_from(events + 2).unwrap_or(u32::MAX);
        let limit = prop_oneof![4 => 0..=most, 1 => Just(u32::MAX)];
        let events_since = (-2i64..=events + 2, limit).prop_map(|(after, limit)| Op::EventsSince {
            after: after.into(),
            limit,
        });

        // Steer towards the interesting states: a few tasks, then claims, then runs to end.
        let w_create = if m.tasks.len() < 3 { 16 } else { 5 };
        let w_claim = 1 + 2 * ready.len().min(2) as u32;
        let w_end = 1 + 3 * running.len().min(2) as u32;
        prop_oneof![
            w_create => create,
            2 => update,
            3 => moved,
            4 => link,
            1 => comment,
            4 => Just(Op::RecomputeReady),
            w_claim => claim_task,
            w_claim => name().prop_map(|worker| Op::ClaimNext { worker }),
            w_end => run.prop_map(|run| Op::Heartbeat { run }),
            w_end => end_run,
            w_end => expire,
            2 => advance,
            1 => Just(Op::ListBoard),
            1 => task.prop_map(|id| Op::GetTask { id }),
            2 => events_since,
            1 => cursor_name().prop_map(|name| Op::Cursor { name }),
            3 => tick,
            2 => role().prop_map(|role| Op::Reopen { role }),
            1 => role().prop_map(|role| Op::SecondSession { role }),
        ]
        .boxed()
    }

    fn apply(state: Model, op: &Op) -> Model {
        let mut next = state.clone();
        let outcome = next.exec(op);
        let mut next = if outcome.is_ok() { next } else { state };
        next.last = outcome;
        next
    }
}

// ---------------------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------------------

/// A clock that moves only when the test says so.
#[derive(Debug)]
struct FakeClock(AtomicI64);

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// One board in its own folder, and the session on it.
struct Sut {
    path: PathBuf,
    clock: Arc<FakeClock>,
    /// `RefCell` because `check_invariants` only gets `&Sut`; `Option` so that a reopen
    /// drops the old session (and its gateway lock) before opening the new one.
    board: RefCell<Option<Board>>,
    steps: Cell<u32>,
    /// Dropped last: the folder goes after every connection to the board has closed.
    _dir: tempfile::TempDir,
}

impl Sut {
    fn config(&self, role: Role) -> StoreConfig {
        StoreConfig::new(role).clock(self.clock.clone())
    }

    fn board(&mut self) -> &mut Board {
        self.board.get_mut().as_mut().expect("an open session")
    }
}

fn outcome<T>(r: kanban_store::Result<T>, f: impl FnOnce(T) -> Value) -> Outcome {
    r.map(f).map_err(Fail::from)
}

/// Asserts that `board` shows exactly what `m` holds.
fn assert_same(board: &mut Board, m: &Model, context: &str) {
    assert_eq!(
        board.list_board().expect("list_board"),
        m.tasks,
        "{context}: tasks"
    );
    assert_eq!(
        board
            .events_since(0.into(), u32::MAX)
            .expect("events_since"),
        m.events,
        "{context}: events"
    );
    for name in CURSORS {
        assert_eq!(
            board.cursor(name).expect("cursor"),
            m.cursor(name),
            "{context}: cursor {name}"
        );
    }
}

struct BoardTest;

impl StateMachineTest for BoardTest {
    type SystemUnderTest = Sut;
    type Reference = BoardModel;

    fn init_test(m: &Model) -> Sut {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut sut = Sut {
            path: dir.path().join("kanban.db"),
            clock: Arc::new(FakeClock(AtomicI64::new(m.now))),
            board: RefCell::new(None),
            steps: Cell::new(0),
            _dir: dir,
        };
        let board = Board::create(&sut.path, sut.config(m.role)).expect("a new board");
        *sut.board.get_mut() = Some(board);
        sut
    }

    fn apply(mut sut: Sut, m: &Model, op: Op) -> Sut {
        let got = match &op {
            Op::Tick { ms } => {
                sut.clock.0.fetch_add(*ms, Ordering::SeqCst);
                Ok(Value::Unit)
            }
            Op::Reopen { role } => {
                sut.board.get_mut().take();
                let opened = Board::open_with(&sut.path, sut.config(*role));
                outcome(opened, |b| {
                    *sut.board.get_mut() = Some(b);
                    Value::Unit
                })
            }
            Op::SecondSession { role } => match Board::open_with(&sut.path, sut.config(*role)) {
                Ok(mut other) => {
                    assert_eq!(other.role(), *role);
                    assert_same(&mut other, m, "second session");
                    Ok(Value::Unit)
                }
                Err(e) => Err(Fail::from(e)),
            },
            op => run(sut.board(), op),
        };
        assert_eq!(got, m.last, "{op:?} returned something else than the model");
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        let mut guard = sut.board.borrow_mut();
        let board = guard.as_mut().expect("an open session");
        assert_eq!(board.role(), m.role);
        assert_same(board, m, "after the step");
        let step = sut.steps.get() + 1;
        sut.steps.set(step);
        if step.is_multiple_of(CHECK_EVERY) {
            let report = board.check(CheckLevel::Quick).expect("check");
            assert!(report.is_ok(), "check(Quick): {report:?}");
        }
    }

    fn teardown(sut: Sut) {
        let mut guard = sut.board.borrow_mut();
        let board = guard.as_mut().expect("an open session");
        let report = board.check(CheckLevel::Full).expect("check");
        assert!(report.is_ok(), "check(Full): {report:?}");
    }
}

/// Runs one board operation on the session.
fn run(b: &mut Board, op: &Op) -> Outcome {
    match op {
        Op::Create {
            title,
            body,
            priority,
            parents,
        } => {
            let task = NewTask {
                title: title.clone(),
                body: body.clone(),
                priority: *priority,
                parents: parents.clone(),
            };
            outcome(b.create_task(&task), Value::of)
        }
        Op::Update {
            id,
            title,
            body,
            priority,
        } => outcome(b.update_task(*id, title, body, *priority), |_| Value::Unit),
        Op::Move { id, to } => outcome(b.move_task(*id, *to), |_| Value::Unit),
        Op::Link { parent, child } => outcome(b.link(*parent, *child), |_| Value::Unit),
        Op::Comment { task, author, body } => outcome(b.comment(*task, author, body), Value::Id),
        Op::RecomputeReady => outcome(b.recompute_ready(), Value::all),
        Op::ClaimTask { task, worker } => outcome(b.claim_task(*task, worker), Value::Claim),
        Op::ClaimNext { worker } => outcome(b.claim_next(worker), Value::Claim),
        Op::Heartbeat { run } => outcome(b.heartbeat(*run), |_| Value::Unit),
        Op::EndRun {
            run,
            outcome: how,
            result,
        } => outcome(b.end_run(*run, *how, result), Value::of),
        Op::ExpireRuns { max_age_ms } => outcome(b.expire_runs(*max_age_ms), Value::all),
        Op::AdvanceCursor { name, to } => outcome(b.advance_cursor(name, *to), Value::of),
        Op::ListBoard => outcome(b.list_board(), Value::Tasks),
        Op::GetTask { id } => outcome(b.get_task(*id), Value::Task),
        Op::EventsSince { after, limit } => outcome(b.events_since(*after, *limit), Value::Events),
        Op::Cursor { name } => outcome(b.cursor(name), Value::of),
        Op::Tick { .. } | Op::Reopen { .. } | Op::SecondSession { .. } => {
            unreachable!("handled by the caller")
        }
    }
}

/// 128 cases by default (`PROPTEST_CASES` overrides); no regression files are written.
fn config() -> Config {
    let defaults = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            128
        },
        failure_persistence: None,
        ..defaults
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    /// The store agrees with the model over random sequences of operations.
    #[test]
    fn store_matches_model(sequential 1..40 => BoardTest);
}
