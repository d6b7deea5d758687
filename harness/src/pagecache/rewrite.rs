//! Rewriting one file to the state the cut chose for it.
//!
//! All of the file's pending operations are undone, newest first, which brings it back to
//! its content at its last sync; undoing each one first reads the bytes it wrote (the state
//! just after it is exactly the file at that moment, since every later operation is already
//! undone). Then the kept operations are applied again in their order, a torn write only in
//! the sectors it keeps. So the file ends as "synced content + a subset of the pending
//! operations, in order", with at most one write of the subset torn.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::record::Op;
use super::{Error, Result, SECTOR};

/// What to do to one file: which pending operations to keep, and which write to tear.
#[derive(Debug, Clone, Default)]
pub struct FilePlan {
    /// Per pending operation, oldest first: kept?
    pub kept: Vec<bool>,
    /// The kept write to tear (its index) and, per sector it covers, whether the sector
    /// gets the new bytes.
    pub torn: Option<(usize, Vec<bool>)>,
}

/// The sectors `[first, last]` a write covers, if it is not empty.
pub fn sectors(offset: u64, len: u64) -> Option<(u64, u64)> {
    (len > 0).then(|| (offset / SECTOR, (offset + len - 1) / SECTOR))
}

/// Rewrites the file at `path`, whose pending operations are `ops`, as `plan` says.
pub fn rewrite(path: &Path, ops: &[Op], plan: &FilePlan) -> Result<()> {
    let io = |what| move |e| Error::io(what, path, e);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("opening"))?;
    let mut redo = vec![Vec::new(); ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        redo[i] = undo(&f, op).map_err(io("undoing a write to"))?;
    }
    for (i, op) in ops.iter().enumerate() {
        if !plan.kept[i] {
            continue;
        }
        let torn = plan
            .torn
            .as_ref()
            .filter(|(t, _)| *t == i)
            .map(|(_, mask)| mask.as_slice());
        apply(&f, op, &redo[i], torn).map_err(io("redoing a write to"))?;
    }
    Ok(())
}

/// Undoes `op` and returns the bytes it had written (empty for a truncation).
fn undo(f: &File, op: &Op) -> std::io::Result<Vec<u8>> {
    match op {
        Op::Write {
            offset,
            old_size,
            len,
            old,
        } => {
            let mut new = vec![0; usize::try_from(*len).map_err(std::io::Error::other)?];
            f.read_exact_at(&mut new, *offset)?;
            f.write_all_at(old, *offset)?;
            if *old_size < offset + len {
                f.set_len(*old_size)?;
            }
            Ok(new)
        }
        Op::Truncate {
            new_len,
            old_len,
            tail,
        } => {
            f.set_len(*old_len)?;
            if old_len > new_len {
                f.write_all_at(tail, *new_len)?;
            }
            Ok(Vec::new())
        }
    }
}

/// Applies `op` again with the bytes it wrote; only the sectors `torn` marks, if torn (the
/// file still grows to the write's end: its size survived, the unwritten sectors past the
/// old end read as zeros).
fn apply(f: &File, op: &Op, new: &[u8], torn: Option<&[bool]>) -> std::io::Result<()> {
    match op {
        Op::Write { offset, len, .. } => match (torn, sectors(*offset, *len)) {
            (Some(mask), Some((first, _))) => {
                for (k, _) in mask.iter().enumerate().filter(|(_, new)| **new) {
                    let s = (first + k as u64) * SECTOR;
                    let (lo, hi) = (s.max(*offset), (s + SECTOR).min(offset + len));
                    let part = &new
                        [usize::try_from(lo - offset).map_err(std::io::Error::other)?..]
                        [..usize::try_from(hi - lo).map_err(std::io::Error::other)?];
                    f.write_all_at(part, lo)?;
                }
                if f.metadata()?.len() < offset + len {
                    f.set_len(offset + len)?;
                }
                Ok(())
            }
            _ => f.write_all_at(new, *offset),
        },
        Op::Truncate { new_len, .. } => f.set_len(*new_len),
    }
}
