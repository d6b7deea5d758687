//! The repairer: an operator running `kanban-db repair` now and then while the services
//! run (upstream: stop both services, dump, reload, rename by hand, restart).
//!
//! On start it repairs first: a repair killed midway is finished by the next one. Then, at
//! each turn, it damages the board if asked (an index, or beyond indexes) (with the board to itself, like a repair) and
//! repairs. The other workers let go of the board at their next operation and reopen once
//! each repair has published the next generation; the ledgers show that nothing they had
//! acknowledged is lost. Its ledger says what it did: a `Damage` intent before each damage,
//! a `Repair` ack after each repair that left the board healthy.

use std::path::Path;

use kanban_store::hazards;
use kanban_store::repair;
use kanban_store::{Error as StoreError, StoreConfig};
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Pace, Sessions, read_failed};
use crate::ledger::Op;
use crate::scenario::{Damage, WorkerSpec};

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let (db, cfg) = sessions.parts();
    repair_ledgered(db, cfg, ctx);
    let mut pace = Pace::new(&[spec.repair_ms], rng);
    while pace.next().is_some() {
        if let Some(damage) = damaging(spec.damage) {
            let intent = ctx.intent(Op::Damage, (0, 0));
            match hazards::damage_online(db, cfg, damage) {
                Ok(()) => ctx.ack(intent, (0, 0)),
                Err(e) => {
                    read_failed(ctx, &e);
                    continue;
                }
            }
        }
        repair_ledgered(db, cfg, ctx);
    }
    Ok(())
}

/// The store's function that does `damage` to a closed board, if any.
fn damaging(damage: Damage) -> Option<fn(&Path) -> rusqlite::Result<()>> {
    match damage {
        Damage::None => None,
        Damage::Index => Some(hazards::damage_index),
        Damage::Reference => Some(hazards::damage_reference),
        Damage::UniqueIndex => Some(hazards::damage_unique_index),
    }
}

/// Repairs; a repair that leaves the board healthy is acked in the ledger, so that the
/// supervisor knows whether damage this worker injected was undone (see `repair_after`).
fn repair_ledgered(db: &Path, cfg: &StoreConfig, ctx: &mut Ledgered) {
    ctx.write(Op::Repair, (0, 0), |_| match repair(db, cfg) {
        Ok(report) if !report.after.is_ok() => {
            eprintln!(
                "repairer: the board is still damaged: {:?}",
                report.after.findings().collect::<Vec<_>>()
            );
            Ok(None)
        }
        Ok(report) => {
            eprintln!("repairer: {:?}", report.action);
            Ok(Some((0, 0)))
        }
        Err(e) => Err(e),
    });
}
