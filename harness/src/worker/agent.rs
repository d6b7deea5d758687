//! An agent: heartbeats for running runs, and their results.
//!
//! Agents find running runs on the board (the dispatcher claimed them on their behalf),
//! send heartbeats, and now and then end one: completed, blocked or crashed. Two agents may
//! pick the same run; the loser gets `RunNotRunning`, which is expected, not a finding.

use kanban_store::{Error as StoreError, Role, RunOutcome, TaskStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Pace, Sessions, read_failed};
use crate::ledger::Op;
use crate::scenario::WorkerSpec;

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let mut board = sessions.open(Role::Worker)?;
    let mut pace = Pace::new(&[spec.heartbeat_ms], rng);
    while pace.next().is_some() {
        let running: Vec<i64> = match board.list_board() {
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
            ctx.write(Op::Heartbeat, run, |_| {
                board.heartbeat(run).map(|()| Some(run))
            });
        } else {
            let outcome = match rng.random_range(0..10) {
                0..6 => RunOutcome::Completed,
                6 => RunOutcome::Blocked,
                _ => RunOutcome::Crashed,
            };
            ctx.write(Op::EndRun, run, |token| {
                board.end_run(run, outcome, token).map(|_| Some(run))
            });
        }
    }
    Ok(())
}
