//! The I/O shim: a VFS that wraps SQLite's default VFS to count, fail and kill at exact
//! points of SQLite's own file I/O.
//!
//! Registered as the default VFS in a worker at start-up (so the store runs unchanged), it
//! forwards every VFS and file method to the VFS it wraps, and before each file method asks
//! `hook` what to do: go on, fail with an SQLite error code, or kill the process (before
//! or after the operation), or stop it (SIGSTOP, for a stall that holds a lock).
//!
//! # Phases, and how each is recognised
//!
//! | phase | recognised by |
//! |---|---|
//! | `checkpoint-copy` | SQLite's `SQLITE_FCNTL_CKPT_START` .. `SQLITE_FCNTL_CKPT_DONE` file controls on the db: the checkpoint's copy loop (WAL reads, db writes) |
//! | `checkpoint-tail` | after `CKPT_DONE`, the db truncate and sync that end a complete checkpoint (ends at the first other operation) |
//! | `wal-truncate` | a truncate of the WAL file (a TRUNCATE checkpoint, or a journal-size limit) |
//! | `commit` | the store's commit mark: the WAL append and sync of `COMMIT` |
//! | `checkpoint` | the store's checkpoint mark: the whole `wal_checkpoint(PASSIVE)` call |
//! | `migration`, `journal-mode`, `quarantine` | the store's marks around those maintenance steps |
//! | `none` | anything else |
//!
//! SQLite's own phases take precedence over the store's marks they fall inside.
//!
//! # Faults
//!
//! An [`IoFault`] matches operations of one kind (`write`, `sync`, `shm-lock`, ...) on one
//! kind of file (`db`, `wal`, `journal`, `temp`, `shm`) in one phase, and acts at the Nth
//! match: kill before or after it, fail it with `SQLITE_IOERR_WRITE`, `SQLITE_IOERR_FSYNC`
//! or `SQLITE_FULL` (once, or from then on), or stop the process right after it (meant for
//! the WAL write lock taken at `xShmLock`). When a fault acts it is written to the worker's
//! *landed* file right before it acts (after the operation, for a kill or stop after it; a
//! stop after a failed operation does not act), so the report can say which planned faults
//! landed.

mod power;
mod store_files;
mod vfs;

pub use power::{CUT_REQUEST, store_file_change};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use crate::fault::{FileKind, IoAction, IoFault, IoOp, IoPhase};

/// The shim's state in one worker process.
struct State {
    faults: Vec<(IoFault, u32)>,
    landed: Option<File>,
    /// The fault that acts after the operation in flight (noted when it does).
    acting_after: Option<usize>,
    store_phase: Vec<IoPhase>,
    sqlite_phase: IoPhase,
    counts: BTreeMap<(IoPhase, FileKind, IoOp), u64>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// What the hook tells the VFS to do with one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Forward it.
    Go,
    /// Forward it, then act (kill or stop) afterwards.
    GoThen(IoAction),
    /// Do not forward it; return this SQLite error.
    Fail(i32),
}

/// Installs the shim as the default VFS of this process, with `faults` to deliver and
/// `landed` to write each acting fault's id to, and, with `power`, every change to the files
/// of that board folder recorded in its page-cache journal. Call once, before any
/// connection is opened.
pub fn install(
    faults: Vec<IoFault>,
    landed: Option<File>,
    power: Option<&std::path::Path>,
) -> crate::error::Result<()> {
    if let Some(dir) = power {
        power::install(dir)?;
    }
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        faults: faults.into_iter().map(|f| (f, 0)).collect(),
        landed,
        acting_after: None,
        store_phase: Vec::new(),
        sqlite_phase: IoPhase::None,
        counts: BTreeMap::new(),
    });
    vfs::register().map_err(crate::error::Error::ShimRegistration)
}

/// The store entered (`true`) or left a phase mark.
pub fn store_phase(phase: kanban_store::Phase, entering: bool) {
    if let Some(state) = STATE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let p = IoPhase::of_store(phase);
        if entering {
            state.store_phase.push(p);
        } else if let Some(i) = state.store_phase.iter().rposition(|&q| q == p) {
            state.store_phase.remove(i);
        }
    }
}

/// Operations counted so far, per (phase, file kind, operation).
pub fn counts() -> BTreeMap<(IoPhase, FileKind, IoOp), u64> {
    STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|s| s.counts.clone())
        .unwrap_or_default()
}

/// Forgets the counts (for tests that measure one workload).
pub fn reset_counts() {
    if let Some(state) = STATE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        state.counts.clear();
    }
}

/// Called by the VFS before each file operation.
pub(crate) fn hook(file: FileKind, op: IoOp, fcntl: Option<i32>) -> Verdict {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.as_mut() else {
        return Verdict::Go;
    };
    let phase = state.phase_of(file, op, fcntl);
    *state.counts.entry((phase, file, op)).or_default() += 1;
    let Decision {
        verdict,
        fault_action,
        first_time,
    } = state.decide(phase, file, op);
    drop(guard);
    // In deterministic mode every file operation is a scheduling point, reached before the
    // operation and after its fault is decided (so the trace shows the fault).
    crate::token::point(crate::token::Point::Io {
        op,
        file,
        phase,
        fault: match verdict {
            Verdict::Go => None,
            Verdict::GoThen(action) => Some(action),
            Verdict::Fail(_) => fault_action,
        },
    });
    // Past the scheduling point, nothing comes between the note and the act.
    match verdict {
        Verdict::Fail(_) => note_landed(first_time),
        Verdict::GoThen(IoAction::KillBefore) => {
            note_landed(first_time);
            kill_self();
        }
        _ => {}
    }
    verdict
}

/// What the planned faults make of one operation.
struct Decision {
    /// What the VFS does with it.
    verdict: Verdict,
    /// The action of the fault that acts on it.
    fault_action: Option<IoAction>,
    /// The id of that fault, when this is its Nth match (its first time: it lands).
    first_time: Option<usize>,
}

impl State {
    /// The phase of the operation: SQLite's checkpoint brackets (tracked here from its file
    /// controls), a WAL truncate, or the store's innermost mark.
    fn phase_of(&mut self, file: FileKind, op: IoOp, fcntl: Option<i32>) -> IoPhase {
        // SQLite's checkpoint brackets.
        if file == FileKind::Db && op == IoOp::FileControl {
            match fcntl {
                Some(rusqlite::ffi::SQLITE_FCNTL_CKPT_START) => {
                    self.sqlite_phase = IoPhase::CheckpointCopy
                }
                Some(rusqlite::ffi::SQLITE_FCNTL_CKPT_DONE) => {
                    self.sqlite_phase = IoPhase::CheckpointTail
                }
                _ => {}
            }
        }
        if self.sqlite_phase == IoPhase::CheckpointTail
            && !(file == FileKind::Db
                && matches!(
                    op,
                    IoOp::Truncate | IoOp::Sync | IoOp::FileSize | IoOp::FileControl
                ))
        {
            self.sqlite_phase = IoPhase::None;
        }
        if self.sqlite_phase != IoPhase::None {
            self.sqlite_phase
        } else if file == FileKind::Wal && op == IoOp::Truncate {
            IoPhase::WalTruncate
        } else {
            self.store_phase.last().copied().unwrap_or(IoPhase::None)
        }
    }

    /// Counts the operation against every fault it matches, and decides what the first one
    /// due does to it; a kill or stop after it is noted as acting afterwards.
    fn decide(&mut self, phase: IoPhase, file: FileKind, op: IoOp) -> Decision {
        let mut verdict = Verdict::Go;
        let mut fault_action = None;
        let mut first_time = None;
        for (fault, seen) in &mut self.faults {
            if fault.phase != phase || fault.file != file || fault.op != op {
                continue;
            }
            // Every matching fault counts the operation, even when another one acts on it.
            *seen += 1;
            let first = *seen == fault.nth;
            if !(first || (fault.sticky && *seen > fault.nth)) || verdict != Verdict::Go {
                continue;
            }
            if first {
                first_time = Some(fault.id);
            }
            fault_action = Some(fault.action);
            verdict = match fault.action.error_code() {
                Some(code) => Verdict::Fail(code),
                None => Verdict::GoThen(fault.action),
            };
        }
        if matches!(
            verdict,
            Verdict::GoThen(IoAction::KillAfter | IoAction::Stop | IoAction::PowerCut)
        ) {
            self.acting_after = first_time;
        }
        Decision {
            verdict,
            fault_action,
            first_time,
        }
    }
}

/// Called by the VFS after an operation that a fault acts on afterwards.
pub(crate) fn after(action: IoAction, ok: bool) {
    let id = {
        let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let state = guard.as_mut();
        let id = state.as_ref().and_then(|s| s.acting_after);
        if let Some(state) = state {
            state.acting_after = None;
            if action == IoAction::Stop && !ok {
                // A stop holds what the operation took (the WAL write lock): after a failed
                // one it would hold nothing, so it waits for the next match instead.
                for (fault, seen) in &mut state.faults {
                    if Some(fault.id) == id {
                        *seen = fault.nth - 1;
                    }
                }
            }
        }
        id
    };
    match action {
        IoAction::KillAfter => {
            note_landed(id);
            kill_self();
        }
        IoAction::PowerCut => {
            note_landed(id);
            // Under the token the supervisor cuts at this very step (it holds every other
            // worker at its point) and kills this one; it never grants the token back.
            crate::token::point(crate::token::Point::PowerCut);
            power::cut_now();
        }
        // Under the token, the supervisor holds the worker instead (no real time passes).
        IoAction::Stop if ok && crate::token::connected() => {
            note_landed(id);
            crate::token::point(crate::token::Point::Stop)
        }
        IoAction::Stop if ok => {
            note_landed(id);
            // SAFETY: plain kill(2) of this process.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGSTOP);
            }
        }
        _ => {}
    }
}

/// Notes fault `id` (if any: a sticky fault acting again is noted once) in the landed
/// file, right before it acts: a kill leaves no later chance. One write(2), so a kill (or
/// the final SIGTERM) never leaves half a line (`writeln!` writes in pieces: a torn `i` once
/// made a fault count as landed twice, 2001 of 2000).
fn note_landed(id: Option<usize>) {
    let Some(id) = id else { return };
    if let Some(landed) = STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .and_then(|s| s.landed.as_mut())
    {
        let _ = landed.write_all(format!("i{id}\n").as_bytes());
    }
}

fn kill_self() {
    // SAFETY: plain kill(2) of this process.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
