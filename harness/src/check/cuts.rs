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
//! A reader in the same epoch that saw a commit of the suffix saw what SQLite allows: that
//! read is no `lost_after_read` ([`super`]). One that saw a rolled-back commit nobody was
//! acked for still is (nothing tells where that commit was in the order).
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
    /// The index of its ack in its ledger.
    pub ack_at: usize,
    /// The index of its intent there (`None`: none found).
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
    pub fn binary(op: Op, name: String, place: Place, event: i64, lost: Option<String>) -> Acked {
        let event = (op.acks_an_event() && event > 0).then_some(event);
        let proves = lost.is_none() && carries_token(op);
        Acked::at(name, place, event, proves, lost)
    }

    /// An ack of a text ledger (no event ids; its value is its token).
    pub fn text(name: String, place: Place, lost: Option<String>) -> Acked {
        let proves = lost.is_none();
        Acked::at(name, place, None, proves, lost)
    }

    /// An ack at `place`, with what the ledger kind gives of its order and proof.
    fn at(
        name: String,
        place: Place,
        event: Option<i64>,
        proves: bool,
        lost: Option<String>,
    ) -> Acked {
        Acked {
            name,
            ledger: place.ledger,
            ack_at: place.at,
            intent_at: place.intent,
            epoch: place.epoch,
            event,
            proves,
            lost,
        }
    }

    /// Whether `later`'s commit came after this one's (see the module doc).
    fn precedes(&self, later: &Acked) -> bool {
        matches!((self.event, later.event), (Some(a), Some(b)) if b > a)
            || (self.ledger == later.ledger && later.intent_at.is_some_and(|i| i > self.ack_at))
    }
}

/// Where a ledger entry is: its ledger, its index there, its intent's (for an ack), and its
/// epoch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    /// The index of the ledger.
    pub ledger: usize,
    /// The entry's index in it.
    pub at: usize,
    /// An ack's: its intent's index (`None`: not found, or no ack).
    pub intent: Option<usize>,
    /// The entry's epoch.
    pub epoch: usize,
}

/// Files every lost ack of `acked` as `lost_acked` or `lost_suffix`; returns, per ack,
/// whether it was filed as `lost_suffix`.
pub(super) fn file(acked: &[Acked], marks: &CutMarks, findings: &mut Findings) -> Vec<bool> {
    let mut suffix = vec![false; acked.len()];
    for (a, in_suffix) in acked.iter().zip(&mut suffix) {
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
            None => {
                *in_suffix = true;
                findings.lost_suffix.push(format!(
                    "{line}: in the suffix of epoch {} that the power cut ending it rolled back",
                    a.epoch
                ));
            }
        }
    }
    suffix
}

#[cfg(test)]
mod tests {
    //! Boards made through the store, with the losses a power cut leaves made by a plain
    //! connection (the `created` event of a lost commit deleted *before* the next epoch
    //! commits, so that the next epoch reuses its id, as after a real rollback).

    use std::path::PathBuf;

    use kanban_store::{Board, EventId, NewTask, Role};
    use tempfile::TempDir;

    use super::*;
    use crate::check::{Ledger, check};
    use crate::ledger::{
        Contents, EventKey, Mark, Record, TextKind, events_digest, parse_text, token,
    };
    use crate::scenario::BoardSpec;

    /// A board, and one worker's ledger of the tasks it created on it.
    struct Fixture {
        _dir: TempDir,
        db: PathBuf,
        records: Vec<Record>,
        /// Per commit, its event id.
        commits: Vec<i64>,
        /// The ledger's length in bytes at each cut.
        cuts: Vec<usize>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("board.db");
            crate::setup::prepare(&db, &BoardSpec::default(), false).unwrap();
            Fixture {
                _dir: dir,
                db,
                records: Vec::new(),
                commits: Vec::new(),
                cuts: Vec::new(),
            }
        }

        /// Worker 0 creates `n` tasks, one commit each, ledgered as the workers do.
        fn commit(&mut self, n: usize) {
            let mut board = Board::open(&self.db, Role::Gateway).unwrap();
            for _ in 0..n {
                let seq = self.commits.len() as u64;
                let task = NewTask {
                    title: token(0, 0, seq),
                    body: String::new(),
                    priority: 0,
                    parents: Vec::new(),
                };
                let (id, event) = board
                    .transaction(|t| Ok((t.create_task(&task)?, t.event_ids()[0])))
                    .unwrap();
                let rec = |mark, a: i64, b: i64| Record {
                    mark,
                    op: Op::CreateTask,
                    worker: 0,
                    incarnation: 0,
                    seq,
                    a,
                    b,
                    c: 0,
                };
                self.records.push(rec(Mark::Intent, 0, 0));
                self.commits.push(event.get());
                self.records.push(rec(Mark::Ack, id.get(), event.get()));
            }
        }

        /// Worker 0's poller reads every event on the board now, and records it.
        fn read(&mut self) {
            let mut board = Board::open(&self.db, Role::Gateway).unwrap();
            let events = board.events_since(EventId::from(0), 1000).unwrap();
            self.records.push(Record {
                mark: Mark::Read,
                op: Op::Read,
                worker: 0,
                incarnation: 0,
                seq: 0,
                a: 0,
                b: events.last().unwrap().id.get(),
                c: events_digest(events.iter().map(EventKey::from)),
            });
        }

        /// A power cut that rolls back the commits `lost` (indexes into `commits`).
        fn cut(&mut self, lost: &[usize]) {
            self.lose(lost);
            self.cuts.push(self.records.len() * RECORD);
        }

        /// Deletes the `created` events of the commits `lost`.
        fn lose(&self, lost: &[usize]) {
            let conn = rusqlite::Connection::open(&self.db).unwrap();
            for &i in lost {
                let id = self.commits[i];
                conn.execute("DELETE FROM task_events WHERE id = ?1", [id])
                    .unwrap();
            }
        }

        /// (lost_acked, lost_suffix) as the check finds them.
        fn losses(&self) -> (usize, usize) {
            let f = self.findings();
            (f.lost_acked.len(), f.lost_suffix.len())
        }

        fn findings(&self) -> Findings {
            let ledger = Ledger::Binary(Contents {
                records: self.records.clone(),
                ..Contents::default()
            });
            let marks = CutMarks(self.cuts.iter().map(|&c| vec![c]).collect());
            let f = check(&self.db, &[ledger], &marks, Vec::new());
            assert!(f.corrupt.is_empty(), "{:?}", f.corrupt);
            f
        }
    }

    /// Control: without cuts, every loss is `lost_acked`, a suffix or not.
    #[test]
    fn without_cuts_every_loss_is_lost_acked() {
        let mut fx = Fixture::new();
        fx.commit(4);
        fx.lose(&[1, 2, 3]);
        assert_eq!(fx.losses(), (3, 0));
    }

    /// The last two commits before the cut rolled back, and the next epoch reused their ids
    /// (and went beyond them): a suffix, not a hole.
    #[test]
    fn the_last_commits_before_a_cut_are_a_lost_suffix() {
        let mut fx = Fixture::new();
        fx.commit(4);
        fx.cut(&[2, 3]);
        fx.commit(3);
        assert_eq!(
            fx.commits[4], fx.commits[2],
            "the next epoch reuses the ids"
        );
        assert_eq!(fx.losses(), (0, 2));
    }

    /// A commit lost while a later one of the same epoch survived: no cut explains it.
    #[test]
    fn a_commit_lost_before_a_kept_one_is_lost_acked() {
        let mut fx = Fixture::new();
        fx.commit(4);
        fx.cut(&[1]);
        assert_eq!(fx.losses(), (1, 0));
    }

    /// A reader that saw commits the next cut rolled back as a suffix saw what NORMAL
    /// allows; one that saw a commit lost in the middle, or lost with no cut, did not.
    #[test]
    fn a_read_of_a_rolled_back_suffix_is_no_lost_after_read() {
        let read_lost = |cut: bool, lost: &[usize]| {
            let mut fx = Fixture::new();
            fx.commit(4);
            fx.read();
            match cut {
                true => fx.cut(lost),
                false => fx.lose(lost),
            }
            fx.commit(3);
            let f = fx.findings();
            (
                f.lost_acked.len(),
                f.lost_suffix.len(),
                f.lost_after_read.len(),
            )
        };
        assert_eq!(read_lost(true, &[2, 3]), (0, 2, 0));
        assert_eq!(read_lost(true, &[1]), (1, 0, 1));
        assert_eq!(read_lost(false, &[2, 3]), (2, 0, 2));
    }

    /// Two cuts, each epoch judged on its own: epoch 0 lost its last commit (a suffix),
    /// epoch 1 one in its middle, and the last epoch, which no cut ended, its last.
    #[test]
    fn each_epoch_is_judged_on_its_own() {
        let mut fx = Fixture::new();
        fx.commit(3);
        fx.cut(&[2]);
        fx.commit(3);
        fx.cut(&[4]);
        fx.commit(2);
        fx.lose(&[7]);
        let f = fx.findings();
        let tokens = |lines: &[String]| -> Vec<String> {
            lines
                .iter()
                .map(|l| l.split(' ').nth(1).unwrap().to_string())
                .collect()
        };
        assert_eq!(tokens(&f.lost_suffix), [token(0, 0, 2)]);
        assert_eq!(tokens(&f.lost_acked), [token(0, 0, 4), token(0, 0, 7)]);
    }

    /// Acks without event ids are ordered by the ledger: a later intent of the same worker
    /// that survived puts a lost one in the middle; a heartbeat found there proves nothing
    /// (a later epoch's heartbeat would look the same).
    #[test]
    fn without_ids_the_ledger_orders_and_only_tokens_prove() {
        let at = |ledger, at, intent| Place {
            ledger,
            at,
            intent: Some(intent),
            epoch: 0,
        };
        let lost = Some("lost".to_string());
        let judge = |later: Acked| {
            let a = Acked::binary(Op::CreateTask, "a".into(), at(0, 1, 0), 0, lost.clone());
            let mut f = Findings::default();
            file(&[a, later], &CutMarks(vec![vec![usize::MAX]]), &mut f);
            (f.lost_acked.len(), f.lost_suffix.len())
        };
        let later = |op, ledger| Acked::binary(op, "b".into(), at(ledger, 3, 2), 0, None);
        assert_eq!(judge(later(Op::CreateTask, 0)), (1, 0));
        assert_eq!(judge(later(Op::CreateTask, 1)), (0, 1), "another worker");
        assert_eq!(judge(later(Op::Heartbeat, 0)), (0, 1), "a heartbeat");
        let concurrent = Acked::binary(Op::CreateTask, "b".into(), at(0, 3, 0), 0, None);
        assert_eq!(judge(concurrent), (0, 1), "intended before a's ack");
    }

    /// A text ledger's entries are placed by their bytes: `a` lost before the cut while `b`,
    /// intended after `a`'s ack, survived, is lost in the middle; `b` lost alone is a suffix.
    #[test]
    fn text_ledgers_are_cut_at_their_bytes() {
        let text = "intent task a\nack task a\nintent task b\nack task b\n";
        let judge = |kept: &str| {
            let fx = Fixture::new();
            let mut board = Board::open(&fx.db, Role::Gateway).unwrap();
            let task = NewTask {
                title: kept.into(),
                body: String::new(),
                priority: 0,
                parents: Vec::new(),
            };
            board.create_task(&task).unwrap();
            drop(board);
            let (entries, errors) = parse_text(text);
            assert_eq!(entries[3].kind, TextKind::Task);
            let marks = CutMarks(vec![vec![text.len()]]);
            let f = check(&fx.db, &[Ledger::Text(entries, errors)], &marks, Vec::new());
            (f.lost_acked.len(), f.lost_suffix.len())
        };
        assert_eq!(judge("b"), (1, 0));
        assert_eq!(judge("a"), (0, 1));
    }

    #[test]
    fn epochs_count_the_cuts_before_an_entry() {
        let marks = CutMarks(vec![vec![128, 0], vec![256]]);
        let epochs: Vec<usize> = [0, 127, 128, 255, 256].map(|at| marks.epoch(0, at)).into();
        assert_eq!(epochs, [0, 0, 1, 1, 2]);
        assert_eq!(
            marks.epoch(1, 0),
            2,
            "a ledger missing from a cut was empty then"
        );
        assert_eq!(CutMarks::default().record_epoch(0, 9), 0);
    }
}
