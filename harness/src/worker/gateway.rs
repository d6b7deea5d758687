//! The gateway: dispatcher tick, notifier, checkpoint owner.
//!
//! Upstream, the gateway ran a dispatcher (every 60 s) and a notifier (every 5 s) as two
//! threads with their own connections. Here they are two actors of one thread with their
//! own sessions, at the scenario's compressed intervals. Inside each claim transaction the
//! [`Overlap`] may connect another session, as the notifier thread did. Every write the
//! dispatcher commits is ledgered (promotions and time-outs too, one ack per task or run),
//! and so is what the notifier reads.

use kanban_store::WriteServer;
use kanban_store::{Board, Error as StoreError, EventId, Role, Txn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Overlap, Pace, Sessions, last_event, read_failed};
use crate::ledger::Op;
use crate::scenario::WorkerSpec;

/// How often the gateway answers the dashboards' writes in single-writer mode.
const SERVE_MS: u64 = 1;

/// Runs older than this without a heartbeat are timed out by the dispatcher.
const EXPIRE_MS: i64 = 250;

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let mut dispatcher = sessions.open(Role::Gateway)?;
    // Single-writer mode: the dashboards' writes come in here (we hold the gateway lock).
    let server = (dispatcher.config().single_writer)
        .then(|| WriteServer::bind(&mut dispatcher))
        .transpose()?;
    // The owner checks the board at start-up (R7: explicit, never per request), before its
    // other sessions open: index-only damage is repaired, other damage stops it (by default).
    match dispatcher.check_at_start() {
        Ok(_) => {}
        Err(e @ StoreError::Corrupt { .. }) => {
            read_failed(ctx, &e);
            return Ok(());
        }
        Err(e) => read_failed(ctx, &e),
    }
    if spec.silent {
        silent(&mut dispatcher, spec, ctx, rng);
        return Ok(());
    }
    let mut notifier = sessions.second(spec, Role::Worker)?;
    let overlap = sessions.overlap(spec, Role::Worker);
    let name = ctx.cursor_name();
    // Where this incarnation finds the cursor: at least where the last one left it.
    let mut cursor = match notifier.as_mut().unwrap_or(&mut dispatcher).cursor(&name) {
        Ok(at) => {
            ctx.observed_cursor(at);
            at
        }
        Err(_) => EventId::default(),
    };
    // The server's actor only exists in single-writer mode (others keep their interleaving).
    let intervals = [spec.tick_ms, spec.notify_ms, SERVE_MS];
    let mut pace = Pace::new(&intervals[..2 + usize::from(server.is_some())], rng);
    while let Some(actor) = pace.next() {
        match actor {
            0 => tick(&mut dispatcher, ctx, rng, &overlap),
            2 => {
                if let Some(Err(e)) = server.as_ref().map(|s| s.serve(&mut dispatcher)) {
                    read_failed(ctx, &e);
                }
            }
            _ => notify(
                notifier.as_mut().unwrap_or(&mut dispatcher),
                ctx,
                &name,
                &mut cursor,
            ),
        }
    }
    Ok(())
}

/// One dispatcher tick: promote, claim a few, time out the silent, checkpoint if due.
fn tick(board: &mut Board, ctx: &mut Ledgered, rng: &mut ChaCha8Rng, overlap: &Overlap<'_>) {
    ctx.write_each(Op::Ready, (0, 0), |_| {
        board.transaction(|t| Ok(with_events(t, t.recompute_ready()?)))
    });
    for _ in 0..rng.random_range(1..=3) {
        let claimed = ctx.write(Op::Claim, (0, 0), |token| {
            board.transaction(|t| {
                let claim = t.claim_next(token)?;
                let event = last_event(t);
                overlap.maybe(rng);
                Ok(claim.map(|c| (c.run_id.get(), event)))
            })
        });
        if claimed.is_none() {
            break;
        }
    }
    ctx.write_each(Op::Expire, (0, 0), |_| {
        board.transaction(|t| Ok(with_events(t, t.expire_runs(EXPIRE_MS)?)))
    });
    if let Err(e) = board.checkpoint_if_due() {
        read_failed(ctx, &e);
    }
}

/// A gateway that commits nothing of its own: on every tick, only the checkpoint if due
/// (the WAL grows by what the others commit).
fn silent(board: &mut Board, spec: &WorkerSpec, ctx: &mut Ledgered, rng: &mut ChaCha8Rng) {
    let mut pace = Pace::new(&[spec.tick_ms], rng);
    while pace.next().is_some() {
        if let Err(e) = board.checkpoint_if_due() {
            read_failed(ctx, &e);
        }
    }
}

/// The tasks or runs a step changed, each with the event it logged for it (one each, in
/// the same order), as acks record them.
fn with_events(t: &Txn<'_>, ids: Vec<impl Into<i64>>) -> Vec<(i64, i64)> {
    let events = t.event_ids().into_iter().map(EventId::get);
    ids.into_iter().map(Into::into).zip(events).collect()
}

/// One notifier poll: read new events, move the cursor past them.
fn notify(board: &mut Board, ctx: &mut Ledgered, name: &str, cursor: &mut EventId) {
    match board.events_since(*cursor, 100) {
        Ok(events) => {
            ctx.observed_events(*cursor, &events);
            if let Some(last) = events.last().map(|e| e.id) {
                let moved = ctx.write(Op::Cursor, (last.get(), 0), |_| {
                    board
                        .advance_cursor(name, last)
                        .map(|at| Some((at.get(), 0)))
                });
                *cursor = moved.map_or(*cursor, |(at, _)| EventId::from(at));
            }
        }
        Err(e) => read_failed(ctx, &e),
    }
}
