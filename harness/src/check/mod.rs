//! After every seed: is the board intact, is every acknowledged commit on it, and is
//! everything a reader saw still there?
//!
//! Nine kinds of finding ([`KINDS`]), each counted per seed:
//! - `corrupt`: `integrity_check` reports damage, or SQLite cannot even read the board;
//! - `lost_acked`: a ledger ack whose effect is not on the board *exactly* (its event, by
//!   the id the commit returned, with its kind, task and payload; the run's outcome and
//!   result; the heartbeat value; the link; a cursor position that a later incarnation of
//!   the same worker found behind it); in a seed with power cuts, only a loss that no cut
//!   explains: one after the last cut, or one in the middle of the commits before a cut;
//! - `lost_suffix`: acked writes lost that form a suffix of the commits before a power cut,
//!   as `synchronous=NORMAL` allows and `FULL` does not ([`CutMarks`]; `check/cuts.rs`
//!   tells how the commit order is read from the ledgers and the board);
//! - `lost_after_read`: the worst kind: an effect a reader observed that is gone. Each
//!   read record names a range of event ids and a digest of what was read in it (the way
//!   of Jepsen's set checker: every observed element must be in the final set); a range
//!   whose events on the board no longer give that digest lost something the reader saw. A
//!   lost ack whose event id lies in such a range is listed here *and* under `lost_acked`
//!   (or `lost_suffix`, unless the read came before the cut that rolled it back: `NORMAL`
//!   lets a reader see a commit that a power cut then takes back);
//!   a range with no such ack (the reader saw a commit nobody was told of, or one whose
//!   event id is unknown) is listed here alone;
//! - `invariant`: a foreign-key or kanban invariant broken, a phantom (an effect on the
//!   board that no ledger ever intended: a token in a title, comment author, run worker or
//!   result, or event payload; a `moved` event no ack names and no unacknowledged intent
//!   explains; a link nobody made), or a ledger record that fails its checksum before the
//!   end of its ledger (a torn *last* record is a kill, and ignored);
//! - `worker_error`: a worker panicked or met an error a correct store does not return
//!   (or one it returns only under faults the scenario does not have: [`crate::work`]);
//! - `work`: the workers did (almost) nothing, or crash-looped ([`crate::work`]);
//! - `quarantine`: a quarantine copy that is no whole board, or a rebuild that kept no copy
//!   of what it replaced ([`crate::copies`]);
//! - `duplicate`: one intended effect on the board more than once (a token that titles two
//!   tasks, writes two comments, or is the payload of two events of one kind): a write
//!   applied twice, as a gateway does that applies a retried request again.
//!
//! What is not found exactly, and why: a task or comment a dashboard created in
//! single-writer mode (the gateway's answer carries its id, not its event's: it is found
//! by its token, and a loss of it a reader saw shows as an unattributed range); `ready`
//! and `timed_out` events that nobody acked are not judged phantoms (an agent's fork also
//! promotes tasks, unledgered, inside the transaction it forks in); a lost ack is
//! attributed to a read range by its id, so two losses at the same id (a lost event whose id
//! was reused by a later, also lost, one) may attribute the wrong one: the seed has a
//! `lost_after_read` finding either way.
//!
//! The checks run after every worker is dead, on a plain connection (not through the store,
//! which would refuse a broken board instead of describing it) that changes nothing: see
//! [`open_as_left`]. The supervisor keeps artifacts and digests before the checks anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::Path;

use kanban_store::CheckLevel;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::ledger::{self, Contents, EventKey, Mark, Op, Record, TextEntry, TextKind};
use crate::scenario::KINDS;
use crate::worker::cursor_name;

mod cuts;

pub use cuts::CutMarks;
use cuts::{Acked, Place};

/// What the checks found in one seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// Structural damage.
    pub corrupt: Vec<String>,
    /// Acknowledged commits missing from the board (with power cuts: those no cut explains).
    pub lost_acked: Vec<String>,
    /// Acknowledged commits missing from the board that a power cut rolled back as a suffix.
    #[serde(default)]
    pub lost_suffix: Vec<String>,
    /// Effects a reader observed that are gone (acked ones are in `lost_acked` or
    /// `lost_suffix` too).
    #[serde(default)]
    pub lost_after_read: Vec<String>,
    /// Broken invariants and phantoms.
    pub invariant: Vec<String>,
    /// Worker panics and unexpected errors.
    pub worker_error: Vec<String>,
    /// Work floors missed and crash loops.
    #[serde(default)]
    pub work: Vec<String>,
    /// Quarantine copies that are not whole, and rebuilds that kept none.
    #[serde(default)]
    pub quarantine: Vec<String>,
    /// Effects on the board more than once.
    #[serde(default)]
    pub duplicate: Vec<String>,
}

impl Findings {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        KINDS.iter().all(|k| self.of_kind(k).is_empty())
    }

    /// The findings of kind `kind` (one of [`KINDS`]; empty for any other name).
    pub fn of_kind(&self, kind: &str) -> &[String] {
        match kind {
            "corrupt" => &self.corrupt,
            "lost_acked" => &self.lost_acked,
            "lost_suffix" => &self.lost_suffix,
            "invariant" => &self.invariant,
            "worker_error" => &self.worker_error,
            "work" => &self.work,
            "lost_after_read" => &self.lost_after_read,
            "quarantine" => &self.quarantine,
            "duplicate" => &self.duplicate,
            _ => &[],
        }
    }

    /// Every finding with its kind, one per line.
    pub fn lines(&self) -> Vec<String> {
        KINDS
            .iter()
            .flat_map(|k| self.of_kind(k).iter().map(move |f| format!("{k}: {f}")))
            .collect()
    }
}

/// A worker's ledger as read after the run.
#[derive(Debug)]
pub enum Ledger {
    /// A forked worker's binary ledger.
    Binary(Contents),
    /// A `command` worker's text ledger (entries, and malformed lines).
    Text(Vec<TextEntry>, Vec<String>),
}

/// Checks the board at `db` against the ledgers, with the power cuts at `cuts` (empty: none);
/// `worker_errors` are the supervisor's own observations (panics, unexpected exits).
pub fn check(
    db: &Path,
    ledgers: &[Ledger],
    cuts: &CutMarks,
    worker_errors: Vec<String>,
) -> Findings {
    let mut findings = Findings {
        worker_error: worker_errors,
        ..Findings::default()
    };
    for ledger in ledgers {
        match ledger {
            Ledger::Binary(c) => {
                if c.bad_records > 0 {
                    findings.invariant.push(format!(
                        "{} ledger records failed their checksum",
                        c.bad_records
                    ));
                }
                for r in c.records.iter().filter(|r| r.mark == Mark::Error) {
                    findings.worker_error.push(format!(
                        "worker {} (start {}) {:?}: unexpected error (see its log)",
                        r.worker, r.incarnation, r.op
                    ));
                }
            }
            Ledger::Text(_, errors) => findings
                .worker_error
                .extend(errors.iter().map(|e| format!("text ledger {e}"))),
        }
    }
    let conn = match open_as_left(db) {
        Ok(c) => c,
        Err(e) => {
            findings.corrupt.push(format!("cannot open the board: {e}"));
            return findings;
        }
    };
    let report = kanban_store::check_connection(&conn, CheckLevel::Full);
    // When SQLite cannot even read the board, every other query fails the same way: that
    // is one corruption, not a list of broken invariants.
    let unreadable = report.integrity.iter().any(|f| f.starts_with("error: "));
    findings.corrupt.extend(report.integrity);
    if unreadable {
        return findings;
    }
    findings.invariant.extend(report.foreign_keys);
    findings.invariant.extend(report.invariants);
    match Board::read(&conn) {
        Ok(board) => board.verify(ledgers, cuts, &mut findings),
        Err(e) => findings
            .corrupt
            .push(format!("cannot read the board for the ledger check: {e}")),
    }
    findings
}

/// A connection that reads the board without changing it: read-only, and never the
/// checkpoint-and-delete of the WAL that SQLite's last connection does on close. Only a hot
/// rollback journal (a worker killed inside a commit of a rollback-mode board) needs a
/// writer: SQLite refuses to read past it, and rolling it back is what any next opener
/// does. It never creates a board that is not there: a missing board is a finding.
pub fn open_as_left(db: &Path) -> rusqlite::Result<Connection> {
    let open = |write: bool| -> rusqlite::Result<Connection> {
        let access = match write {
            true => OpenFlags::SQLITE_OPEN_READ_WRITE,
            false => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let conn = Connection::open_with_flags(db, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // Reading the schema is the first read: a hot journal shows here, not at open.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    };
    match open(false) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) => open(true),
        other => other,
    }
}

/// One event as the checks see it.
struct EventRow {
    task: i64,
    run: Option<i64>,
    kind: String,
    payload: String,
}

/// One run as the checks see it.
struct RunRow {
    worker: String,
    status: String,
    result: Option<String>,
    heartbeat: i64,
}

/// What the ledger check needs from the board.
struct Board {
    /// Every event, by id.
    events: BTreeMap<i64, EventRow>,
    /// Every (event kind, payload).
    kinds: HashSet<(String, String)>,
    /// Runs by id.
    runs: HashMap<i64, RunRow>,
    /// Comment id → author.
    comments: HashMap<i64, String>,
    /// Task id → title.
    tasks: HashMap<i64, String>,
    /// (parent, child).
    links: HashSet<(i64, i64)>,
    /// Cursor name → position.
    cursors: HashMap<String, i64>,
}

impl Board {
    fn read(conn: &Connection) -> rusqlite::Result<Board> {
        /// Every row of `sql`, through `f`.
        fn rows<T>(
            conn: &Connection,
            sql: &str,
            f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        ) -> rusqlite::Result<Vec<T>> {
            conn.prepare(sql)?.query_map([], f)?.collect()
        }
        let events: BTreeMap<i64, EventRow> = rows(
            conn,
            "SELECT id, task_id, run_id, kind, payload FROM task_events",
            |r| {
                let row = EventRow {
                    task: r.get(1)?,
                    run: r.get(2)?,
                    kind: r.get(3)?,
                    payload: r.get(4)?,
                };
                Ok((r.get(0)?, row))
            },
        )?
        .into_iter()
        .collect();
        let runs = rows(
            conn,
            "SELECT id, worker, status, result, heartbeat_at FROM task_runs",
            |r| {
                let row = RunRow {
                    worker: r.get(1)?,
                    status: r.get(2)?,
                    result: r.get(3)?,
                    heartbeat: r.get(4)?,
                };
                Ok((r.get(0)?, row))
            },
        )?;
        let pairs = |sql| rows(conn, sql, |r| Ok((r.get(0)?, r.get(1)?)));
        Ok(Board {
            kinds: events
                .values()
                .map(|e| (e.kind.clone(), e.payload.clone()))
                .collect(),
            events,
            runs: runs.into_iter().collect(),
            comments: pairs("SELECT id, author FROM task_comments")?
                .into_iter()
                .collect(),
            tasks: pairs("SELECT id, title FROM tasks")?.into_iter().collect(),
            links: rows(conn, "SELECT parent_id, child_id FROM task_links", |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect(),
            cursors: rows(conn, "SELECT name, last_event_id FROM notify_subs", |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect(),
        })
    }

    fn has_event(&self, kind: &str, payload: &str) -> bool {
        self.kinds
            .contains(&(kind.to_string(), payload.to_string()))
    }

    /// Event `id`, if it is of `kind` with `payload` (any payload for `None`).
    fn event(&self, id: i64, kind: &str, payload: Option<&str>) -> Option<&EventRow> {
        self.events
            .get(&id)
            .filter(|e| e.kind == kind && payload.is_none_or(|p| e.payload == p))
    }

    /// The digest of the events now in `range`, as a reader would have recorded it.
    fn digest(&self, range: RangeInclusive<i64>) -> i64 {
        ledger::events_digest(self.events.range(range).map(|(&id, e)| EventKey {
            id,
            task: e.task,
            run: e.run,
            kind: &e.kind,
            payload: &e.payload,
        }))
    }

    fn verify(&self, ledgers: &[Ledger], cuts: &CutMarks, findings: &mut Findings) {
        let seen = Seen::gather(ledgers, cuts);
        let mut acked: Vec<Acked> = (seen.acks.iter())
            .map(|&(r, place)| {
                let intent = seen.intents.get(&r.token());
                let lost = (self.missing(r, intent, &seen))
                    .map(|what| format!("{:?} {} acknowledged but {what}", r.op, r.token()));
                Acked::binary(r.op, r.token(), place, r.b, lost)
            })
            .collect();
        acked.extend(self.text_acks(ledgers, cuts));
        let suffix = cuts::file(&acked, cuts, findings);
        self.verify_reads(&seen, &acked, &suffix, findings);
        findings.invariant.extend(self.phantoms(&seen));
        findings.duplicate.extend(self.duplicates());
    }

    /// `lost_after_read`: every read range whose events are not all there any more, named
    /// by the lost acks in it, or alone. A reader that saw a commit which the next power cut
    /// rolled back as a suffix (`suffix`: per ack of `acked`, whether it was filed so) saw
    /// what `synchronous=NORMAL` allows: that range is accounted for, and no finding.
    fn verify_reads(
        &self,
        seen: &Seen<'_>,
        acked: &[Acked],
        suffix: &[bool],
        findings: &mut Findings,
    ) {
        let stale: Vec<&(&Record, Place)> = (seen.reads.iter())
            .filter(|(r, _)| r.b > r.a && self.digest(r.a + 1..=r.b) != r.c)
            .collect();
        let mut attributed = vec![false; stale.len()];
        for (a, &in_suffix) in acked.iter().zip(suffix) {
            let (Some(line), Some(id)) = (&a.lost, a.event) else {
                continue;
            };
            // Every range that read it is accounted for by this ack; the first is named.
            let read_by: Vec<usize> = (0..stale.len())
                .filter(|&i| stale[i].0.a < id && id <= stale[i].0.b)
                .collect();
            for &i in &read_by {
                attributed[i] = true;
            }
            let before_its_cut = |i: &&usize| in_suffix && stale[**i].1.epoch == a.epoch;
            if let Some(&i) = read_by.iter().find(|i| !before_its_cut(i)) {
                let s = stale[i].0;
                findings.lost_after_read.push(format!(
                    "{line}; worker {} (start {}) had read it (events {}..={})",
                    s.worker,
                    s.incarnation,
                    s.a + 1,
                    s.b
                ));
            }
        }
        let mut unattributed: Vec<String> = stale
            .iter()
            .zip(attributed)
            .filter(|(_, a)| !a)
            .map(|((s, _), _)| {
                format!(
                    "events {}..={} read by worker {} (start {}) are not all on the board any more",
                    s.a + 1,
                    s.b,
                    s.worker,
                    s.incarnation
                )
            })
            .collect();
        unattributed.dedup();
        findings.lost_after_read.extend(unattributed);
    }

    /// Tokens on the board more than once where each names one effect: two tasks titled
    /// so, two comments by it, two events of one kind with it as payload.
    fn duplicates(&self) -> Vec<String> {
        let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let places = (self.tasks.values().map(|t| ("task titles", t.as_str())))
            .chain(
                self.comments
                    .values()
                    .map(|a| ("comment authors", a.as_str())),
            )
            .chain(
                self.events
                    .values()
                    .map(|e| (e.kind.as_str(), e.payload.as_str())),
            );
        for (place, token) in places.filter(|(_, t)| ledger::is_token(t)) {
            *counts.entry((token, place)).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|((token, place), n)| format!("{token} is on the board {n} times ({place})"))
            .collect()
    }

    /// What is missing of an acked effect (`None`: it is there, exactly).
    fn missing(&self, r: &Record, intent: Option<&&Record>, seen: &Seen<'_>) -> Option<String> {
        let token = r.token();
        let t = token.as_str();
        let arg = |f: fn(&Record) -> i64| intent.map(|i| f(i));
        let named = |kind: &str, payload: &str| self.named(r, kind, payload);
        let run = self.runs.get(&r.a);
        let present = match r.op {
            Op::CreateTask => {
                named("created", t)
                    && (r.a == 0 || self.tasks.contains_key(&r.a))
                    && (r.a == 0
                        || r.b == 0
                        || self
                            .event(r.b, "created", None)
                            .is_some_and(|e| e.task == r.a))
            }
            Op::Comment => self.comments.get(&r.a).is_some_and(|a| a == t) && named("commented", t),
            Op::Claim => {
                run.is_some_and(|x| x.worker == t)
                    && self
                        .event(r.b, "claimed", Some(t))
                        .is_some_and(|e| e.run == Some(r.a))
            }
            Op::EndRun => self.ended(r, arg(|i| i.b), t),
            Op::UpdateTask => {
                named("updated", t)
                    && (r.b == 0
                        || self
                            .event(r.b, "updated", None)
                            .is_some_and(|e| e.task == r.a))
            }
            Op::Cursor => {
                let name = cursor_name(r.worker);
                if let Some(at) = seen.cursor_behind(r) {
                    return Some(format!(
                        "a later start found the cursor at {at}, behind its {}",
                        r.a
                    ));
                }
                self.cursors.get(&name).is_some_and(|&at| at >= r.a)
            }
            Op::Move => {
                let to = arg(|i| i.b).and_then(ledger::status_of);
                self.event(r.b, "moved", to.map(|s| s.as_str()))
                    .is_some_and(|e| e.task == r.a)
            }
            Op::Heartbeat => run.is_some_and(|x| x.heartbeat >= r.b),
            Op::Ready => self
                .event(r.b, "ready", Some(""))
                .is_some_and(|e| e.task == r.a),
            Op::Expire => {
                run.is_some_and(|x| x.status == "timed_out")
                    && self
                        .event(r.b, "timed_out", None)
                        .is_some_and(|e| e.run == Some(r.a))
            }
            Op::Link => self.linked(r, arg(|i| i.a)),
            Op::Open | Op::Read | Op::Damage | Op::Repair => true,
        };
        (!present).then(|| "not on the board".to_string())
    }

    /// Whether the event an ack names is there: by its id, or by its token when the id is
    /// unknown.
    fn named(&self, r: &Record, kind: &str, payload: &str) -> bool {
        if r.b == 0 {
            self.has_event(kind, payload)
        } else {
            self.event(r.b, kind, Some(payload)).is_some()
        }
    }

    /// Whether the run `r` acks ending has its result `t`, the outcome its intent asked for
    /// (`outcome`, a ledger code), and the event the ack names.
    fn ended(&self, r: &Record, outcome: Option<i64>, t: &str) -> bool {
        let run = self.runs.get(&r.a);
        let outcome = outcome.and_then(ledger::outcome_of);
        run.is_some_and(|x| {
            x.result.as_deref() == Some(t) && outcome.is_none_or(|o| x.status == o.as_str())
        }) && self.events.get(&r.b).is_some_and(|e| {
            e.payload == t && e.run == Some(r.a) && e.kind == run.map_or("", |x| x.status.as_str())
        })
    }

    /// Whether the link `r` acks is there (to the parent its intent named), with its event.
    fn linked(&self, r: &Record, parent: Option<i64>) -> bool {
        parent.is_none_or(|p| self.links.contains(&(p, r.a)))
            && self
                .event(r.b, "linked", None)
                .is_some_and(|e| e.task == r.a && parent.is_none_or(|p| e.payload == p.to_string()))
    }

    /// The acks of the text ledgers, each with whether it is on the board.
    fn text_acks(&self, ledgers: &[Ledger], cuts: &CutMarks) -> Vec<Acked> {
        let mut out = Vec::new();
        for (w, ledger) in ledgers.iter().enumerate() {
            let Ledger::Text(entries, _) = ledger else {
                continue;
            };
            for (i, e) in entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.mark == Mark::Ack)
            {
                let present = match e.kind {
                    // Its `created` event keeps the title even after a rename.
                    TextKind::Task => {
                        self.tasks.values().any(|t| *t == e.value)
                            || self.has_event("created", &e.value)
                    }
                    TextKind::Event => self.events.values().any(|x| x.payload == e.value),
                };
                // Its intent: the last one of the same claim before it.
                let intent = entries[..i].iter().rposition(|x| {
                    x.mark == Mark::Intent && x.kind == e.kind && x.value == e.value
                });
                let place = Place {
                    ledger: w,
                    at: i,
                    intent,
                    epoch: cuts.epoch(w, e.at),
                };
                let lost = (!present).then(|| {
                    format!(
                        "command {:?} {:?} acknowledged but not on the board",
                        e.kind, e.value
                    )
                });
                out.push(Acked::text(e.value.clone(), place, lost));
            }
        }
        out
    }

    /// Effects on the board nobody intended.
    fn phantoms(&self, seen: &Seen<'_>) -> Vec<String> {
        let runs = self.runs.values();
        let on_board = (self.events.values().map(|e| e.payload.as_str()))
            .chain(self.tasks.values().map(String::as_str))
            .chain(self.comments.values().map(String::as_str))
            .chain(runs.clone().map(|r| r.worker.as_str()))
            .chain(runs.filter_map(|r| r.result.as_deref()))
            .filter(|t| ledger::is_token(t));
        let mut tokens: Vec<&str> = on_board.filter(|t| !seen.intended.contains(*t)).collect();
        tokens.sort_unstable();
        tokens.dedup();
        let mut out: Vec<String> = tokens
            .into_iter()
            .map(|t| format!("phantom: {t} is on the board but was never intended"))
            .collect();
        out.extend(self.phantom_moves(seen));
        let mut links: Vec<&(i64, i64)> = self
            .links
            .iter()
            .filter(|l| !seen.links.contains(l))
            .collect();
        links.sort_unstable();
        out.extend(
            links
                .into_iter()
                .map(|(p, c)| format!("phantom: task {c} depends on task {p}, a link nobody made")),
        );
        out
    }

    /// `moved` events no ack names, beyond what the unacknowledged move intents of the same
    /// task and status (committed, but killed before the ack) can explain.
    fn phantom_moves(&self, seen: &Seen<'_>) -> Vec<String> {
        let acked: HashSet<i64> = seen
            .acks
            .iter()
            .filter(|(r, _)| r.op == Op::Move)
            .map(|(r, _)| r.b)
            .collect();
        let mut pending: HashMap<(i64, &str), usize> = HashMap::new();
        for i in seen.intents.values().filter(|i| i.op == Op::Move) {
            if !seen.acked.contains(&i.token())
                && let Some(to) = ledger::status_of(i.b)
            {
                *pending.entry((i.a, to.as_str())).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        for (id, e) in &self.events {
            if e.kind != "moved" || acked.contains(id) {
                continue;
            }
            match pending.get_mut(&(e.task, e.payload.as_str())) {
                Some(n) if *n > 0 => *n -= 1,
                _ => out.push(format!(
                    "phantom: event {id} moved task {} to {} but nobody moved it so",
                    e.task, e.payload
                )),
            }
        }
        out
    }
}

/// What the binary ledgers say, sorted for the checks.
struct Seen<'a> {
    /// Intents by token.
    intents: HashMap<String, &'a Record>,
    /// Where each intent is in its ledger, by token.
    intent_at: HashMap<String, usize>,
    /// Tokens with an ack.
    acked: HashSet<String>,
    /// Every ack, with where it is (its intent found by `intent_at` once all are read).
    acks: Vec<(&'a Record, Place)>,
    /// Read records of events.
    reads: Vec<(&'a Record, Place)>,
    /// Read records of cursors: (worker, incarnation) → position found.
    cursor_reads: Vec<&'a Record>,
    /// Every intended token (binary intents, and every text ledger value).
    intended: HashSet<String>,
    /// Links intended: (parent, child).
    links: HashSet<(i64, i64)>,
}

impl<'a> Seen<'a> {
    fn gather(ledgers: &'a [Ledger], cuts: &CutMarks) -> Seen<'a> {
        let mut seen = Seen {
            intents: HashMap::new(),
            intent_at: HashMap::new(),
            acked: HashSet::new(),
            acks: Vec::new(),
            reads: Vec::new(),
            cursor_reads: Vec::new(),
            intended: HashSet::new(),
            links: HashSet::new(),
        };
        for (w, ledger) in ledgers.iter().enumerate() {
            match ledger {
                Ledger::Binary(c) => (c.records.iter().enumerate()).for_each(|(i, r)| {
                    let place = Place {
                        ledger: w,
                        at: i,
                        intent: None,
                        epoch: cuts.record_epoch(w, i),
                    };
                    seen.add(r, place)
                }),
                Ledger::Text(entries, _) => seen
                    .intended
                    .extend(entries.iter().map(|e| e.value.clone())),
            }
        }
        for (r, place) in &mut seen.acks {
            place.intent = seen.intent_at.get(&r.token()).copied();
        }
        seen
    }

    /// Adds record `r`, which is at `place` in its ledger.
    fn add(&mut self, r: &'a Record, place: Place) {
        match (r.mark, r.op) {
            (Mark::Intent, op) => {
                if op == Op::Link {
                    self.links.insert((r.a, r.b));
                }
                self.intended.insert(r.token());
                self.intents.insert(r.token(), r);
                self.intent_at.insert(r.token(), place.at);
            }
            (Mark::Ack, _) => {
                self.acked.insert(r.token());
                self.acks.push((r, place));
            }
            (Mark::Read, Op::Cursor) => self.cursor_reads.push(r),
            (Mark::Read, _) => self.reads.push((r, place)),
            (Mark::Error | Mark::Expected | Mark::Tally, _) => {}
        }
    }

    /// Where a later start of `ack`'s worker found its cursor, if behind `ack`'s position
    /// (an earlier incarnation's acked advance that was lost, even if a later one covers it).
    fn cursor_behind(&self, ack: &Record) -> Option<i64> {
        self.cursor_reads
            .iter()
            .filter(|c| c.worker == ack.worker && c.incarnation > ack.incarnation)
            .map(|c| c.a)
            .find(|&at| at < ack.a)
    }
}
