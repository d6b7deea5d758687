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

/// A write kept in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// Its index among the file's pending operations.
    pub op: usize,
    /// The sectors (of the file, 512 bytes each) that got its new bytes.
    pub new_sectors: Vec<u64>,
    /// The sectors it covers that kept what they had without it.
    pub old_sectors: Vec<u64>,
}

/// What to do to one file: which pending operations to keep, and which write to tear.
#[derive(Debug, Clone, Default)]
pub struct FilePlan {
    /// Per pending operation, oldest first: kept?
    pub kept: Vec<bool>,
    /// The kept write to tear, and how.
    pub torn: Option<Torn>,
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
            .filter(|t| t.op == i)
            .map(|t| t.new_sectors.as_slice());
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
            // What the write left: all of it, or less when its process was stopped between
            // the record and the write (a write that never extended the file).
            let size = f.metadata()?.len();
            let there = (*len).min(size.saturating_sub(*offset));
            let mut new = vec![0; usize::try_from(there).map_err(std::io::Error::other)?];
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

/// Applies `op` again with the bytes it wrote; only in the sectors `new_sectors`, if torn
/// (the file still grows to the write's end: its size survived, the unwritten sectors past
/// the old end read as zeros).
fn apply(f: &File, op: &Op, new: &[u8], new_sectors: Option<&[u64]>) -> std::io::Result<()> {
    let index = |n: u64| usize::try_from(n).map_err(std::io::Error::other);
    match (op, new_sectors) {
        (Op::Write { offset, .. }, Some(sectors)) => {
            // The bytes the write left (all of them, unless it never reached the file).
            let len = &(new.len() as u64);
            for s in sectors {
                let (lo, hi) = (
                    (s * SECTOR).max(*offset),
                    ((s + 1) * SECTOR).min(offset + len),
                );
                if lo >= hi {
                    continue;
                }
                f.write_all_at(&new[index(lo - offset)?..index(hi - offset)?], lo)?;
            }
            if f.metadata()?.len() < offset + len {
                f.set_len(offset + len)?;
            }
            Ok(())
        }
        (Op::Write { offset, .. }, None) => f.write_all_at(new, *offset),
        (Op::Truncate { new_len, .. }, _) => f.set_len(*new_len),
    }
}
