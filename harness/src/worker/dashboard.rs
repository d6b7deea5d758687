//! The dashboard: API reads, websocket polling, user edits.
//!
//! Upstream, the dashboard served HTTP requests and a websocket that polled for events
//! every 0.3 s per browser tab, each on its own connection. Here a poller, a request
//! handler and an editor are actors of one thread; with `connections >= 2` the poller has a
//! session of its own. Edits happen inside write transactions where the [`Overlap`] may
//! connect another session. What the poller reads is ledgered: it must stay on the board.
//! In single-writer mode every edit is a request to the gateway, sent again with the same
//! request id after every retryable error (`Unavailable`: a gateway down, stalled or slow
//! past the client's deadline) until it is answered: the ledger has one intent and at most
//! one ack per edit, and a gateway that applied a request twice shows as a `duplicate`.

use kanban_store::{Board, Error as StoreError, EventId, NewTask, Role, TaskId, TaskStatus, Write};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Effect, Ledgered, Overlap, Pace, Sessions, last_event, read_failed, request_id};
use crate::ledger::{self, Op};
use crate::scenario::WorkerSpec;

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let mut main = sessions.open(Role::Dashboard)?;
    let mut poller = sessions.second(spec, Role::Dashboard)?;
    let overlap = sessions.overlap(spec, Role::Dashboard);
    let mut ws_cursor = EventId::default();
    let mut known: Vec<(TaskId, TaskStatus)> = Vec::new();
    let mut pace = Pace::new(&[spec.poll_ms, spec.request_ms, spec.edit_ms], rng);
    while let Some(actor) = pace.next() {
        match actor {
            0 => match poller
                .as_mut()
                .unwrap_or(&mut main)
                .events_since(ws_cursor, 50)
            {
                Ok(events) => {
                    ctx.observed_events(ws_cursor, &events);
                    ws_cursor = events.last().map_or(ws_cursor, |e| e.id);
                }
                Err(e) => read_failed(ctx, &e),
            },
            1 => match main.list_board() {
                Ok(tasks) => known = tasks.iter().map(|t| (t.id, t.status)).collect(),
                Err(e) => read_failed(ctx, &e),
            },
            _ => edit(&mut main, ctx, rng, &overlap, &known),
        }
    }
    Ok(())
}

/// One user edit: create (most often), comment, move or rename a task. In single-writer
/// mode each goes to the gateway ([`forward`]).
fn edit(
    board: &mut Board,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
    overlap: &Overlap<'_>,
    known: &[(TaskId, TaskStatus)],
) {
    let roll = rng.random_range(0..100);
    let pick = (!known.is_empty()).then(|| known[rng.random_range(0..known.len())]);
    let forwards = board.config().single_writer;
    match (roll, pick) {
        (0..40, _) | (_, None) => create(board, ctx, rng, overlap, forwards),
        (40..65, Some((task, _))) => comment(board, ctx, task, forwards),
        (65..85, Some((task, status))) if status != TaskStatus::Running => {
            move_task(board, ctx, rng, task, forwards)
        }
        (_, Some((task, _))) => rename(board, ctx, rng, task, forwards),
    }
}

/// Creates a task (its title the token).
fn create(
    board: &mut Board,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
    overlap: &Overlap<'_>,
    forwards: bool,
) {
    let priority = rng.random_range(0..5);
    let task = |token: &str| NewTask {
        title: token.to_string(),
        body: "from the dashboard".into(),
        priority,
        parents: Vec::new(),
    };
    if forwards {
        // (The gateway's answer is the task's id: the event's stays unknown.)
        let write = |token: &str| Write::CreateTask(task(token));
        forward(board, ctx, Op::CreateTask, (0, 0), write, |id| (id, 0));
        return;
    }
    ctx.write(Op::CreateTask, (0, 0), |token| {
        board.transaction(|t| {
            let id = t.create_task(&task(token))?;
            let event = last_event(t);
            overlap.maybe(rng);
            Ok(Some((id.get(), event)))
        })
    });
}

/// Comments on `task` (its author the token).
fn comment(board: &mut Board, ctx: &mut Ledgered, task: TaskId, forwards: bool) {
    let comment = |token: &str| Write::Comment {
        task,
        author: token.to_string(),
        body: "looks good".into(),
    };
    if forwards {
        forward(board, ctx, Op::Comment, (task.get(), 0), comment, |id| {
            (id, 0)
        });
        return;
    }
    ctx.write(Op::Comment, (task.get(), 0), |token| {
        board.transaction(|t| {
            let id = t.comment(task, token, "looks good")?;
            Ok(Some((id, last_event(t))))
        })
    });
}

/// Moves `task` to todo, ready or blocked.
fn move_task(
    board: &mut Board,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
    task: TaskId,
    forwards: bool,
) {
    let to = [TaskStatus::Todo, TaskStatus::Ready, TaskStatus::Blocked][rng.random_range(0..3)];
    let args = (task.get(), ledger::status_code(to));
    if forwards {
        let write = |_: &str| Write::MoveTask { id: task, to };
        forward(board, ctx, Op::Move, args, write, |event| {
            (task.get(), event)
        });
        return;
    }
    ctx.write(Op::Move, args, |_| {
        board
            .move_task(task, to)
            .map(|event| Some((task.get(), event.get())))
    });
}

/// Renames `task` to the token.
fn rename(
    board: &mut Board,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
    task: TaskId,
    forwards: bool,
) {
    let priority = rng.random_range(0..5);
    if forwards {
        let write = |token: &str| Write::UpdateTask {
            id: task,
            title: token.to_string(),
            body: "edited".into(),
            priority,
        };
        forward(board, ctx, Op::UpdateTask, (task.get(), 0), write, |e| {
            (task.get(), e)
        });
        return;
    }
    ctx.write(Op::UpdateTask, (task.get(), 0), |token| {
        board
            .update_task(task, token, "edited", priority)
            .map(|event| Some((task.get(), event.get())))
    });
}

/// Sends the write `write` makes of its token to the gateway, with the request id of its
/// intent, again after every retryable error (the id makes that safe); `effect` is the
/// ack's for the gateway's answer.
fn forward(
    board: &mut Board,
    ctx: &mut Ledgered,
    op: Op,
    args: (i64, i64),
    write: impl Fn(&str) -> Write,
    effect: impl Fn(i64) -> Effect,
) {
    ctx.write_retrying(op, args, |intent| {
        let value = board.submit(request_id(intent), &write(&intent.token()))?;
        Ok(Some(effect(value)))
    });
}
