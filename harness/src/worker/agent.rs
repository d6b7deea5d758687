//! An agent: heartbeats for running runs, and their results.
//!
//! Agents find running runs on the board (the dispatcher claimed them on their behalf),
//! send heartbeats, and now and then end one: completed, blocked or crashed. Two agents may
//! pick the same run; the loser gets `RunNotRunning`, which is expected, not a finding.

use kanban_store::{Board, Error as StoreError, NewTask, Role, RunId, RunOutcome, TaskStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Pace, Sessions, last_event, read_failed};
use crate::ledger::{self, Op};
use crate::scenario::WorkerSpec;

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let mut board = sessions.open(Role::Worker)?;
    let mut pace = Pace::new(&[spec.heartbeat_ms], rng);
    let mut beats = 0u32;
    while pace.next().is_some() {
        beats += 1;
        if spec.fork_every > 0 && beats.is_multiple_of(spec.fork_every) {
            report_from_a_fork(&mut board, ctx, beats);
        }
        let running: Vec<RunId> = match board.list_board() {
            Ok(tasks) => tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Running)
                .filter_map(|t| t.current_run_id)
                .collect(),
            Err(e) => {
                read_failed(ctx, &e);
                continue;
            }
        };
        if running.is_empty() {
            continue;
        }
        let run = running[rng.random_range(0..running.len())];
        if rng.random_bool(0.7) {
            ctx.write(Op::Heartbeat, (run.get(), 0), |_| {
                board.heartbeat(run).map(|at| Some((run.get(), at)))
            });
        } else {
            let outcome = match rng.random_range(0..10) {
                0..6 => RunOutcome::Completed,
                6 => RunOutcome::Blocked,
                _ => RunOutcome::Crashed,
            };
            ctx.write(
                Op::EndRun,
                (run.get(), ledger::outcome_code(outcome)),
                |token| {
                    board.transaction(|t| {
                        t.end_run(run, outcome, token)?;
                        Ok(Some((run.get(), last_event(t))))
                    })
                },
            );
        }
    }
    Ok(())
}

/// The upstream mistake `connection-across-fork`, at its most dangerous: the agent forks
/// while it is inside a write transaction, and the child finishes and commits the copy of
/// that transaction it inherited, while the parent commits its own. The child's copy
/// believes it holds the WAL write lock, but POSIX locks belong to the parent. The
/// hardened store refuses the child's use of the session (`UsedAcrossFork`, expected).
fn report_from_a_fork(board: &mut Board, ctx: &mut Ledgered, beats: u32) {
    use nix::unistd::{ForkResult, fork};
    let mut child = None;
    let mut created = (0, 0);
    let result = board.transaction(|t| {
        t.recompute_ready()?;
        // SAFETY: the worker is single-threaded; the child only finishes this transaction
        // and leaves with _exit below, never returning into the worker loop.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                ctx.as_fork(beats);
                let intent = ctx.intent(Op::CreateTask, (0, 0));
                // Marked a child first, so that whatever happens it leaves below.
                child = Some(intent);
                let id = t.create_task(&NewTask {
                    title: intent.token(),
                    ..Default::default()
                })?;
                created = (id.get(), last_event(t));
            }
            // Under the token the child runs on the parent's turn: the parent waits for it,
            // so the two never run at once and the interleaving stays the seed's.
            Ok(ForkResult::Parent { child }) if crate::token::connected() => {
                let _ = nix::sys::wait::waitpid(child, None);
            }
            Ok(ForkResult::Parent { .. }) => {}
            Err(e) => eprintln!("fork failed: {e}"),
        }
        Ok(())
    });
    if let Some(intent) = child {
        match result {
            Ok(()) => ctx.ack(intent, created),
            Err(e) => ctx.error(Op::CreateTask, &e),
        }
        // SAFETY: leave without running the parent's destructors (its connections).
        unsafe { libc::_exit(0) }
    }
    if let Err(e) = result {
        read_failed(ctx, &e);
    }
    // Collect any forked child that has finished.
    while let Ok(status) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
    {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}
