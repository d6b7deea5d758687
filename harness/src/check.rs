//! After every seed: is the board intact, and is every acknowledged commit on it?
//!
//! Four kinds of finding, each counted per seed:
//! - `corrupt`: `integrity_check` reports damage, or SQLite cannot even read the board;
//! - `lost_acked`: a ledger ack whose effect is not on the board;
//! - `invariant`: a foreign-key or kanban invariant broken, a phantom (an effect on the
//!   board that no ledger ever intended), or a ledger record that fails its checksum before
//!   the end of its ledger (a torn *last* record is a kill, and ignored);
//! - `worker_error`: a worker panicked or met an error a correct store does not return.
//!
//! The checks run after every worker is dead, on a plain connection (not through the store,
//! which would refuse a broken board instead of describing it) that changes nothing: see
//! [`open_as_left`]. The supervisor keeps artifacts and digests before the checks anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use kanban_store::CheckLevel;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::ledger::{self, Contents, Mark, Op, TextEntry, TextKind};
use crate::worker::cursor_name;

/// What the checks found in one seed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// Structural damage.
    pub corrupt: Vec<String>,
    /// Acknowledged commits missing from the board.
    pub lost_acked: Vec<String>,
    /// Broken invariants and phantoms.
    pub invariant: Vec<String>,
    /// Worker panics and unexpected errors.
    pub worker_error: Vec<String>,
    /// Work floors missed and crash loops.
    #[serde(default)]
    pub work: Vec<String>,
}

/// Every finding kind by name, in report order: the names expectations use.
pub const KINDS: [&str; 6] = [
    "corrupt",
    "lost_acked",
    "invariant",
    "worker_error",
    "work",
    "lost_after_read",
];

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
            "invariant" => &self.invariant,
            "worker_error" => &self.worker_error,
            "work" => &self.work,
            // Until the field exists: `"lost_after_read" => &self.lost_after_read,`.
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

/// Checks the board at `db` against the ledgers; `worker_errors` are the supervisor's own
/// observations (panics, unexpected exits).
pub fn check(db: &Path, ledgers: &[Ledger], worker_errors: Vec<String>) -> Findings {
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
    let report = kanban_store::check::run(&conn, CheckLevel::Full);
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
        Ok(board) => board.verify(ledgers, &mut findings),
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

/// What the ledger check needs from the board.
struct Board {
    /// (event kind, payload) → count.
    events: HashMap<(String, String), usize>,
    /// Every event payload.
    payloads: HashSet<String>,
    /// Task id → number of `moved` events.
    moves: HashMap<i64, usize>,
    /// Workers of runs.
    run_workers: HashSet<String>,
    /// Run ids.
    runs: HashSet<i64>,
    /// Comment authors.
    authors: HashSet<String>,
    /// Task titles.
    titles: HashSet<String>,
    /// Cursor name → position.
    cursors: HashMap<String, i64>,
}

impl Board {
    fn read(conn: &Connection) -> rusqlite::Result<Board> {
        let strings = |sql: &str| -> rusqlite::Result<HashSet<String>> {
            conn.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
        };
        let mut events = HashMap::new();
        let mut moves = HashMap::new();
        let mut stmt = conn.prepare("SELECT kind, payload, task_id FROM task_events")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?;
        for row in rows {
            let (kind, payload, task): (String, String, i64) = row?;
            if kind == "moved" {
                *moves.entry(task).or_default() += 1;
            }
            *events.entry((kind, payload)).or_default() += 1;
        }
        Ok(Board {
            payloads: events.keys().map(|(_, p)| p.clone()).collect(),
            events,
            moves,
            run_workers: strings("SELECT worker FROM task_runs")?,
            runs: conn
                .prepare("SELECT id FROM task_runs")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            authors: strings("SELECT author FROM task_comments")?,
            titles: strings("SELECT title FROM tasks")?,
            cursors: conn
                .prepare("SELECT name, last_event_id FROM notify_subs")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?,
        })
    }

    fn has_event(&self, kind: &str, payload: &str) -> bool {
        self.events
            .contains_key(&(kind.to_string(), payload.to_string()))
    }

    fn verify(&self, ledgers: &[Ledger], findings: &mut Findings) {
        let mut intended: HashSet<String> = HashSet::new();
        let mut acked_moves: BTreeMap<i64, usize> = BTreeMap::new();
        for ledger in ledgers {
            match ledger {
                Ledger::Binary(c) => {
                    for r in &c.records {
                        let token = r.token();
                        match r.mark {
                            Mark::Intent => {
                                intended.insert(token);
                            }
                            Mark::Ack => {
                                if r.op == Op::Move {
                                    *acked_moves.entry(r.a).or_default() += 1;
                                } else if !self.acked_effect_present(r.op, &token, r) {
                                    findings.lost_acked.push(format!(
                                        "{:?} {token} acknowledged but not on the board",
                                        r.op
                                    ));
                                }
                            }
                            Mark::Error | Mark::Expected => {}
                        }
                    }
                }
                Ledger::Text(entries, _) => {
                    for e in entries {
                        intended.insert(e.value.clone());
                        let present = match e.kind {
                            // Its `created` event keeps the title even after a rename.
                            TextKind::Task => {
                                self.titles.contains(&e.value)
                                    || self.has_event("created", &e.value)
                            }
                            TextKind::Event => self.payloads.contains(&e.value),
                        };
                        if e.mark == Mark::Ack && !present {
                            findings.lost_acked.push(format!(
                                "command {:?} {:?} acknowledged but not on the board",
                                e.kind, e.value
                            ));
                        }
                    }
                }
            }
        }
        for (task, acked) in acked_moves {
            let present = self.moves.get(&task).copied().unwrap_or(0);
            if present < acked {
                findings.lost_acked.push(format!(
                    "task {task}: {acked} moves acknowledged, {present} on the board"
                ));
            }
        }
        let on_board = self
            .payloads
            .iter()
            .chain(&self.run_workers)
            .chain(&self.authors)
            .filter(|t| ledger::is_token(t));
        let mut phantoms: Vec<&String> = on_board.filter(|t| !intended.contains(*t)).collect();
        phantoms.sort();
        phantoms.dedup();
        findings.invariant.extend(
            phantoms
                .into_iter()
                .map(|t| format!("phantom: {t} is on the board but was never intended")),
        );
    }

    fn acked_effect_present(&self, op: Op, token: &str, r: &ledger::Record) -> bool {
        match op {
            Op::CreateTask => self.has_event("created", token),
            Op::Comment => self.has_event("commented", token) && self.authors.contains(token),
            Op::Claim => self.run_workers.contains(token),
            Op::EndRun => self.payloads.contains(token),
            Op::UpdateTask => self.has_event("updated", token),
            Op::Cursor => self
                .cursors
                .get(&cursor_name(r.worker))
                .is_some_and(|&at| at >= r.a),
            Op::Heartbeat => self.runs.contains(&r.a),
            Op::Move | Op::Open | Op::Read | Op::Damage | Op::Repair => true,
        }
    }
}
