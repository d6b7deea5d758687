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
use kanban_store::{Board, EventId, NewTask, Role, RunOutcome, TaskId, TaskStatus, Txn};
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
        check::check(&self.db, ledgers, &Default::default(), vec![])
    }
}

/// The on-disk bytes of one record, as `Writer` writes them.
fn encoded(r: &Record) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.ledger");
    Writer::open(&path).unwrap().append(r).unwrap();
    std::fs::read(path).unwrap()
}

/// `a` and `b` are store ids or plain integers: a ledger keeps them as integers.
fn rec(
    mark: Mark,
    op: Op,
    worker: u16,
    seq: u64,
    (a, b): (impl Into<i64>, impl Into<i64>),
) -> Record {
    Record {
        mark,
        op,
        worker,
        incarnation: 0,
        seq,
        a: a.into(),
        b: b.into(),
        c: 0,
    }
}

/// An intent with `args`, then its ack with `effect` (as `Ledgered::write` does).
fn pair(
    op: Op,
    worker: u16,
    seq: u64,
    args: (impl Into<i64>, impl Into<i64>),
    effect: (impl Into<i64>, impl Into<i64>),
) -> [Record; 2] {
    [
        rec(Mark::Intent, op, worker, seq, args),
        rec(Mark::Ack, op, worker, seq, effect),
    ]
}

/// The categories with findings, in `Findings` order.
fn kinds(f: &Findings) -> Vec<&'static str> {
    [
        "corrupt",
        "lost_acked",
        "lost_after_read",
        "invariant",
        "worker_error",
        "duplicate",
    ]
    .into_iter()
    .filter(|k| !f.of_kind(k).is_empty())
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

/// Runs `f` in a transaction; returns its value and the id of the last event it logged.
fn in_txn<T>(board: &mut Board, f: impl Fn(&Txn<'_>) -> kanban_store::Result<T>) -> (T, EventId) {
    board
        .transaction(|t| Ok((f(t)?, *t.event_ids().last().expect("an event"))))
        .unwrap()
}

fn code(status: TaskStatus) -> i64 {
    ledger::status_code(status)
}

/// What worker `worker`'s poller records when it reads every event after `after` now.
fn read_of(board: &mut Board, worker: u16, after: EventId) -> Record {
    let events = board.events_since(after, 1000).unwrap();
    let digest = ledger::events_digest(events.iter().map(ledger::EventKey::from));
    Record {
        c: digest,
        ..rec(
            Mark::Read,
            Op::Read,
            worker,
            0,
            (after, events.last().unwrap().id),
        )
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
/// the store, with their tokens, and ledger it as the workers do (event ids, values): nothing
/// to find.
#[test]
fn a_clean_board_with_matching_ledgers_is_clean() {
    let mut fx = Fixture::new(2);
    let mut board = fx.board();

    // Dashboard: create, comment, update, two moves; its poller reads every event.
    let (created, created_ev) = in_txn(&mut board, |t| t.create_task(&new_task(&token(1, 0, 1))));
    let (comment, comment_ev) = in_txn(&mut board, |t| {
        t.comment(created, &token(1, 0, 2), "looks good")
    });
    let updated = board
        .update_task(created, &token(1, 0, 3), "edited", 2)
        .unwrap();
    let ready = board.move_task(created, TaskStatus::Ready).unwrap();
    let blocked = board.move_task(created, TaskStatus::Blocked).unwrap();
    let mut dashboard = [
        pair(Op::CreateTask, 1, 1, (0, 0), (created, created_ev)),
        pair(Op::Comment, 1, 2, (created, 0), (comment, comment_ev)),
        pair(Op::UpdateTask, 1, 3, (created, 0), (created, updated)),
        pair(
            Op::Move,
            1,
            4,
            (created, code(TaskStatus::Ready)),
            (created, ready),
        ),
        pair(
            Op::Move,
            1,
            5,
            (created, code(TaskStatus::Blocked)),
            (created, blocked),
        ),
    ]
    .concat();
    dashboard.push(read_of(&mut board, 1, EventId::default()));

    // Gateway: claim, then advance its notifier cursor; a later start finds it there.
    let (run, claimed) = in_txn(&mut board, |t| {
        t.claim_next(&token(0, 0, 1))
            .map(|c| c.expect("a ready task").run_id)
    });
    let last = board
        .events_since(0.into(), 1000)
        .unwrap()
        .last()
        .unwrap()
        .id;
    let at = board.advance_cursor(&cursor_name(0), last).unwrap();
    assert_eq!(at, last);
    let mut gateway = [
        pair(Op::Claim, 0, 1, (0, 0), (run, claimed)),
        pair(Op::Cursor, 0, 2, (last, 0), (at, 0)),
    ]
    .concat();
    gateway.push(Record {
        incarnation: 1,
        ..rec(Mark::Read, Op::Cursor, 0, 0, (at, 0))
    });

    // Agent: heartbeat, then end the run with its token as the result.
    let beat = board.heartbeat(run).unwrap();
    let (_, ended) = in_txn(&mut board, |t| {
        t.end_run(run, RunOutcome::Completed, &token(2, 0, 2))
    });
    let completed = ledger::outcome_code(RunOutcome::Completed);
    let agent = [
        pair(Op::Heartbeat, 2, 1, (run, 0), (run, beat)),
        pair(Op::EndRun, 2, 2, (run, completed), (run, ended)),
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
    let ledger = fx.binary(&pair(Op::CreateTask, 1, 1, (0, 0), (id, 0)), &[]);
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
    let f = check::check(&db, &[], &Default::default(), vec![]);
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
    let f = check::check(&db, &[], &Default::default(), vec![]);
    assert_kinds(&f, &["corrupt"]);
    assert!(!db.exists(), "the check created {}", db.display());
}

// ---------------------------------------------------------------------------------------
// lost_acked

/// For each op that puts an effect on the board: an intent and an ack, and nothing (or
/// not that) on the board. The prepared board has task 1 and its events 1 (`created`) and
/// 2 (`ready`), and no run.
#[test]
fn an_ack_without_its_effect_is_lost_for_every_op() {
    let blocked = code(TaskStatus::Blocked);
    let cases = [
        (Op::CreateTask, (0, 0), (7, 0)),
        (Op::Comment, (1, 0), (1, 0)),
        (Op::Claim, (0, 0), (9, 9)),
        (Op::EndRun, (9, 1), (9, 9)),
        (Op::UpdateTask, (1, 0), (1, 0)),
        (Op::Cursor, (1, 0), (1, 0)),
        (Op::Heartbeat, (9, 0), (9, 5)),
        (Op::Move, (1, blocked), (1, 9)),
        // Event 1 is there, but it is not a `moved` one.
        (Op::Move, (1, blocked), (1, 1)),
        (Op::Ready, (0, 0), (1, 9)),
        // Event 2 is task 1's `ready`, not task 3's.
        (Op::Ready, (0, 0), (3, 2)),
        (Op::Expire, (0, 0), (9, 9)),
        (Op::Link, (1, 2), (2, 9)),
    ];
    for (op, args, effect) in cases {
        let mut fx = Fixture::new(1);
        let ledger = fx.binary(&pair(op, 3, 1, args, effect), &[]);
        let f = fx.check(&[ledger]);
        let text = assert_kinds(&f, &["lost_acked"]);
        assert_eq!(f.lost_acked.len(), 1, "{op:?}: {text}");
        assert!(text.contains(&format!("{op:?}")), "{op:?}: {text}");
        assert!(text.contains("w3i0s1"), "{op:?}: {text}");
    }
    // And the one that is there: task 1's `ready` event, 2.
    let mut fx = Fixture::new(1);
    let ledger = fx.binary(&pair(Op::Ready, 3, 1, (0, 0), (1, 2)), &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
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
        let ledger = fx.binary(&pair(op, 1, 1, (task, 0), (task, 0)), &[]);
        let f = fx.check(&[ledger]);
        assert_kinds(&f, &["lost_acked"]);
    }
    // And the other way round: a task titled with the token is not a comment.
    let mut fx = Fixture::new(0);
    fx.board().create_task(&new_task(&t)).unwrap();
    let ledger = fx.binary(&pair(Op::Comment, 1, 1, (1, 0), (1, 0)), &[]);
    assert_kinds(&fx.check(&[ledger]), &["lost_acked"]);
}

#[test]
fn a_cursor_behind_its_ack_is_lost() {
    let mut fx = Fixture::new(1);
    // `prepare` made two events (created, ready); the cursor stands at 1.
    let at = fx
        .board()
        .advance_cursor(&cursor_name(4), 1.into())
        .unwrap();
    assert_eq!(at.get(), 1);
    let behind = fx.binary(&pair(Op::Cursor, 4, 1, (2, 0), (2, 0)), &[]);
    assert_kinds(&fx.check(&[behind]), &["lost_acked"]);
    // The same ack from the worker whose cursor it is, at its position: present.
    let there = fx.binary(&pair(Op::Cursor, 4, 1, (1, 0), (1, 0)), &[]);
    assert_kinds(&fx.check(&[there]), &[]);
    // Another worker's cursor does not stand in for it.
    let other = fx.binary(&pair(Op::Cursor, 5, 1, (1, 0), (1, 0)), &[]);
    assert_kinds(&fx.check(&[other]), &["lost_acked"]);
}

/// An acked move is found by the event id its commit returned. Counting moves per task
/// (as the check once did) let a lost one hide behind a move that committed without its
/// ack (its worker was killed in between).
///
/// Failed before: one move acked, one `moved` event on the task: clean.
#[test]
fn a_lost_move_hidden_behind_another_is_lost() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    let blocked = code(TaskStatus::Blocked);
    let committed = fx.board().move_task(task, TaskStatus::Blocked).unwrap();
    let hidden = [
        vec![rec(Mark::Intent, Op::Move, 1, 1, (task, blocked))],
        pair(Op::Move, 1, 2, (task, blocked), (task, committed.get() + 1)).to_vec(),
    ]
    .concat();
    let ledger = fx.binary(&hidden, &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["lost_acked"]);
    assert_eq!(f.lost_acked.len(), 1, "{text}");
    assert!(text.contains("Move w1i0s2"), "{text}");
    // Acked with the id it committed as: present.
    let one = fx.binary(
        &pair(Op::Move, 1, 1, (task, blocked), (task, committed)),
        &[],
    );
    assert_kinds(&fx.check(&[one]), &[]);
}

/// A `moved` event that no ack names and no unacknowledged intent (to move that task
/// there) explains is a phantom.
///
/// Failed before: moves were never judged phantoms.
#[test]
fn a_moved_event_nobody_intended_is_a_phantom() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    let id = fx.board().move_task(task, TaskStatus::Blocked).unwrap();
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(
        text.contains(&format!("phantom: event {id} moved task {task} to blocked")),
        "{text}"
    );
    // A worker meant to move it so and was killed before its ack: explained.
    let meant = rec(
        Mark::Intent,
        Op::Move,
        1,
        1,
        (task, code(TaskStatus::Blocked)),
    );
    let ledger = fx.binary(&[meant], &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
    // A worker that meant to move it elsewhere does not explain it.
    let elsewhere = rec(Mark::Intent, Op::Move, 1, 1, (task, code(TaskStatus::Todo)));
    let ledger = fx.binary(&[elsewhere], &[]);
    assert_kinds(&fx.check(&[ledger]), &["invariant"]);
}

/// A heartbeat is acked with the value it left on the run: a run whose heartbeat is
/// behind it lost the heartbeat, though the run is there.
///
/// Failed before: a heartbeat was present whenever its run existed.
#[test]
fn a_lost_heartbeat_value_is_lost() {
    let mut fx = Fixture::new(1);
    let mut board = fx.board();
    let (run, claimed) = in_txn(&mut board, |t| {
        t.claim_next(&token(0, 0, 1)).map(|c| c.unwrap().run_id)
    });
    let beat = board.heartbeat(run).unwrap();
    drop(board);
    let gateway = fx.binary(&pair(Op::Claim, 0, 1, (0, 0), (run, claimed)), &[]);
    let agent = fx.binary(&pair(Op::Heartbeat, 2, 1, (run, 0), (run, beat)), &[]);
    let ledgers = [gateway, agent];
    assert_kinds(&fx.check(&ledgers), &[]);
    fx.raw()
        .execute(
            "UPDATE task_runs SET heartbeat_at = heartbeat_at - 1000",
            [],
        )
        .unwrap();
    let f = fx.check(&ledgers);
    let text = assert_kinds(&f, &["lost_acked"]);
    assert!(text.contains("Heartbeat w2i0s1"), "{text}");
}

/// An incarnation that finds its cursor behind what an earlier incarnation of the same
/// worker had acked proves that advance lost, even when a later advance covers it.
///
/// Failed before: the cursor was judged only at the end, where the later advance hid it.
#[test]
fn a_cursor_an_earlier_start_acked_is_lost_if_a_later_start_finds_it_behind() {
    let mut fx = Fixture::new(1);
    let at = fx
        .board()
        .advance_cursor(&cursor_name(4), 2.into())
        .unwrap();
    assert_eq!(at.get(), 2);
    // Start 1 reads the cursor at `found`, then advances it to 2 itself.
    let later = |found: i64| {
        [
            rec(Mark::Read, Op::Cursor, 4, 0, (found, 0)),
            rec(Mark::Intent, Op::Cursor, 4, 1, (2, 0)),
            rec(Mark::Ack, Op::Cursor, 4, 1, (2, 0)),
        ]
        .map(|r| Record {
            incarnation: 1,
            ..r
        })
    };
    let earlier = pair(Op::Cursor, 4, 1, (2, 0), (2, 0));
    let mut found_behind = earlier.to_vec();
    found_behind.extend(later(1));
    let ledger = fx.binary(&found_behind, &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["lost_acked"]);
    assert_eq!(f.lost_acked.len(), 1, "{text}");
    assert!(text.contains("Cursor w4i0s1"), "{text}");
    assert!(text.contains("found the cursor at 1"), "{text}");
    // Found where it was left: fine.
    let mut found_there = earlier.to_vec();
    found_there.extend(later(2));
    let ledger = fx.binary(&found_there, &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
}

/// A link is acked with its child and its `linked` event; a link on the board nobody
/// made is a phantom.
///
/// Failed before: links were not ledgered, nor judged.
#[test]
fn a_lost_link_is_lost_and_a_link_nobody_made_is_a_phantom() {
    let mut fx = Fixture::new(2);
    let (parent, child) = (first_task(&fx), TaskId::from(first_task(&fx).get() + 1));
    let event = fx.board().link(parent, child).unwrap();
    let ledger = fx.binary(&pair(Op::Link, 1, 1, (parent, child), (child, event)), &[]);
    let ledgers = [ledger];
    assert_kinds(&fx.check(&ledgers), &[]);
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(text.contains("a link nobody made"), "{text}");
    fx.raw().execute("DELETE FROM task_links", []).unwrap();
    let text = assert_kinds(&fx.check(&ledgers), &["lost_acked"]);
    assert!(text.contains("Link w1i0s1"), "{text}");
}

/// The set checker: what a reader observed must still be on the board. An acked event a
/// reader saw and that is gone is lost *after being read* (and lost); one nobody was told
/// of is lost after being read alone; one gone before anyone read it is only lost.
///
/// Failed before: reads were never checked.
#[test]
fn an_event_read_then_lost_is_lost_after_read() {
    let mut fx = Fixture::new(1);
    let mut board = fx.board();
    let (id, event) = in_txn(&mut board, |t| t.create_task(&new_task(&token(1, 0, 1))));
    let read = read_of(&mut board, 2, EventId::default());
    drop(board);
    let writer = fx.binary(&pair(Op::CreateTask, 1, 1, (0, 0), (id, event)), &[]);
    let reader = fx.binary(&[read], &[]);
    let ledgers = [writer, reader];
    assert_kinds(&fx.check(&ledgers), &[]);
    fx.raw()
        .execute("DELETE FROM task_events WHERE id = ?1", [event])
        .unwrap();
    let f = fx.check(&ledgers);
    let text = assert_kinds(&f, &["lost_acked", "lost_after_read"]);
    assert_eq!(f.lost_after_read.len(), 1, "{text}");
    assert!(f.lost_after_read[0].contains("w1i0s1"), "{text}");
    assert!(
        f.lost_after_read[0].contains("worker 2 (start 0) had read it"),
        "{text}"
    );
    // Gone, but read only after it was gone: lost, not lost after being read.
    let mut board = fx.board();
    let reader = fx.binary(&[read_of(&mut board, 2, EventId::default())], &[]);
    drop(board);
    let writer = fx.binary(&pair(Op::CreateTask, 1, 1, (0, 0), (id, event)), &[]);
    assert_kinds(&fx.check(&[writer, reader]), &["lost_acked"]);

    // Nobody was told of it (no ledger made it), but a reader saw it: gone after read.
    let mut fx = Fixture::new(1);
    let mut board = fx.board();
    let (_, event) = in_txn(&mut board, |t| t.create_task(&new_task("someone's task")));
    let reader = fx.binary(&[read_of(&mut board, 2, EventId::default())], &[]);
    drop(board);
    fx.raw()
        .execute("DELETE FROM task_events WHERE id = ?1", [event])
        .unwrap();
    let f = fx.check(&[reader]);
    let text = assert_kinds(&f, &["lost_after_read"]);
    assert!(text.contains("are not all on the board any more"), "{text}");
}

/// A lost event's id goes to the next event: ids alone would call it present. The read
/// record's digest covers what the event was.
#[test]
fn an_event_read_then_replaced_at_its_id_is_lost_after_read() {
    let mut fx = Fixture::new(1);
    let mut board = fx.board();
    let (_, event) = in_txn(&mut board, |t| t.create_task(&new_task("first")));
    let reader = fx.binary(&[read_of(&mut board, 2, EventId::default())], &[]);
    drop(board);
    fx.raw()
        .execute("DELETE FROM task_events WHERE id = ?1", [event])
        .unwrap();
    let (_, reused) = in_txn(&mut fx.board(), |t| t.create_task(&new_task("second")));
    assert_eq!(reused, event);
    assert_kinds(&fx.check(&[reader]), &["lost_after_read"]);
}

/// A token in a title that no ledger intended is a phantom (titles are effects too).
///
/// Failed before: titles were not among the places phantoms were looked for.
#[test]
fn a_phantom_title_is_an_invariant_finding() {
    let fx = Fixture::new(1);
    fx.raw()
        .execute("UPDATE tasks SET title = ?1", [token(9, 0, 1)])
        .unwrap();
    let text = assert_kinds(&fx.check(&[]), &["invariant"]);
    assert!(text.contains("phantom: w9i0s1"), "{text}");
}

/// An intent without an ack promises nothing: its effect may or may not be there.
#[test]
fn an_intent_without_an_ack_is_not_lost() {
    let mut fx = Fixture::new(1);
    let ledger = fx.binary(&[rec(Mark::Intent, Op::CreateTask, 1, 1, (0, 0))], &[]);
    assert_kinds(&fx.check(&[ledger]), &[]);
}

// ---------------------------------------------------------------------------------------
// duplicate

/// A create and a comment applied twice (the retry of a request the gateway had already
/// run) are each a duplicate; the first application is acked, so nothing is lost.
///
/// Failed before: no check counted effects, so a write applied twice passed.
#[test]
fn a_write_applied_twice_is_a_duplicate() {
    let mut fx = Fixture::new(1);
    let task = first_task(&fx);
    let (create, comment) = (token(1, 0, 1), token(1, 0, 2));
    let mut board = fx.board();
    let first = board.create_task(&new_task(&create)).unwrap();
    board.create_task(&new_task(&create)).unwrap();
    let said = board.comment(task, &comment, "once").unwrap();
    board.comment(task, &comment, "twice").unwrap();
    drop(board);
    let mut records = pair(Op::CreateTask, 1, 1, (0, 0), (first, 0)).to_vec();
    records.extend(pair(Op::Comment, 1, 2, (task, 0), (said, 0)));
    let ledger = fx.binary(&records, &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["duplicate"]);
    for what in [
        "w1i0s1 is on the board 2 times (created)",
        "w1i0s1 is on the board 2 times (task titles)",
        "w1i0s2 is on the board 2 times (comment authors)",
        "w1i0s2 is on the board 2 times (commented)",
    ] {
        assert!(text.contains(what), "{what}: {text}");
    }
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
    let other = fx.binary(&pair(Op::CreateTask, 8, 1, (0, 0), (2, 0)), &[]);
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
        rec(Mark::Intent, Op::Comment, 9, 1, (task, 0)),
        rec(Mark::Intent, Op::Claim, 9, 2, (0, 0)),
        rec(Mark::Intent, Op::EndRun, 9, 3, (claim.run_id, 0)),
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
    let ledger = fx.binary(&[rec(Mark::Error, Op::Open, 2, 0, (0, 0))], &[]);
    let f = fx.check(&[ledger]);
    let text = assert_kinds(&f, &["worker_error"]);
    assert_eq!(f.worker_error.len(), 1, "{text}");
    assert!(text.contains("worker 2"), "{text}");
    // An error after an intent of the same op: still only the error.
    let ledger = fx.binary(
        &[
            rec(Mark::Intent, Op::CreateTask, 2, 1, (0, 0)),
            rec(Mark::Error, Op::CreateTask, 2, 1, (0, 0)),
        ],
        &[],
    );
    assert_kinds(&fx.check(&[ledger]), &["worker_error"]);
}

#[test]
fn the_supervisors_observations_are_worker_errors() {
    let fx = Fixture::new(1);
    let f = check::check(
        &fx.db,
        &[],
        &Default::default(),
        vec!["worker 0 panicked".into()],
    );
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
    let good = pair(Op::CreateTask, 1, 1, (0, 0), (id, 0));
    let missing = rec(Mark::Ack, Op::CreateTask, 1, 2, (99, 0));
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
    let mut bad = encoded(&rec(Mark::Intent, Op::Comment, 1, 2, (0, 0)));
    bad[9] ^= 0xFF;
    let mut tail = bad;
    tail.extend(encoded(&rec(Mark::Intent, Op::Comment, 1, 3, (0, 0))));
    let ledger = fx.binary(&pair(Op::CreateTask, 1, 1, (0, 0), (id, 0)), &tail);
    let f = fx.check(&[ledger]);
    // Classified as `invariant` (the ledger's own integrity), never as damage to the board.
    let text = assert_kinds(&f, &["invariant"]);
    assert!(
        text.contains("1 ledger records failed their checksum"),
        "{text}"
    );
}
