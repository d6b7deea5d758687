//! Losses injected on purpose, for controls only: a control must show that the checks
//! classify a lost acknowledged write as `lost_acked`, and one a reader had observed as
//! `lost_after_read`. Without a control, nothing proves that those findings can fire.
//!
//! The supervisor calls [`apply`] after every worker is dead and before the checks. It
//! does nothing unless the scenario's top-level `inject` key is set; then it deletes the
//! event of one acknowledged write (a task created, a comment, a rename or a move: events
//! nothing else refers to, so no other invariant breaks) through a plain connection.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::check::Ledger;
use crate::error::{Error, Result};
use crate::ledger::{Mark, Op, Record};
use crate::scenario::{Inject, Scenario};

/// Deletes what `scenario.inject` asks for from the board at `db`; an error when this seed
/// acknowledged nothing that fits (the control would prove nothing).
pub fn apply(scenario: &Scenario, db: &Path, ledgers: &[Ledger]) -> Result<()> {
    if scenario.inject == Inject::None {
        return Ok(());
    }
    let records: Vec<&Record> = ledgers
        .iter()
        .flat_map(|l| match l {
            Ledger::Binary(c) => c.records.as_slice(),
            Ledger::Text(..) => &[],
        })
        .collect();
    let read = |id: i64| {
        records
            .iter()
            .any(|r| r.mark == Mark::Read && r.op == Op::Read && r.a < id && id <= r.b)
    };
    let want_read = scenario.inject == Inject::DeleteRead;
    let target = records
        .iter()
        .filter(|r| r.mark == Mark::Ack && r.b > 0)
        .filter(|r| {
            matches!(
                r.op,
                Op::CreateTask | Op::Comment | Op::UpdateTask | Op::Move
            )
        })
        .find(|r| read(r.b) == want_read)
        .ok_or_else(|| Error::Scenario {
            path: scenario.path.clone(),
            message: format!(
                "`inject = {:?}`: this seed acknowledged no event {} a reader had seen",
                scenario.inject,
                if want_read { "that" } else { "that no" }
            ),
        })?;
    let sql = |e: rusqlite::Error| Error::system("injecting a loss", std::io::Error::other(e));
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags).map_err(sql)?;
    conn.execute("DELETE FROM task_events WHERE id = ?1", [target.b])
        .map_err(sql)?;
    eprintln!(
        "inject: deleted event {} of {:?} {}",
        target.b,
        target.op,
        target.token()
    );
    Ok(())
}
