//! The power cut: the journal replayed, a seeded choice of what survives, the files
//! rewritten to it, and a report of exactly what was done.
//!
//! The rng is drawn in a fixed order (every pending operation's keep-or-undo, oldest inode
//! first; the torn write; the garbage sector; each folder's namespace prefix, folders in
//! name order), so a cut replays byte for byte from the journal and the seed, and the
//! garbage mode draws the same keep-or-undo choices as `keep-some` with the same seed.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::Rng;

use super::history::{History, NsOp, Place};
use super::record::Op;
use super::rewrite::{FilePlan, Torn, rewrite, sectors};
use super::{AllStopped, Error, Mode, Result, SECTOR, journal_path, kept_dir, read_journal};

/// What a cut did, in full: enough for a test to predict every byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutReport {
    /// The mode.
    pub mode: Mode,
    /// Whole records read from the journal.
    pub records: usize,
    /// Journal bytes skipped as torn.
    pub skipped_bytes: u64,
    /// Every file that had pending writes or truncations, in order of first mention.
    pub files: Vec<FileCut>,
    /// Namespace changes undone, in the order they were undone.
    pub namespace: Vec<NsUndo>,
    /// The `-shm` files deleted (SQLite rebuilds them).
    pub shm_removed: Vec<String>,
}

/// What a cut did to one file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCut {
    /// Its name (the last it had).
    pub name: String,
    /// Where it was when rewritten ([`Place::Gone`]: deleted with no link kept, so left
    /// alone).
    pub place: Place,
    /// Its writes and truncations since its last sync.
    pub pending: usize,
    /// Which of them were undone (indexes, oldest first = 0).
    pub undone: Vec<usize>,
    /// The torn write, if this file has it.
    pub torn: Option<Torn>,
    /// The sector overwritten with random bytes, if this file has it: its index, so bytes
    /// `index * 512 .. index * 512 + 512`, all of them within the file.
    pub trashed: Option<u64>,
}

/// A namespace change the cut undid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsUndo {
    /// A created file, or a new name made by a hard link, removed.
    Removed(String),
    /// A deleted (or replaced) file brought back.
    Restored(String),
    /// A deleted file that should come back but was kept by no link.
    NotRestorable(String),
    /// A rename undone.
    Unrenamed {
        /// The name it goes back to.
        from: String,
        /// The name it loses.
        to: String,
    },
    /// A rename recorded but never made (records come before the change; the file system
    /// refused it, or another process removed the file first): its new name holds nothing
    /// to move back.
    NeverRenamed {
        /// The name it would have gone back to.
        from: String,
        /// The name it would have lost.
        to: String,
    },
}

/// Cuts the power on the board folder `dir`: rewrites its files to a state the disk could
/// hold, as `mode` and `rng` choose, then starts a fresh epoch (clears the journal and the
/// kept links: the files as rewritten are durable).
///
/// The cut uses `std::fs` on the board's files, which is safe only because no process
/// has them open: `stopped` is the caller's word that every worker is dead and reaped.
pub fn cut(dir: &Path, mode: Mode, rng: &mut impl Rng, _stopped: &AllStopped) -> Result<CutReport> {
    let parsed = read_journal(dir)?;
    let history = History::replay(&parsed.records);
    let mut report = CutReport {
        mode,
        records: parsed.records.len(),
        skipped_bytes: parsed.skipped_bytes,
        files: Vec::new(),
        namespace: Vec::new(),
        shm_removed: Vec::new(),
    };
    let plans = plan(&history, mode, rng);
    for (ino, plan) in &plans {
        let inode = &history.inodes[*ino];
        if let Some(p) = location(dir, &inode.place) {
            rewrite(&p, &inode.pending, plan)?;
        }
        report.files.push(file_cut(inode, plan));
    }
    if mode == Mode::Garbage {
        trash(dir, &history, &plans, &mut report, rng)?;
    }
    for ops in history.namespace.values() {
        let keep = if mode == Mode::LoseUnsynced {
            0
        } else {
            rng.random_range(0..=ops.len())
        };
        for op in ops[keep..].iter().rev() {
            report.namespace.push(undo_ns(dir, op)?);
        }
    }
    report.shm_removed = remove_shm(dir)?;
    new_epoch(dir)?;
    Ok(report)
}

/// Per inode with pending operations, what survives.
fn plan(history: &History, mode: Mode, rng: &mut impl Rng) -> Vec<(usize, FilePlan)> {
    let mut plans: Vec<(usize, FilePlan)> = history
        .inodes
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.pending.is_empty())
        .map(|(ino, i)| {
            let kept = i
                .pending
                .iter()
                .map(|_| mode != Mode::LoseUnsynced && rng.random_bool(0.5))
                .collect();
            (ino, FilePlan { kept, torn: None })
        })
        .collect();
    if mode == Mode::Torn {
        let candidates: Vec<(usize, usize, u64, u64)> = plans
            .iter()
            .enumerate()
            .flat_map(|(p, (ino, plan))| {
                history.inodes[*ino].pending.iter().enumerate().filter_map(
                    move |(i, op)| match op {
                        Op::Write { offset, len, .. } if plan.kept[i] => {
                            sectors(*offset, *len).map(|(a, b)| (p, i, a, b))
                        }
                        _ => None,
                    },
                )
            })
            .collect();
        if !candidates.is_empty() {
            let (p, op, first, last) = candidates[rng.random_range(0..candidates.len())];
            plans[p].1.torn = Some(tear(op, first, last, rng));
        }
    }
    plans
}

/// Tears write `op`, which covers the sectors `first..=last`: each sector new or old, some
/// of each when there are two or more.
fn tear(op: usize, first: u64, last: u64, rng: &mut impl Rng) -> Torn {
    let mut mask: Vec<bool> = (first..=last).map(|_| rng.random_bool(0.5)).collect();
    if mask.len() >= 2 && mask.iter().all(|m| *m == mask[0]) {
        let k = rng.random_range(0..mask.len());
        mask[k] = !mask[k];
    }
    let pick = |want: bool| {
        (first..=last)
            .filter(|s| mask[(s - first) as usize] == want)
            .collect()
    };
    Torn {
        op,
        new_sectors: pick(true),
        old_sectors: pick(false),
    }
}

fn location(dir: &Path, place: &Place) -> Option<PathBuf> {
    match place {
        Place::Named(n) => Some(dir.join(n)),
        Place::Kept(k) => Some(kept_dir(dir).join(k)),
        Place::Gone => None,
    }
}

fn file_cut(inode: &super::history::Inode, plan: &FilePlan) -> FileCut {
    FileCut {
        name: inode.name.clone(),
        place: inode.place.clone(),
        pending: inode.pending.len(),
        undone: (0..plan.kept.len()).filter(|i| !plan.kept[*i]).collect(),
        torn: plan.torn.clone(),
        trashed: None,
    }
}

/// Overwrites one whole sector of one pending write (kept or not) with random bytes: an
/// aligned sector wholly within the file's size as rewritten (a partial last sector is
/// never a candidate), chosen uniformly among the writes that have one.
fn trash(
    dir: &Path,
    history: &History,
    plans: &[(usize, FilePlan)],
    report: &mut CutReport,
    rng: &mut impl Rng,
) -> Result<()> {
    let mut candidates = Vec::new();
    for (p, (ino, _)) in plans.iter().enumerate() {
        let Some(path) = location(dir, &history.inodes[*ino].place) else {
            continue;
        };
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("stat of", &path, e))?
            .len();
        for op in &history.inodes[*ino].pending {
            if let Op::Write { offset, len, .. } = op
                && let Some((a, b)) = sectors(*offset, *len)
                && a * SECTOR < size
            {
                // The write's own bytes, within the file's size.
                let span = (*offset, (offset + len).min(size));
                candidates.push((p, path.clone(), a, b.min((size - 1) / SECTOR), span));
            }
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let (p, path, a, b, (start, end)) =
        candidates.swap_remove(rng.random_range(0..candidates.len()));
    let sector = rng.random_range(a..=b);
    // Only the bytes the write covers in that sector: SQLite's unix VFS reports
    // `SQLITE_IOCAP_POWERSAFE_OVERWRITE`, the promise that a write never damages bytes
    // outside its range, even on power loss (so a WAL frame's first sector, shared with the
    // synced frame before it, keeps that frame's bytes).
    let from = start.max(sector * SECTOR);
    let to = end.min((sector + 1) * SECTOR);
    if from >= to {
        return Ok(());
    }
    let mut junk = vec![0u8; usize::try_from(to - from).unwrap_or(0)];
    rng.fill(&mut junk[..]);
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    f.write_all_at(&junk, from)
        .map_err(|e| Error::io("trashing a sector of", &path, e))?;
    report.files[p].trashed = Some(sector);
    Ok(())
}

/// Undoes one namespace change (every later one in its folder is already undone).
fn undo_ns(dir: &Path, op: &NsOp) -> Result<NsUndo> {
    let kept = kept_dir(dir);
    let mv = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| Error::io("renaming", from, e))
    };
    Ok(match op {
        NsOp::Create { name, .. } | NsOp::Link { name } => {
            let p = dir.join(name);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing", &p, e));
                }
                _ => NsUndo::Removed(name.clone()),
            }
        }
        NsOp::Delete {
            name,
            kept: Some(k),
        } => {
            mv(&kept.join(k), &dir.join(name))?;
            NsUndo::Restored(name.clone())
        }
        NsOp::Delete { name, kept: None } => NsUndo::NotRestorable(name.clone()),
        NsOp::Rename { from, to, .. } if std::fs::symlink_metadata(dir.join(to)).is_err() => {
            NsUndo::NeverRenamed {
                from: from.clone(),
                to: to.clone(),
            }
        }
        NsOp::Rename { from, to, replaced } => {
            mv(&dir.join(to), &dir.join(from))?;
            if let Some(k) = replaced {
                mv(&kept.join(k), &dir.join(to))?;
            }
            NsUndo::Unrenamed {
                from: from.clone(),
                to: to.clone(),
            }
        }
    })
}

/// Deletes every `-shm` file of the board folder.
fn remove_shm(dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("-shm") {
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::io("removing", &entry.path(), e))?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Clears the journal and the kept links: what is on disk now is durable.
fn new_epoch(dir: &Path) -> Result<()> {
    let kept = kept_dir(dir);
    match std::fs::remove_dir_all(&kept) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io("removing", &kept, e));
        }
        _ => {}
    }
    let path = journal_path(dir);
    match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f.set_len(0).map_err(|e| Error::io("clearing", &path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("opening", &path, e)),
    }
}
