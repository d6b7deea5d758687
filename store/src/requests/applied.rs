//! The board's table of applied request ids (`request_ids`), written in the transaction
//! of the write it records.
//!
//! A write and its id commit together or not at all, so an id found in the table is a
//! write that happened, and its recorded value is the answer its first caller got (or
//! would have got, had the answer not been lost). The table keeps the newest [`KEEP`] ids:
//! a retry comes within the client's deadline, or a caller's restart, not after ten
//! thousand other writes.

use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{RequestId, Write};
use crate::error::{Error, Result, SqlResultExt};
use crate::txn::Txn;

/// How many of the newest applied ids the board keeps.
pub const KEEP: i64 = 10_000;

/// What a write is, for telling a retry (same id, same write) from a reuse of its id.
pub(crate) fn digest(write: &Write) -> String {
    let bytes = serde_json::to_vec(write).expect("writes serialise");
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The recorded answer of `id`, if it was applied; [`Error::RequestIdReused`] if it was
/// applied for another write than `digest`'s.
pub(crate) fn recorded(t: &Txn<'_>, id: RequestId, digest: &str) -> Result<Option<i64>> {
    let found: Option<(String, i64)> = t
        .live()?
        .query_row(
            "SELECT digest, value FROM request_ids WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .at(t.path)?;
    match found {
        Some((d, value)) if d == digest => Ok(Some(value)),
        Some(_) => Err(Error::RequestIdReused {
            path: t.path.to_path_buf(),
            id: id.to_string(),
        }),
        None => Ok(None),
    }
}

/// Records that `id` (the write `digest`) was applied with answer `value`, and forgets
/// the ids older than the newest [`KEEP`].
pub(crate) fn record(t: &Txn<'_>, id: RequestId, digest: &str, value: i64) -> Result<()> {
    let tx = t.live()?;
    tx.execute(
        "INSERT INTO request_ids (id, digest, value, applied_at) VALUES (?1, ?2, ?3, ?4)",
        params![id.to_string(), digest, value, t.now],
    )
    .at(t.path)?;
    let seq = tx.last_insert_rowid();
    tx.execute("DELETE FROM request_ids WHERE seq <= ?1", [seq - KEEP])
        .at(t.path)?;
    Ok(())
}
