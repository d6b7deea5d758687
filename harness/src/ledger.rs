//! The ledger: what each worker meant to commit, what it was told was committed, and what
//! its readers saw.
//!
//! Every worker appends fixed-size, checksummed records to a file of its own with one plain
//! `write(2)` each (`O_APPEND`): an *intent* before it commits, an *ack* after the commit
//! returned (one per effect: a promotion of several tasks acks each), and a *read* record
//! when one of its readers observed part of the board. A worker killed mid-write leaves at
//! most one torn record at the end, which the reader ignores; a bad checksum anywhere else
//! is reported.
//!
//! After the run the checker demands that every acked effect is on the board exactly (the
//! event id the commit returned, with its kind, task and payload; the run's outcome and
//! result; the heartbeat value; the link), that nothing a reader observed has vanished
//! since (in the way of Jepsen's set checker), and that every effect on the board was
//! intended by someone (else: a phantom). What each op's `a` and `b` mean, in its intent and
//! in its ack, is documented on [`Op`].
//!
//! Effects are named by *tokens* (`w<worker>i<incarnation>s<seq>`) that workers write into
//! the board (task titles, comment authors, run workers, run results), so the checker can
//! find each one even when its event id is not known.
//!
//! `command` workers write a text ledger instead (see [`parse_text`] and the README).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use kanban_store::{RunOutcome, TaskStatus};

/// Size of one record on disk.
pub const RECORD: usize = 64;
const MAGIC: u32 = 0x4B4C_4447; // "KLDG"

/// What a record says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// About to commit.
    Intent = 1,
    /// The commit returned successfully.
    Ack = 2,
    /// The operation failed with an error that should not happen.
    Error = 3,
    /// The operation failed with an error a correct store returns under the scenario's
    /// faults; `a` is its [`crate::fault::ErrorKind`] code (counted, and allowed only where
    /// the scenario can cause it).
    Expected = 4,
    /// A reader observed this (events, or a cursor): it must still be on the board.
    Read = 5,
    /// Something the harness counts happened (`a`: its [`Tally`] code): a retry, a
    /// connection the gateway closed. Nothing to find on the board.
    Tally = 6,
}

/// What a [`Mark::Tally`] record counts (counted per seed, summed in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// A dashboard sent a write again after a retryable error (same request id).
    Retry = 1,
    /// The gateway closed a connection that sent more than the largest request.
    OversizeClosed = 2,
    /// The gateway closed a connection that sent nothing.
    SilentClosed = 3,
    /// The gateway answered a request of a flooding client.
    FloodAnswered = 4,
}

impl Tally {
    /// Every tally, in report order.
    pub const ALL: [Tally; 4] = [
        Tally::Retry,
        Tally::OversizeClosed,
        Tally::SilentClosed,
        Tally::FloodAnswered,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Tally::Retry => "retry",
            Tally::OversizeClosed => "oversize-closed",
            Tally::SilentClosed => "silent-closed",
            Tally::FloodAnswered => "flood-answered",
        }
    }

    /// The tally of a record's code.
    pub fn from_code(code: i64) -> Option<Tally> {
        Tally::ALL.into_iter().find(|t| *t as i64 == code)
    }
}

/// The operations the checker knows how to verify. For each: what the intent's `a`/`b`
/// hold, what the ack's hold, and what the checker demands of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `create_task` with title = token. Ack: `a` task id (0: unknown), `b` event id (0:
    /// unknown, as when a dashboard's write went to the gateway): the `created` event with
    /// payload = token (that id, on that task, when known).
    CreateTask = 1,
    /// `comment` on task `a` with author = token. Ack: `a` comment id, `b` event id (0:
    /// unknown): that comment by the token, and its `commented` event.
    Comment = 2,
    /// `claim_next` with worker = token. Ack: `a` run id, `b` event id: the run with
    /// worker = token, and its `claimed` event.
    Claim = 3,
    /// `end_run` of run `a` with outcome `b` ([`outcome_code`]) and result = token. Ack: `a`
    /// run id, `b` event id: the run ended so, with that result, and its event.
    EndRun = 4,
    /// `update_task` of task `a` with title = token. Ack: `a` task id, `b` event id: its
    /// `updated` event with payload = token.
    UpdateTask = 5,
    /// `advance_cursor` (cursor named by token's worker) to `a`. Ack: `a` the cursor's new
    /// position: the cursor is at least there. A *read* record: `a` the position the
    /// incarnation found at its start, which must be at least every earlier incarnation's
    /// acked position.
    Cursor = 6,
    /// `move_task` of task `a` to status `b` ([`status_code`]). Ack: `a` task id, `b` event
    /// id: that `moved` event. A `moved` event that no ack names and no unacknowledged
    /// intent can explain is a phantom.
    Move = 7,
    /// `heartbeat` of run `a`. Ack: `a` run id, `b` the heartbeat value the commit left:
    /// the run's heartbeat is at least that (it never goes backwards).
    Heartbeat = 8,
    /// Opening a session (only in error records).
    Open = 9,
    /// A read. Error records; and *read* records of events observed: `a` the cursor the
    /// read started after, `b` the last event id it returned, `c` the [`events_digest`] of
    /// what it returned (every event in `(a, b]` at the time).
    Read = 10,
    /// `recompute_ready`. One ack per task promoted: `a` task id, `b` its `ready` event id.
    Ready = 11,
    /// `expire_runs`. One ack per run timed out: `a` run id, `b` its `timed_out` event id:
    /// the run ended `timed_out`, and that event.
    Expire = 12,
    /// `link` of parent `a` to child `b`. Ack: `a` child id, `b` the `linked` event id:
    /// the link, and that event.
    Link = 13,
    /// The repairer damaging an index on purpose (`damage = true`): the intent before it
    /// starts, the ack once the damage is done. No effect to find on the board.
    Damage = 20,
    /// A repair that left the board healthy (acked only then). After a `Damage`, it says
    /// the injected damage was undone.
    Repair = 21,
}

impl Op {
    /// Whether the `b` of this op's ack is the id of the event its commit logged.
    pub fn acks_an_event(self) -> bool {
        !matches!(self, Op::Heartbeat | Op::Cursor | Op::Open | Op::Read)
    }

    fn from_u8(v: u8) -> Option<Op> {
        [
            Op::CreateTask,
            Op::Comment,
            Op::Claim,
            Op::EndRun,
            Op::UpdateTask,
            Op::Cursor,
            Op::Move,
            Op::Heartbeat,
            Op::Open,
            Op::Read,
            Op::Ready,
            Op::Expire,
            Op::Link,
            Op::Damage,
            Op::Repair,
        ]
        .into_iter()
        .find(|o| *o as u8 == v)
    }
}

/// One ledger record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Intent, ack or error.
    pub mark: Mark,
    /// The operation.
    pub op: Op,
    /// The worker's index.
    pub worker: u16,
    /// Which start of that worker (0 first).
    pub incarnation: u32,
    /// The operation's number within the incarnation.
    pub seq: u64,
    /// Operation-specific value (task id, run id, cursor position; see [`Op`]).
    pub a: i64,
    /// A second one (event id, outcome, heartbeat value; see [`Op`]).
    pub b: i64,
    /// A third, for read records (a digest of what was read).
    pub c: i64,
}

impl Record {
    /// The token this record's effect carries on the board.
    pub fn token(&self) -> String {
        token(self.worker, self.incarnation, self.seq)
    }

    fn encode(&self) -> [u8; RECORD] {
        let mut b = [0u8; RECORD];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = self.mark as u8;
        b[5] = self.op as u8;
        b[6..8].copy_from_slice(&self.worker.to_le_bytes());
        b[8..12].copy_from_slice(&self.incarnation.to_le_bytes());
        b[12..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..28].copy_from_slice(&self.a.to_le_bytes());
        b[28..36].copy_from_slice(&self.b.to_le_bytes());
        b[36..44].copy_from_slice(&self.c.to_le_bytes());
        let crc = crc32fast::hash(&b[..RECORD - 4]);
        b[RECORD - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Record> {
        fn take<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
            b.get(at..at + N)?.try_into().ok()
        }
        let crc = u32::from_le_bytes(take(b, RECORD - 4)?);
        if crc != crc32fast::hash(&b[..RECORD - 4]) || u32::from_le_bytes(take(b, 0)?) != MAGIC {
            return None;
        }
        let mark = match b[4] {
            1 => Mark::Intent,
            2 => Mark::Ack,
            3 => Mark::Error,
            4 => Mark::Expected,
            5 => Mark::Read,
            6 => Mark::Tally,
            _ => return None,
        };
        Some(Record {
            mark,
            op: Op::from_u8(b[5])?,
            worker: u16::from_le_bytes(take(b, 6)?),
            incarnation: u32::from_le_bytes(take(b, 8)?),
            seq: u64::from_le_bytes(take(b, 12)?),
            a: i64::from_le_bytes(take(b, 20)?),
            b: i64::from_le_bytes(take(b, 28)?),
            c: i64::from_le_bytes(take(b, 36)?),
        })
    }
}

/// The token of operation `seq` of `worker`'s `incarnation`.
pub fn token(worker: u16, incarnation: u32, seq: u64) -> String {
    format!("w{worker}i{incarnation}s{seq}")
}

/// The code of a run outcome in an [`Op::EndRun`] intent (1 + its index in
/// [`RunOutcome::ALL`]).
pub fn outcome_code(outcome: RunOutcome) -> i64 {
    1 + RunOutcome::ALL
        .iter()
        .position(|&o| o == outcome)
        .unwrap_or(0) as i64
}

/// The outcome of a code from [`outcome_code`].
pub fn outcome_of(code: i64) -> Option<RunOutcome> {
    RunOutcome::ALL
        .get(usize::try_from(code - 1).ok()?)
        .copied()
}

/// The code of a task status in an [`Op::Move`] intent (1 + its index in
/// [`TaskStatus::ALL`]).
pub fn status_code(status: TaskStatus) -> i64 {
    1 + TaskStatus::ALL
        .iter()
        .position(|&s| s == status)
        .unwrap_or(0) as i64
}

/// The status of a code from [`status_code`].
pub fn status_of(code: i64) -> Option<TaskStatus> {
    TaskStatus::ALL
        .get(usize::try_from(code - 1).ok()?)
        .copied()
}

/// What a reader of events records of them, and the checker recomputes from the board: a
/// CRC-32 of each event's immutable fields (id, task, run, kind, payload) in id order. Ids
/// alone would not do: an event lost from the end of the log leaves its id to the next.
pub fn events_digest<'a>(events: impl IntoIterator<Item = EventKey<'a>>) -> i64 {
    let mut h = crc32fast::Hasher::new();
    for e in events {
        h.update(&e.id.to_le_bytes());
        h.update(&e.task.to_le_bytes());
        h.update(&e.run.unwrap_or(0).to_le_bytes());
        h.update(e.kind.as_bytes());
        h.update(&[0]);
        h.update(e.payload.as_bytes());
        h.update(&[0]);
    }
    i64::from(h.finalize())
}

/// The fields of an event that [`events_digest`] covers.
#[derive(Clone, Copy, Debug)]
pub struct EventKey<'a> {
    /// Its id.
    pub id: i64,
    /// Its task.
    pub task: i64,
    /// Its run.
    pub run: Option<i64>,
    /// Its kind.
    pub kind: &'a str,
    /// Its payload.
    pub payload: &'a str,
}

impl<'a> From<&'a kanban_store::Event> for EventKey<'a> {
    fn from(e: &'a kanban_store::Event) -> Self {
        EventKey {
            id: e.id.get(),
            task: e.task_id.get(),
            run: e.run_id.map(|r| r.get()),
            kind: &e.kind,
            payload: &e.payload,
        }
    }
}

/// Whether `s` looks like a harness token (so its presence must have been intended).
pub fn is_token(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('w') else {
        return false;
    };
    let parts: Vec<&str> = rest.split(['i', 's']).collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        && rest.find('i') < rest.find('s')
}

/// A worker's open ledger.
#[derive(Debug)]
pub struct Writer {
    file: File,
}

impl Writer {
    /// Opens (creating) the ledger at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Writer> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path)?;
        Ok(Writer { file })
    }

    /// Appends one record with a single `write(2)`.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let bytes = record.encode();
        let n = self.file.write(&bytes)?;
        if n != RECORD {
            return Err(std::io::Error::other("short ledger write"));
        }
        Ok(())
    }
}

/// What reading a ledger found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// A torn record at the end (ignored).
    pub torn_tail: bool,
    /// Records that failed their checksum before the end (reported).
    pub bad_records: usize,
}

/// Reads a binary ledger's bytes.
pub fn parse(bytes: &[u8]) -> Contents {
    let mut out = Contents::default();
    let whole = bytes.len() / RECORD * RECORD;
    for chunk in bytes[..whole].chunks(RECORD) {
        match Record::decode(chunk) {
            Some(r) => out.records.push(r),
            None => out.bad_records += 1,
        }
    }
    out.torn_tail = whole != bytes.len();
    // A record torn by a kill can only be the last one written.
    if out.bad_records == 1 && !out.torn_tail && Record::decode(&bytes[whole - RECORD..]).is_none()
    {
        out.bad_records = 0;
        out.torn_tail = true;
    }
    out
}

/// One line of a text ledger (written by `command` workers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextEntry {
    /// `intent` or `ack`.
    pub mark: Mark,
    /// `task` (a task with this title exists) or `event` (an event with this payload).
    pub kind: TextKind,
    /// The title or payload.
    pub value: String,
    /// The byte offset of its line in the file (where a power cut's mark falls: see
    /// `check::CutMarks`).
    pub at: usize,
}

/// What a text ledger line claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextKind {
    /// A task with this title.
    Task,
    /// An event with this payload.
    Event,
}

/// Parses a text ledger: lines `intent|ack task|event <value>`; a last line without its
/// newline is torn and ignored; other malformed lines are returned as errors.
pub fn parse_text(text: &str) -> (Vec<TextEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut at = 0;
    // `str::lines`, with each line's offset: a line ends at `\n`, and a `\r` before it goes.
    for (n, raw) in complete.split_inclusive('\n').enumerate() {
        let start = at;
        at += raw.len();
        let line = raw
            .strip_suffix('\n')
            .map_or(raw, |l| l.strip_suffix('\r').unwrap_or(l));
        let mut parts = line.splitn(3, ' ');
        let mark = match parts.next() {
            Some("intent") => Mark::Intent,
            Some("ack") => Mark::Ack,
            _ => {
                errors.push(format!(
                    "line {}: expected `intent` or `ack`: {line:?}",
                    n + 1
                ));
                continue;
            }
        };
        let kind = match parts.next() {
            Some("task") => TextKind::Task,
            Some("event") => TextKind::Event,
            _ => {
                errors.push(format!(
                    "line {}: expected `task` or `event`: {line:?}",
                    n + 1
                ));
                continue;
            }
        };
        match parts.next() {
            Some(value) if !value.is_empty() => entries.push(TextEntry {
                mark,
                kind,
                value: value.to_string(),
                at: start,
            }),
            _ => errors.push(format!("line {}: missing value: {line:?}", n + 1)),
        }
    }
    (entries, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            mark: Mark::Ack,
            op: Op::CreateTask,
            worker: 3,
            incarnation: 1,
            seq,
            a: -7,
            b: i64::MIN + seq as i64,
            c: 0x0123_4567_89AB_CDEF,
        }
    }

    #[test]
    fn records_round_trip() {
        let bytes: Vec<u8> = (0..3).flat_map(|s| rec(s).encode()).collect();
        let c = parse(&bytes);
        assert_eq!(c.records, vec![rec(0), rec(1), rec(2)]);
        assert!(!c.torn_tail);
        assert_eq!(c.bad_records, 0);
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let mut bytes: Vec<u8> = (0..3).flat_map(|s| rec(s).encode()).collect();
        bytes.extend_from_slice(&rec(3).encode()[..17]);
        let c = parse(&bytes);
        assert_eq!(c.records.len(), 3);
        assert!(c.torn_tail);
        assert_eq!(c.bad_records, 0);
    }

    #[test]
    fn a_whole_but_garbled_last_record_counts_as_torn() {
        let mut bytes: Vec<u8> = (0..2).flat_map(|s| rec(s).encode()).collect();
        let mut last = rec(2).encode();
        last[30..].fill(0);
        bytes.extend_from_slice(&last);
        let c = parse(&bytes);
        assert_eq!((c.records.len(), c.torn_tail, c.bad_records), (2, true, 0));
    }

    #[test]
    fn corruption_in_the_middle_is_reported() {
        let mut bytes: Vec<u8> = (0..3).flat_map(|s| rec(s).encode()).collect();
        bytes[RECORD + 9] ^= 0xFF;
        let c = parse(&bytes);
        assert_eq!((c.records.len(), c.bad_records), (2, 1));
    }

    /// The second and third values sit inside the checksummed bytes: a flipped bit in
    /// either is a bad record, and the last record garbled there counts as torn.
    #[test]
    fn the_second_and_third_values_are_checksummed() {
        for at in [30, 40] {
            let mut bytes: Vec<u8> = (0..3).flat_map(|s| rec(s).encode()).collect();
            bytes[RECORD + at] ^= 0x01;
            let c = parse(&bytes);
            assert_eq!((c.records.len(), c.bad_records), (2, 1), "byte {at}");
            let mut bytes: Vec<u8> = (0..3).flat_map(|s| rec(s).encode()).collect();
            bytes[2 * RECORD + at] ^= 0x01;
            let c = parse(&bytes);
            assert_eq!((c.records.len(), c.torn_tail, c.bad_records), (2, true, 0));
        }
    }

    #[test]
    fn codes_round_trip() {
        for o in RunOutcome::ALL {
            assert_eq!(outcome_of(outcome_code(o)), Some(o));
        }
        for s in TaskStatus::ALL {
            assert_eq!(status_of(status_code(s)), Some(s));
        }
        assert_eq!((outcome_of(0), status_of(99)), (None, None));
    }

    #[test]
    fn tokens_are_recognised() {
        assert_eq!(rec(9).token(), "w3i1s9");
        assert!(is_token("w3i1s9"));
        for s in ["w3i1", "x3i1s9", "w3s1i9", "w3i1s", "w3i1s9x", "hello"] {
            assert!(!is_token(s), "{s}");
        }
    }

    #[test]
    fn text_ledgers_parse_and_ignore_a_torn_line() {
        let (entries, errors) =
            parse_text("intent task a b\nack task a b\nack event e1\nnonsense\nack task tor");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].value, "a b");
        assert_eq!(errors.len(), 1);
        let starts: Vec<usize> = entries.iter().map(|e| e.at).collect();
        assert_eq!(starts, [0, 16, 29]);
        let (entries, _) = parse_text("ack task a\r\nack task b\n");
        assert_eq!((entries[0].value.as_str(), entries[1].at), ("a", 12));
    }
}
