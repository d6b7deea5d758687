//! Power cuts in the ledger check: a lost *suffix* of commits, or a commit lost *in the
//! middle*.
//!
//! With `synchronous=NORMAL` SQLite in WAL mode promises only this much across a power cut:
//! the commits since the last WAL sync may roll back, newest first (a WAL is replayed up to
//! its first frame that fails its checksum, so what survives is a prefix), and nothing is
//! ever damaged. With `FULL` it promises that nothing acknowledged rolls back at all. So an
//! acknowledged write that the board lost is judged against the cuts:
//!
//! - its *epoch* is the number of cuts before its ack was written ([`CutMarks`]: the
//!   supervisor notes each ledger's length at each cut, while every worker is dead; the
//!   ledgers live outside the modelled files and are never cut);
//! - a loss in the last epoch (no cut ended it), or in a seed without cuts, is `lost_acked`;
//! - a loss in an epoch that a cut ended is *in the middle*, and `lost_acked`, when an
//!   acknowledged write of the same epoch that came after it in the commit order is on the
//!   board; otherwise it is part of the suffix that cut rolled back: `lost_suffix`.
//!
//! **What orders commits: event ids.** `task_events.id` is an `INTEGER PRIMARY KEY` without
//! `AUTOINCREMENT`, and events are never deleted: each commit's events get ids above every
//! id on the board, so within one epoch a commit that returned a higher event id committed
//! later (two acks of one commit, as `recompute_ready`'s, are one commit: one lost and one
//! kept breaks atomicity, and counts as in the middle too). Across a cut the order breaks:
//! the rolled-back suffix leaves its ids free, and the next epoch reuses them. Hence ids
//! are compared only within one epoch. **Without ids** (heartbeats, cursors, a dashboard's
//! write through the gateway, text ledgers) the ledger itself orders: a write whose intent
//! a worker wrote after another write's ack committed after it.
//!
//! **What proves a later commit survived**: only an effect that carries its own token (a
//! task title, comment author, run worker or result, event payload): that effect is of this
//! commit and no other. A heartbeat or cursor value, or a `moved`, `ready`, `timed_out` or
//! `linked` event found at its id, could be a later epoch's write in the same place, and
//! would make a rolled-back suffix look like a hole in the middle. A text ledger's value is
//! taken as its own token (a `command` client names its writes).
//!
//! Not told apart here: a write that survived its own epoch's cut and was lost at a later
//! one shows as a suffix of its epoch (the later epoch's ids may reuse its own). If a reader
//! saw it after its cut, the seed has a `lost_after_read` finding as well.

use super::Findings;
use crate::ledger::{Op, RECORD};

/// Per power cut, in order, how long each worker's ledger was when it happened, in bytes:
/// `self.0[k][w]` for cut `k` and the ledger at index `w` of those the check is given (a
/// binary `ledger-w<i>.bin`, or a `command` worker's text ledger). A ledger missing from a
/// cut's list was empty then. Empty: a seed without cuts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutMarks(pub Vec<Vec<usize>>);

impl CutMarks {
    /// The epoch of the entry starting at byte `at` of ledger `w`: the cuts before it.
    pub fn epoch(&self, w: usize, at: usize) -> usize {
        (self.0.iter())
            .filter(|cut| cut.get(w).copied().unwrap_or(0) <= at)
            .count()
    }

    /// The epoch of record `i` of binary ledger `w` (a ledger with a bad record before it,
    /// already an `invariant` finding, is taken as if the bad record were not there).
    pub fn record_epoch(&self, w: usize, i: usize) -> usize {
        self.epoch(w, i * RECORD)
    }

    /// Whether a cut ended `epoch` (none ends the last, which runs to the end of the seed).
    fn cut_ended(&self, epoch: usize) -> bool {
        epoch < self.0.len()
    }
}

/// Whether the board effect of `op`'s ack carries the ack's own token (see the module doc:
/// only such an effect proves that this very commit survived).
fn carries_token(op: Op) -> bool {
    matches!(
        op,
        Op::CreateTask | Op::Comment | Op::Claim | Op::EndRun | Op::UpdateTask
    )
}

/// One acknowledged write, placed for the cut check.
#[derive(Debug)]
pub(super) struct Acked {
    /// Its token (or a text ledger's value), to name it.
    pub name: String,
    /// The index of its ledger.
    pub ledger: usize,
    /// Where in its ledger its ack is, and its intent (entries).
    pub ack_at: usize,
    /// See `ack_at` (`None`: no intent found).
    pub intent_at: Option<usize>,
    /// Cuts before its ack.
    pub epoch: usize,
    /// The event id its commit returned (`None`: no event, or unknown).
    pub event: Option<i64>,
    /// `None`: on the board; else the finding's line.
    pub lost: Option<String>,
    /// On the board by an effect that carries its own token.
    pub proves: bool,
}

impl Acked {
    /// An ack of a binary ledger; `lost`: what is missing of it, as a finding's line.
    pub fn binary(op: Op, name: String, at: Place, event: i64, lost: Option<String>) -> Acked {
        Acked {
            name,
            ledger: at.ledger,
            ack_at: at.ack,
            intent_at: at.intent,
            epoch: at.epoch,
            event: (op.acks_an_event() && event > 0).then_some(event),
            proves: lost.is_none() && carries_token(op),
            lost,
        }
    }

    /// An ack of a text ledger (no event ids; its value is its token).
    pub fn text(name: String, at: Place, lost: Option<String>) -> Acked {
        Acked {
            name,
            ledger: at.ledger,
            ack_at: at.ack,
            intent_at: at.intent,
            epoch: at.epoch,
            event: None,
            proves: lost.is_none(),
            lost,
        }
    }

    /// Whether `later`'s commit came after this one's (see the module doc).
    fn precedes(&self, later: &Acked) -> bool {
        matches!((self.event, later.event), (Some(a), Some(b)) if b > a)
            || (self.ledger == later.ledger && later.intent_at.is_some_and(|i| i > self.ack_at))
    }
}

/// Where an ack is: its ledger, its place and its intent's there, and its epoch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    /// The index of the ledger.
    pub ledger: usize,
    /// The ack's entry.
    pub ack: usize,
    /// The intent's entry.
    pub intent: Option<usize>,
    /// The ack's epoch.
    pub epoch: usize,
}

/// Files every lost ack of `acked` as `lost_acked` or `lost_suffix`.
pub(super) fn file(acked: &[Acked], marks: &CutMarks, findings: &mut Findings) {
    for a in acked {
        let Some(line) = &a.lost else { continue };
        if !marks.cut_ended(a.epoch) {
            findings.lost_acked.push(line.clone());
            continue;
        }
        let later = acked
            .iter()
            .find(|b| b.proves && b.epoch == a.epoch && a.precedes(b));
        match later {
            Some(b) => findings.lost_acked.push(format!(
                "{line}, in the middle of epoch {}: {} committed after it and is there",
                a.epoch, b.name
            )),
            None => findings.lost_suffix.push(format!(
                "{line}: in the suffix of epoch {} that power cut {} rolled back",
                a.epoch,
                a.epoch + 1
            )),
        }
    }
}
