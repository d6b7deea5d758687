//! The repairer: an operator running `kanban-db repair` now and then while the services
//! run (upstream: stop both services, dump, reload, rename by hand, restart).
//!
//! On start it repairs first: a repair killed midway is finished by the next one. Then, at
//! each turn, it damages an index if asked (with the board to itself, like a repair) and
//! repairs. The other workers let go of the board at their next operation and reopen once
//! each repair has published the next generation; the ledgers show that nothing they had
//! acknowledged is lost.

use kanban_store::Error as StoreError;
use kanban_store::repair::repair;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Pace, Sessions, read_failed};
use crate::scenario::WorkerSpec;

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let (db, cfg) = sessions.parts();
    if let Err(e) = repair(db, cfg) {
        read_failed(ctx, &e);
    }
    let mut pace = Pace::new(&[spec.repair_ms], rng);
    while pace.next().is_some() {
        if spec.damage
            && let Err(e) = kanban_store::hazards::damage_index_online(db, cfg)
        {
            read_failed(ctx, &e);
            continue;
        }
        match repair(db, cfg) {
            Ok(report) if !report.after.is_ok() => eprintln!(
                "repairer: the board is still damaged: {:?}",
                report.after.findings().collect::<Vec<_>>()
            ),
            Ok(report) => eprintln!("repairer: {:?}", report.action),
            Err(e) => read_failed(ctx, &e),
        }
    }
    Ok(())
}
