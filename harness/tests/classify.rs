//! Guards how `check::check` classifies what it finds: on purpose-made boards and ledgers,
//! each kind of failure (structural damage, a lost acknowledged commit, a broken invariant
//! or a phantom, a worker error) lands in its own category and nowhere else, a clean board
//! with matching ledgers (binary and text) is clean, and a torn ledger tail counts as
//! nothing. A misclassification here would make `verify` blame the wrong thing, or pass.

use std::io::Write as _;
use std::path::PathBuf;

use kanban_harness::check::{self, Findings, Ledger};
use kanban_harness::ledger::{self, Mark, Op, Record, Writer, token};
use kanban_harness::scenario::{BoardSpec, Damage};
use kanban_harness::setup::prepare;
use kanban_harness::worker::cursor_name;
use kanban_store::{Board, NewTask, Role, RunOutcome, TaskId, TaskStatus};
use tempfile::TempDir;

/// A board in a temporary folder, and a place for ledgers beside it.
struct Fixture {
    dir: TempDir,
    db: PathBuf,
    ledgers: usize,
}

impl Fixture {
    /// A board made by `prepare` with `tasks` ready tasks.
    fn new(tasks: u32) -> Fixture {
        Fixture::with(&BoardSpec {
            tasks,
            damage: Damage::None,
            ..BoardSpec::default()
        })
    }

    fn with(spec: &BoardSpec) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("board.db");
        prepare(&db, spec, false).unwrap();
        Fixture {
            dir,
            db,
            ledgers: 0,
        }
    }

    /// A session on the board (close it before checking).
    fn board(&self) -> Board {
        Board::open(&self.db, Role::Gateway).unwrap()
    }

    /// A plain connection, for damage the store would refuse to do.
    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// Writes `records` with the workers' own writer, plus `tail` raw bytes after them,
    /// and reads the file back as the supervisor does.
    fn binary(&mut self, records: &[Record], tail: &[u8]) -> Ledger {
        self.ledgers += 1;
        let path = self.dir.path().join(format!("w{}.ledger", self.ledgers));
        let mut w = Writer::open(&path).unwrap();
        for r in records {
            w.append(r).unwrap();
        }
        drop(w);
        if !tail.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(tail).unwrap();
        }
        Ledger::Binary(ledger::parse(&std::fs::read(&path).unwrap()))
    }

    fn check(&self, ledgers: &[Ledger]) -> Findings {
        check::check(&self.db, ledgers, vec![])
    }
}

/// The on-disk bytes of one record, as `Writer` writes them.
fn encoded(r: &Record) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.ledger");
    Writer::open(&path).unwrap().append(r).unwrap();
    std::fs::read(path).unwrap()
}

fn rec(mark: Mark, op: Op, worker: u16, seq: u64, a: i64) -> Record {
    Record {
        mark,
        op,
        worker,
        incarnation: 0,
        seq,
        a,
    }
}

/// An intent, then its ack with `acked` as the ack's value (as `Ledgered::write` does).
fn pair(op: Op, worker: u16, seq: u64, a: i64, acked: i64) -> [Record; 2] {
    [
        rec(Mark::Intent, op, worker, seq, a),
        rec(Mark::Ack, op, worker, seq, acked),
    ]
}

/// The categories with findings, in `Findings` order.
fn kinds(f: &Findings) -> Vec<&'static str> {
    [
        ("corrupt", &f.corrupt),
        ("lost_acked", &f.lost_acked),
        ("invariant", &f.invariant),
        ("worker_error", &f.worker_error),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, _)| k)
    .collect()
}

/// Asserts that exactly the categories `expected` have findings; returns them joined.
#[track_caller]
fn assert_kinds(f: &Findings, expected: &[&str]) -> String {
    assert_eq!(kinds(f), expected, "findings:\n{}", f.lines().join("\n"));
    f.lines().join("\n")
}

fn new_task(title: &str) -> NewTask {
    NewTask {
        title: title.into(),
        body: "made by the test".into(),
        priority: 0,
        parents: Vec::new(),
    }
}

fn first_task(fx: &Fixture) -> TaskId {
    fx.raw()
        .query_row("SELECT min(id) FROM tasks", [], |r| r.get(0))
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Clean

/// Gateway (worker 0), dashboard (1) and agent (2) each do what they do in a run, through
/// the store, with their tokens, and ledger it: nothing to find.
#[test]
fn a_clean_board_with_matching_ledgers_is_clean() {
    let mut fx = Fixture::new(2);
    let mut board = fx.board();

    // Dashboard: create, comment, update, two moves.
    let created = board.create_task(&new_task(&token(1, 0, 1))).unwrap();
    board
        .comment(created, &token(1, 0, 2), "looks good")
        .unwrap();
    board
        .update_task(created, &token(1, 0, 3), "edited", 2)
        .unwrap();
    board.move_task(created, TaskStatus::Ready).unwrap();
    board.move_task(created, TaskStatus::Blocked).unwrap();
    let dashboard = [
        pair(Op::CreateTask, 1, 1, 0, created),
        pair(Op::Comment, 1, 2, created, created),
        pair(Op::UpdateTask, 1, 3, created, created),
        pair(Op::Move, 1, 4, created, created),
        pair(Op::Move, 1, 5, created, created),
    ]
    .concat();

    // Gateway: claim, then advance its notifier cursor.
    let claim = board
        .claim_next(&token(0, 0, 1))
        .unwrap()
        .expect("a ready task");
    let last = board.events_since(0, 1000).unwrap().last().unwrap().id;
    let at = board.advance_cursor(&cursor_name(0), last).unwrap();
    assert_eq!(at, last);
    let gateway = [
        pair(Op::Claim, 0, 1, 0, claim.run_id),
        pair(Op::Cursor, 0, 2, last, at),
    ]
    .concat();

    // Agent: heartbeat, then end the run with its token as the result.
    board.heartbeat(claim.run_id).unwrap();
    board
        .end_run(claim.run_id, RunOutcome::Completed, &token(2, 0, 2))
        .unwrap();
    let agent = [
        pair(Op::Heartbeat, 2, 1, claim.run_id, claim.run_id),
        pair(Op::EndRun, 2, 2, claim.run_id, claim.run_id),
    ]
    .concat();
    drop(board);

    let ledgers = [
        fx.binary(&gateway, &[]),
        fx.binary(&dashboard, &[]),
        fx.binary(&agent, &[]),
    ];
    let f = fx.check(&ledgers);
    assert_kinds(&f, &[]);
    assert!(f.is_clean());
}

#[test]
fn a_prepared_board_without_ledgers_is_clean() {
    let fx = Fixture::new(5);
    assert_kinds(&fx.check(&[]), &[]);
}

// ---------------------------------------------------------------------------------------
// corrupt

#[test]
fn a_damaged_index_is_corrupt_and_named() {
    let fx = Fixture::with(&BoardSpec {
        tasks: 3,
        damage: Damage::Index,
        ..BoardSpec::default()
    });
    let f = fx.check(&[]);
    assert_kinds(&f, &["corrupt"]);
    assert!(
        f.corrupt.iter().any(|l| l.contains("idx_events_run")),
        "{:?}",
        f.corrupt
    );
}

/// A damaged board says so even when the ledgers are fine: the damage is not hidden behind,
/// or turned into, other findings.
#[test]
fn a_damaged_index_with_clean_ledgers_is_only_corrupt() {
    let mut fx = Fixture::with(&BoardSpec {
        tasks: 3,
        damage: Damage::Index,
        ..BoardSpec::default()
    });
    let id = fx.board().create_task(&new_task(&token(1, 0, 1))).unwrap();
    let ledger = fx.binary(&pair(Op::CreateTask, 1, 1, 0, id), &[]);
    assert_kinds(&fx.check(&[ledger]), &["corrupt"]);
}

/// Not a database at all: SQLite cannot read it, which is structural damage and nothing
/// else (no invariant can be judged on a file that is not a board).
///
/// Fails at the time of writing: `check::check` files the `error: file is not a database`
/// rows of `foreign_key_check` and of every invariant query under `invariant` too.
#[test]
fn random_bytes_are_corrupt_and_only_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.db");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..16 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&db, bytes).unwrap();
    let f = check::check(&db, &[], vec![]);
    let text = assert_kinds(&f, &["corrupt"]);
    assert!(text.contains("not a database"), "{text}");
}

/// A board that is gone (deleted or renamed away under the workers) cannot be read:
/// structural damage, not a list of broken invariants; and checking must not create it.
///
/// Fails at the time of writing: `Connection::open` creates an empty file, whose missing
/// tables make every invariant query an `error: no such table` row filed under `invariant`.
#[test]
fn a_missing_board_is_corrupt_and_only_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("board.db");
    let f = check::check(&db, &[], vec![]);
    assert_kinds(&f, &["corrupt"]);
    assert!(!db.exists(), "the check created {}", db.display());
}

// ---------------------------------------------------------------------------------------
// lost_acked

/// For each op that puts a token (or a run, or a cursor position) on the board: an intent
/// and an ack, and nothing on the board.
#[test]
fn an_ack_without_its_effect_is_lost_for_every_op() {
    let cases = [
        (Op::CreateTask, 0, 7),
        (Op::Comment, 1, 1),
        (Op::Claim, 0, 9),
        (Op::EndRun, 9, 9),
        (Op::UpdateTask, 1, 1),
        (Op::Cursor, 1, 1),
        (Op::Heartbeat, 9, 9),
    ];
    for (op, a, acked) in cases {
        let mut fx = Fixture::new(1);
        let ledger = fx.binary(&pair(op, 3, 1, a, acked), &[]);
        let f = fx.check(&[ledger]);
        let text = assert_kinds(&f, &["lost_acked"]);
        assert_eq!(f.lost_acked.len(), 1, "{op:?}: {text}");
        assert!(text.contains(&format!("{op:?}")), "{op:?}: {text}");
        assert!(text.contains("w3i0s1"), "{op:?}: {text}");
    }
}

/// An effect of another kind carrying the same token is not the acked one.
#[test]
fn an_effect_of_another_kind_does_not_count() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    let t = token(1, 0, 1);
    // The token is a comment author (a `commented` event), not a `created` or `updated`.
    fx.board().comment(task, &t, "hello").unwrap();
    for op in [Op::CreateTask, Op::UpdateTask] {
        let ledger = fx.binary(&pair(op, 1, 1, task, task), &[]);
        let f = fx.check(&[ledger]);
        assert_kinds(&f, &["lost_acked"]);
    }
    // And the other way round: a task titled with the token is not a comment.
    let mut fx = Fixture::new(0);
    fx.board().create_task(&new_task(&t)).unwrap();
    let ledger = fx.binary(&pair(Op::Comment, 1, 1, 1, 1), &[]);
    assert_kinds(&fx.check(&[ledger]), &["lost_acked"]);
}

#[test]
fn a_cursor_behind_its_ack_is_lost() {
    let mut fx = Fixture::new(1);
    // `prepare` made two events (created, ready); the cursor stands at 1.
    let at = fx.board().advance_cursor(&cursor_name(4), 1).unwrap();
    assert_eq!(at, 1);
    let behind = fx.binary(&pair(Op::Cursor, 4, 1, 2, 2), &[]);
    assert_kinds(&fx.check(&[behind]), &["lost_acked"]);
    // The same ack from the worker whose cursor it is, at its position: present.
    let there = fx.binary(&pair(Op::Cursor, 4, 1, 1, 1), &[]);
    assert_kinds(&fx.check(&[there]), &[]);
    // Another worker's cursor does not stand in for it.
    let other = fx.binary(&pair(Op::Cursor, 5, 1, 1, 1), &[]);
    assert_kinds(&fx.check(&[other]), &["lost_acked"]);
}

#[test]
fn more_acked_moves_than_moved_events_are_lost() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    fx.board().move_task(task, TaskStatus::Blocked).unwrap();
    let two = [
        pair(Op::Move, 1, 1, task, task),
        pair(Op::Move, 1, 2, task, task),
    ]
    .concat();
    let ledger = fx.binary(&two, &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["lost_acked"]);
    assert_eq!(f.lost_acked.len(), 1, "{text}");
    assert!(
        text.contains(&format!(
            "task {task}: 2 moves acknowledged, 1 on the board"
        )),
        "{text}"
    );
    // Acks split over two workers' ledgers add up the same way.
    let (a, b) = (
        fx.binary(&pair(Op::Move, 1, 1, task, task), &[]),
        fx.binary(&pair(Op::Move, 2, 1, task, task), &[]),
    );
    assert_kinds(&fx.check(&[a, b]), &["lost_acked"]);
    // One acked move, one on the board: fine.
    let one = fx.binary(&pair(Op::Move, 1, 1, task, task), &[]);
    assert_kinds(&fx.check(&[one]), &[]);
}

/// An intent without an ack promises nothing: its effect may or may not be there.
#[test]
fn an_intent_without_an_ack_is_not_lost() {
    let mut fx = Fixture::new(1);
    let ledger = fx.binary(&[rec(Mark::Intent, Op::CreateTask, 1, 1, 0)], &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
}

// ---------------------------------------------------------------------------------------
// invariant

#[test]
fn a_phantom_task_is_an_invariant_finding() {
    let mut fx = Fixture::new(1);
    let t = token(9, 0, 1);
    fx.board().create_task(&new_task(&t)).unwrap();
    let f = fx.check(&[]);
    let text = assert_kinds(&f, &["invariant"]);
    assert!(text.contains("phantom: w9i0s1"), "{text}");
    // Another worker's ledger does not make it intended.
    let other = fx.binary(&pair(Op::CreateTask, 8, 1, 0, 2), &[]);
    let f = fx.check(&[other]);
    // (Worker 8's own ack is lost as well: two findings, two categories.)
    assert_kinds(&f, &["lost_acked", "invariant"]);
}

#[test]
fn phantom_runs_and_comments_are_invariant_findings() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    let mut board = fx.board();
    board
        .comment(task, &token(9, 0, 1), "who wrote this?")
        .unwrap();
    let claim = board.claim_next(&token(9, 0, 2)).unwrap().unwrap();
    board
        .end_run(claim.run_id, RunOutcome::Completed, &token(9, 0, 3))
        .unwrap();
    drop(board);
    let f = fx.check(&[]);
    let text = assert_kinds(&f, &["invariant"]);
    assert_eq!(f.invariant.len(), 3, "{text}");
    // Intended, they are fine.
    let intents = [
        rec(Mark::Intent, Op::Comment, 9, 1, task),
        rec(Mark::Intent, Op::Claim, 9, 2, 0),
        rec(Mark::Intent, Op::EndRun, 9, 3, claim.run_id),
    ];
    let ledger = fx.binary(&intents, &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
}

#[test]
fn a_running_task_without_a_run_is_an_invariant_finding() {
    let fx = Fixture::new(2);
    let task = first_task(&fx);
    fx.raw()
        .execute("UPDATE tasks SET status = 'running' WHERE id = ?1", [task])
        .unwrap();
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(
        text.contains(&format!(
            "running task without its running run: task {task}"
        )),
        "{text}"
    );
}

#[test]
fn a_cursor_past_the_last_event_is_an_invariant_finding() {
    let fx = Fixture::new(1);
    fx.raw()
        .execute(
            "INSERT INTO notify_subs (name, last_event_id) VALUES ('ahead', 999)",
            [],
        )
        .unwrap();
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(text.contains("cursor ahead"), "{text}");
}

#[test]
fn a_dangling_foreign_key_is_an_invariant_finding() {
    let fx = Fixture::new(1);
    let conn = fx.raw();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute(
        "INSERT INTO task_comments (task_id, author, body, created_at) VALUES (999, 'a', 'b', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(text.contains("task_comments"), "{text}");
}

// ---------------------------------------------------------------------------------------
// worker_error

#[test]
fn an_error_record_is_a_worker_error() {
    let mut fx = Fixture::new(1);
    let ledger = fx.binary(&[rec(Mark::Error, Op::Open, 2, 0, 0)], &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["worker_error"]);
    assert_eq!(f.worker_error.len(), 1, "{text}");
    assert!(text.contains("worker 2"), "{text}");
    // An error after an intent of the same op: still only the error.
    let ledger = fx.binary(
        &[
            rec(Mark::Intent, Op::CreateTask, 2, 1, 0),
            rec(Mark::Error, Op::CreateTask, 2, 1, 0),
        ],
        &[],
    );
    assert_kinds(&fx.check(&[ledger]), &["worker_error"]);
}

#[test]
fn the_supervisors_observations_are_worker_errors() {
    let fx = Fixture::new(1);
    let f = check::check(&fx.db, &[], vec!["worker 0 panicked".into()]);
    assert_kinds(&f, &["worker_error"]);
}

#[test]
fn a_malformed_text_ledger_line_is_a_worker_error() {
    let fx = Fixture::new(1);
    let (entries, errors) = ledger::parse_text("nonsense\n");
    assert!(entries.is_empty());
    let f = fx.check(&[Ledger::Text(entries, errors)]);
    let text = assert_kinds(&f, &["worker_error"]);
    assert!(text.contains("line 1"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Text ledgers

fn text(s: &str) -> Ledger {
    let (entries, errors) = ledger::parse_text(s);
    Ledger::Text(entries, errors)
}

#[test]
fn a_text_ledger_ack_of_a_present_task_is_clean() {
    let fx = Fixture::new(1);
    fx.board().create_task(&new_task("py-1-1")).unwrap();
    let f = fx.check(&[text("intent task py-1-1\nack task py-1-1\n")]);
    assert_kinds(&f, &[]);
}

#[test]
fn a_text_ledger_ack_of_a_missing_task_is_lost() {
    let fx = Fixture::new(1);
    fx.board().create_task(&new_task("py-1-1")).unwrap();
    let f = fx.check(&[text(
        "intent task py-1-1\nack task py-1-1\nintent task py-1-2\nack task py-1-2\n",
    )]);
    let text = assert_kinds(&f, &["lost_acked"]);
    assert_eq!(f.lost_acked.len(), 1, "{text}");
    assert!(text.contains("py-1-2"), "{text}");
}

#[test]
fn a_renamed_task_is_still_present_by_its_created_event() {
    let fx = Fixture::new(1);
    let mut board = fx.board();
    let id = board.create_task(&new_task("py-1-3")).unwrap();
    board.update_task(id, "renamed by a user", "", 0).unwrap();
    drop(board);
    let f = fx.check(&[text("intent task py-1-3\nack task py-1-3\n")]);
    assert_kinds(&f, &[]);
}

#[test]
fn text_ledger_events_and_torn_lines() {
    let fx = Fixture::new(1);
    let task = first_task(&fx);
    fx.board().comment(task, "py-author", "hi").unwrap();
    // `event` entries match any payload; a last line without its newline is torn.
    let f = fx.check(&[text("ack event py-author\nack task never-committed")]);
    assert_kinds(&f, &[]);
    let f = fx.check(&[text("ack event py-nobody\n")]);
    assert_kinds(&f, &["lost_acked"]);
}

/// A token a command worker announced is intended: not a phantom.
#[test]
fn a_text_ledger_intent_makes_a_token_intended() {
    let fx = Fixture::new(1);
    let t = token(7, 0, 1);
    fx.board().create_task(&new_task(&t)).unwrap();
    let f = fx.check(&[text(&format!("intent task {t}\n"))]);
    assert_kinds(&f, &[]);
}

// ---------------------------------------------------------------------------------------
// Torn binary ledgers

/// A worker killed mid-write leaves half a record: it is not read, so even an ack of
/// something missing in it is not a lost commit, and it is not damage either.
#[test]
fn a_torn_binary_tail_counts_as_nothing() {
    let mut fx = Fixture::new(1);
    let t = token(1, 0, 1);
    let id = fx.board().create_task(&new_task(&t)).unwrap();
    let good = pair(Op::CreateTask, 1, 1, 0, id);
    let missing = rec(Mark::Ack, Op::CreateTask, 1, 2, 99);
    let half = &encoded(&missing)[..ledger::RECORD / 2];
    let ledger = fx.binary(&good, half);
    match &ledger {
        Ledger::Binary(c) => assert_eq!(
            (c.records.len(), c.torn_tail, c.bad_records),
            (2, true, 0),
            "{c:?}"
        ),
        Ledger::Text(..) => unreachable!(),
    }
    assert_kinds(&fx.check(&[ledger]), &[]);

    // A whole last record garbled by the kill counts as torn too.
    let mut garbled = encoded(&missing);
    garbled[40..].fill(0);
    let ledger = fx.binary(&good, &garbled);
    assert_kinds(&fx.check(&[ledger]), &[]);
}

/// A record that fails its checksum before the end is not a torn tail: it is reported.
#[test]
fn a_bad_record_in_the_middle_is_reported() {
    let mut fx = Fixture::new(1);
    let t = token(1, 0, 1);
    let id = fx.board().create_task(&new_task(&t)).unwrap();
    let mut bad = encoded(&rec(Mark::Intent, Op::Comment, 1, 2, 0));
    bad[9] ^= 0xFF;
    let mut tail = bad;
    tail.extend(encoded(&rec(Mark::Intent, Op::Comment, 1, 3, 0)));
    let ledger = fx.binary(&pair(Op::CreateTask, 1, 1, 0, id), &tail);
    let f = fx.check(&[ledger]);
    // Classified as `invariant` (the ledger's own integrity), never as damage to the board.
    let text = assert_kinds(&f, &["invariant"]);
    assert!(
        text.contains("1 ledger records failed their checksum"),
        "{text}"
    );
}
