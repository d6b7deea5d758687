//! The dashboard: API reads, websocket polling, user edits.
//!
//! Upstream, the dashboard served HTTP requests and a websocket that polled for events
//! every 0.3 s per browser tab, each on its own connection. Here a poller, a request
//! handler and an editor are actors of one thread; with `connections >= 2` the poller has a
//! session of its own. Edits happen inside write transactions where the [`Overlap`] may
//! connect another session. What the poller reads is ledgered: it must stay on the board.

use kanban_store::{Board, Error as StoreError, EventId, NewTask, Role, TaskId, TaskStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Overlap, Pace, Sessions, last_event, read_failed};
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

/// One user edit: create (most often), comment, move or rename a task.
fn edit(
    board: &mut Board,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
    overlap: &Overlap<'_>,
    known: &[(TaskId, TaskStatus)],
) {
    let roll = rng.random_range(0..100);
    let pick = (!known.is_empty()).then(|| known[rng.random_range(0..known.len())]);
    match (roll, pick) {
        (0..40, _) | (_, None) => {
            let priority = rng.random_range(0..5);
            ctx.write(Op::CreateTask, (0, 0), |token| {
                let task = NewTask {
                    title: token.to_string(),
                    body: "from the dashboard".into(),
                    priority,
                    parents: Vec::new(),
                };
                if board.config().single_writer {
                    // The gateway runs it: no transaction of our own, so no overlap inside it.
                    // (Its answer is the task's id: the event's stays unknown.)
                    return board.create_task(&task).map(|id| Some((id.get(), 0)));
                }
                board.transaction(|t| {
                    let id = t.create_task(&task)?;
                    let event = last_event(t);
                    overlap.maybe(rng);
                    Ok(Some((id.get(), event)))
                })
            });
        }
        (40..65, Some((task, _))) => {
            ctx.write(Op::Comment, (task.get(), 0), |token| {
                if board.config().single_writer {
                    return board
                        .comment(task, token, "looks good")
                        .map(|id| Some((id, 0)));
                }
                board.transaction(|t| {
                    let id = t.comment(task, token, "looks good")?;
                    Ok(Some((id, last_event(t))))
                })
            });
        }
        (65..85, Some((task, status))) if status != TaskStatus::Running => {
            let to =
                [TaskStatus::Todo, TaskStatus::Ready, TaskStatus::Blocked][rng.random_range(0..3)];
            ctx.write(Op::Move, (task.get(), ledger::status_code(to)), |_| {
                board
                    .move_task(task, to)
                    .map(|event| Some((task.get(), event.get())))
            });
        }
        (_, Some((task, _))) => {
            let priority = rng.random_range(0..5);
            ctx.write(Op::UpdateTask, (task.get(), 0), |token| {
                board
                    .update_task(task, token, "edited", priority)
                    .map(|event| Some((task.get(), event.get())))
            });
        }
    }
}
