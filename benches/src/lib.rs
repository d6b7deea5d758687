//! Shared setup for the kanban benchmarks: boards of a given size, a "raw" SQLite baseline
//! that does exactly what the store does minus the store, and the child process that the
//! multi-process benchmark runs.
//!
//! The benchmarks (in `benches/benches/`) answer one question: what do the hardened store's
//! rules cost? Each compares the store with a **raw** baseline: plain rusqlite on the same
//! file, configured the way the store configures its own connections (WAL, `busy_timeout`,
//! `synchronous=FULL`, foreign keys, no automatic checkpoints and none on close), running the
//! same SQL. What the baseline leaves out is exactly the store's own work: the SQLite version
//! gate, the `stat` checks, the OFD lock on `<db>.lock`, the identity read, the typed errors,
//! the fork guard. Some benchmarks also show the upstream design (the `naive` hazard set, or
//! one hazard) beside it, to show what the fixes saved.
//!
//! Boards live in `/dev/shm` when it exists (like the harness's seeds), else in the temporary
//! folder; `KANBAN_BENCH_DIR` chooses another folder. On a RAM disk `fsync` costs nothing, so
//! the ratios show the store's CPU overhead undiluted by the disk: a stricter test than a
//! disk, where every commit's `fsync` would hide it.
//!
//! The in-process groups (`open`, `write_txn`, `read`, `lock`) measure with [`BenchClock`]:
//! by default the CPU time of the benchmarking thread (user and system), which is what the
//! store's overhead costs, and which other load on a shared 2-core machine does not inflate
//! the way it inflates wall time (a preempted benchmark accrues wall time, not CPU time).
//! With boards on a RAM disk these groups never block, so on an idle machine the two clocks
//! agree. `KANBAN_BENCH_CLOCK=wall` switches them to wall time (do that when boards are on a
//! real disk, where waiting for `fsync` is part of the cost). `multi_process` and `harness`
//! time several processes, so they always use wall time.
//!
//! Fork safety: the multi-process benchmark starts its children (the single-writer
//! gateway among them) with `fork`+`exec` of the `bench-worker` binary (never a bare
//! `fork`), and only while no SQLite connection is open in the bench process.

use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

use kanban_harness::supervisor::RunOptions;
use kanban_store::WriteServer;
use kanban_store::{
    Board, Clock as _, Event, EventId, NewTask, Role, RunId, StoreConfig, SystemClock, TaskId,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

/// The board sizes of the `open` group: (criterion parameter, bytes). `MB` means MiB.
pub const SIZES: [(&str, u64); 3] = [("1MB", 1 << 20), ("10MB", 10 << 20), ("50MB", 50 << 20)];

/// The clock of the in-process benchmarks: this thread's CPU time, or wall time when
/// `KANBAN_BENCH_CLOCK=wall` (see the crate docs for why).
#[derive(Clone, Copy, Debug)]
pub struct BenchClock {
    cpu: bool,
    origin: Instant,
}

impl BenchClock {
    /// The clock `KANBAN_BENCH_CLOCK` asks for: `cpu` (the default) or `wall`.
    pub fn from_env() -> BenchClock {
        let cpu = match std::env::var("KANBAN_BENCH_CLOCK").as_deref() {
            Ok("wall") => false,
            Ok("cpu") | Err(_) => true,
            Ok(other) => panic!("KANBAN_BENCH_CLOCK={other:?}: use cpu or wall"),
        };
        BenchClock {
            cpu,
            origin: Instant::now(),
        }
    }

    /// What it measures, for the log.
    pub fn name(&self) -> &'static str {
        if self.cpu {
            "thread CPU time"
        } else {
            "wall time"
        }
    }

    /// The time now, from an arbitrary origin.
    pub fn now(&self) -> Duration {
        if !self.cpu {
            return self.origin.elapsed();
        }
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Criterion's own wall-time formatting (nanoseconds), reused for [`BenchClock`].
static NANOSECONDS: WallTime = WallTime;

impl Measurement for BenchClock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }
    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        NANOSECONDS.formatter()
    }
}

/// The criterion configuration of the in-process groups: [`BenchClock`], a 1 s warm-up and
/// 3 s of measurement (command-line flags such as `--measurement-time` override these).
pub fn in_process_criterion() -> criterion::Criterion<BenchClock> {
    let clock = BenchClock::from_env();
    eprintln!(
        "measuring with {} (KANBAN_BENCH_CLOCK=cpu|wall)",
        clock.name()
    );
    criterion::Criterion::default()
        .with_measurement(clock)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// The criterion configuration of the multi-process groups (wall time: their cost is in
/// other processes): a 1 s warm-up and 5 s of measurement.
pub fn processes_criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

/// Where benchmark boards are made: `KANBAN_BENCH_DIR`, else `/dev/shm`, else the temporary
/// folder.
pub fn work_dir() -> PathBuf {
    std::env::var_os("KANBAN_BENCH_DIR").map_or_else(RunOptions::default_work_dir, PathBuf::from)
}

/// A fresh folder under [`work_dir`], removed when dropped.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(work_dir())
        .expect("a scratch folder for benchmark boards")
}

/// Text of `len` bytes that varies with `seed` (task bodies and comments).
fn filler(len: usize, seed: u64) -> String {
    const WORDS: [&str; 8] = [
        "claim ", "ready ", "board ", "agent ", "event ", "gateway ", "run ", "lock ",
    ];
    let mut s = String::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % 8) as usize]);
    }
    s.truncate(len);
    s
}

/// Creates a board at `path` through the store and fills it until its file holds at least
/// `bytes`: tasks with 1.5 KB bodies, three comments each (so the event log grows too: one
/// `created` and three `commented` events per task). Tasks stay `todo`, so nothing on the
/// board is claimable; the WAL is checkpointed into the file and removed at the end.
pub fn build_board(path: &Path, bytes: u64) {
    let mut board = Board::create(path, StoreConfig::new(Role::Gateway)).expect("a new board");
    let mut n: u64 = 0;
    loop {
        board
            .transaction(|t| {
                for i in n..n + 200 {
                    let id = t.create_task(&NewTask {
                        title: format!("task {i}"),
                        body: filler(1500, i),
                        priority: (i % 5) as i64,
                        parents: Vec::new(),
                    })?;
                    for c in 0..3 {
                        t.comment(id, "bench", &filler(120, i * 3 + c))?;
                    }
                }
                Ok(())
            })
            .expect("filling the board");
        n += 200;
        let report = board.checkpoint().expect("a checkpoint while filling");
        let info = board.info().expect("board info");
        if u64::try_from(info.page_count * info.page_size).unwrap_or(0) >= bytes {
            assert!(!report.busy, "nothing else has the board open");
            break;
        }
    }
    // The gateway (checkpoint owner) checkpoints on close and removes the WAL.
    drop(board);
}

/// The pragmas and settings the store gives a connection (see `store/src/open.rs`,
/// `connect`), for a non-owner role: the raw baseline uses the very same ones.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(StoreConfig::new(Role::Worker).busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// The raw baseline's "open a board session": `Connection::open`, `journal_mode=WAL` (which
/// reads the header and the schema, as the store's open does), and the store's pragmas.
pub fn raw_open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    debug_assert_eq!(mode, "wal");
    configure(&conn)?;
    Ok(conn)
}

/// A raw read-only connection (what the store gives a dashboard for its reads).
pub fn raw_open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    Ok(conn)
}

/// The raw baseline of `Board::claim_task`: the same statements, through the same rusqlite
/// calls, in one `BEGIN IMMEDIATE` transaction (see `store/src/txn.rs`): compare-and-swap the
/// task from `ready` to `running`, insert its run, point the task at the run, insert the
/// `claimed` event. Returns `(task, run)`, or `None` when the task was not ready.
pub fn raw_claim_task(
    conn: &mut Connection,
    task: TaskId,
    worker: &str,
) -> rusqlite::Result<Option<(TaskId, RunId)>> {
    let now = SystemClock.now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let swapped = tx.execute(
        "UPDATE tasks SET status = 'running', updated_at = ?2
         WHERE id = ?1 AND status = 'ready'",
        params![task, now],
    )?;
    let mut claim = None;
    if swapped == 1 {
        tx.execute(
            "INSERT INTO task_runs (task_id, worker, status, started_at, heartbeat_at)
             VALUES (?1, ?2, 'running', ?3, ?3)",
            params![task, worker, now],
        )?;
        let run_id = RunId::from(tx.last_insert_rowid());
        tx.execute(
            "UPDATE tasks SET current_run_id = ?2 WHERE id = ?1",
            params![task, run_id],
        )?;
        tx.execute(
            "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![task, run_id, "claimed", worker, now],
        )?;
        claim = Some((task, run_id));
    } else {
        // The store looks the task up to tell "not ready" from "no such task".
        tx.query_row("SELECT status FROM tasks WHERE id = ?1", [task], |r| {
            r.get::<_, String>(0)
        })?;
    }
    tx.commit()?;
    Ok(claim)
}

/// The body of the comments the `multi_process` writers post (64 bytes, varying by task).
pub fn comment_body(task: TaskId) -> String {
    filler(64, task.get().unsigned_abs())
}

/// The raw baseline of `Board::comment`: the same statements, through the same rusqlite
/// calls, in one `BEGIN IMMEDIATE` transaction (see `store/src/txn.rs`): look the task up
/// (the store's cached `task_status` statement), insert the comment, insert the `commented`
/// event. Returns the comment's id, or `None` when there is no such task.
pub fn raw_comment(
    conn: &mut Connection,
    task: TaskId,
    author: &str,
    body: &str,
) -> rusqlite::Result<Option<i64>> {
    let now = SystemClock.now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM tasks WHERE id = ?1")?
        .query_row([task], |r| r.get(0))
        .optional()?;
    if status.is_none() {
        return Ok(None); // rolled back on drop, as the store's error rolls back
    }
    tx.execute(
        "INSERT INTO task_comments (task_id, author, body, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![task, author, body, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![task, None::<i64>, "commented", author, now],
    )?;
    tx.commit()?;
    Ok(Some(id))
}

/// The raw baseline of `Board::events_since`: the same statement (cached, as the store
/// caches it) mapped into the same [`Event`] values.
pub fn raw_events_since(
    conn: &Connection,
    cursor: EventId,
    limit: u32,
) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, task_id, run_id, kind, payload, created_at FROM task_events
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    stmt.query_map(params![cursor, limit], |r| {
        Ok(Event {
            id: r.get(0)?,
            task_id: r.get(1)?,
            run_id: r.get(2)?,
            kind: r.get(3)?,
            payload: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?
    .collect()
}

/// The highest event id on the board (0 when there are none).
pub fn last_event_id(conn: &Connection) -> rusqlite::Result<EventId> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM task_events", [], |r| {
        r.get(0)
    })
}

/// Untimed setup of the write benchmarks: `n` claimable (`ready`) tasks, in one
/// transaction; returns their ids (consecutive).
pub fn add_ready_tasks(conn: &mut Connection, n: u64) -> rusqlite::Result<Vec<TaskId>> {
    add_tasks(conn, n, "ready")
}

/// Untimed setup: `n` tasks in `status`, in one transaction; returns their ids (consecutive).
pub fn add_tasks(conn: &mut Connection, n: u64, status: &str) -> rusqlite::Result<Vec<TaskId>> {
    let now = SystemClock.now_ms();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO tasks (title, body, status, priority, created_at, updated_at)
             VALUES ('bench', '', ?2, 0, ?1, ?1)",
        )?;
        for _ in 0..n {
            insert.execute(params![now, status])?;
            ids.push(TaskId::from(tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// The highest comment and event ids on a board: what [`retire_since`] goes back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The last comment's id (0 when there are none).
    pub comment: i64,
    /// The last event's id (0 when there are none).
    pub event: EventId,
}

/// The board's [`Mark`] now.
pub fn mark(conn: &Connection) -> rusqlite::Result<Mark> {
    Ok(Mark {
        comment: conn.query_row("SELECT coalesce(max(id), 0) FROM task_comments", [], |r| {
            r.get(0)
        })?,
        event: last_event_id(conn)?,
    })
}

/// Untimed clean-up of the `multi_process` benchmark: removes every comment and event newer
/// than `mark` (so the board stays the same size however many iterations ran), then
/// truncates the WAL.
pub fn retire_since(conn: &mut Connection, mark: Mark) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM task_comments WHERE id > ?1", [mark.comment])?;
    tx.execute("DELETE FROM task_events WHERE id > ?1", [mark.event])?;
    tx.commit()?;
    truncate_wal(conn)
}

/// Untimed clean-up of the write benchmarks: removes every claimed task with its run and
/// events (so the board stays the same size however many iterations ran), then truncates
/// the WAL (no role checkpoints automatically, so nothing else would).
pub fn retire_claimed(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "DELETE FROM task_events WHERE run_id IN (SELECT id FROM task_runs WHERE status = 'running');
         UPDATE tasks SET current_run_id = NULL WHERE status = 'running';
         DELETE FROM task_runs WHERE status = 'running';
         DELETE FROM tasks WHERE status = 'running';",
    )?;
    tx.commit()?;
    truncate_wal(conn)
}

/// Copies every WAL frame into the database and truncates the WAL (needs no reader active).
pub fn truncate_wal(conn: &Connection) -> rusqlite::Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    assert_eq!(busy, 0, "a TRUNCATE checkpoint with no reader active");
    Ok(())
}

/// Which implementation a `bench-worker` child uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Hand-written rusqlite ([`raw_open`], [`raw_comment`], [`raw_events_since`]).
    Raw,
    /// The hardened store (`Board`): every writer writes the file itself.
    Hardened,
    /// The hardened store in single-writer mode: a gateway process serves the writes
    /// ([`Part::Gateway`]), the writers are dashboards whose writes go to it over the
    /// board's socket.
    SingleWriter,
}

impl Flavor {
    /// The name on the `bench-worker` command line (and the bench id).
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Raw => "raw",
            Flavor::Hardened => "hardened",
            Flavor::SingleWriter => "single_writer",
        }
    }

    fn parse(s: &str) -> Option<Flavor> {
        [Flavor::Raw, Flavor::Hardened, Flavor::SingleWriter]
            .into_iter()
            .find(|f| f.name() == s)
    }

    /// The store configuration of a `role` session of this flavour.
    fn config(self, role: Role) -> StoreConfig {
        StoreConfig::new(role).single_writer(self == Flavor::SingleWriter)
    }
}

/// What a `bench-worker` child does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `count` comment transactions, one on each of tasks `first..first + count`, authored
    /// `NAME`, body [`comment_body`] (`Role::Worker`; `Role::Dashboard` in single-writer
    /// mode, so that its writes are forwarded).
    Writer,
    /// `count` polls of the event log, 100 events at most each, from cursor `first` on,
    /// moving its cursor like a websocket poller (a dashboard process, `Role::Dashboard`).
    Reader,
    /// Single-writer mode only: the gateway (`Role::Gateway`). Opens its session, binds the
    /// board's [`WriteServer`], prints `ready`, then serves (non-blocking `serve`, a pause
    /// of [`SERVE_PAUSE`] when nothing was waiting) until its standard input is closed;
    /// prints `served N` (requests answered) and exits. `FIRST` and `COUNT` are unused.
    Gateway,
}

impl Part {
    /// The name on the `bench-worker` command line.
    pub fn name(self) -> &'static str {
        match self {
            Part::Writer => "writer",
            Part::Reader => "reader",
            Part::Gateway => "gateway",
        }
    }

    fn parse(s: &str) -> Option<Part> {
        [Part::Writer, Part::Reader, Part::Gateway]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// Events a reader asks for per poll.
pub const POLL_LIMIT: u32 = 100;

/// How long the single-writer gateway pauses when no request was waiting.
pub const SERVE_PAUSE: Duration = Duration::from_micros(50);

/// The `bench-worker` child: `bench-worker FLAVOR PART DB FIRST COUNT NAME` (see [`Part`]).
/// Opens its session, does its `COUNT` operations, closes; returns a message on any error
/// (a comment that finds no task is one: the parent made them).
pub fn worker_main(args: &[String]) -> Result<(), String> {
    let [flavor, part, db, first, count, name] = args else {
        return Err(format!(
            "usage: bench-worker raw|hardened|single_writer writer|reader|gateway DB FIRST COUNT NAME (got {args:?})"
        ));
    };
    let flavor = Flavor::parse(flavor).ok_or_else(|| format!("unknown flavor {flavor:?}"))?;
    let part = Part::parse(part).ok_or_else(|| format!("unknown part {part:?}"))?;
    let first: i64 = first.parse().map_err(|e| format!("FIRST {first:?}: {e}"))?;
    let count: i64 = count.parse().map_err(|e| format!("COUNT {count:?}: {e}"))?;
    let db = Path::new(db);
    let no_task = |task| format!("{name}: task {task} does not exist");
    let tasks = (first..first + count).map(TaskId::from);
    let err = |e: kanban_store::Error| e.to_string();
    match (flavor, part) {
        (Flavor::Raw, Part::Writer) => {
            let mut conn = raw_open(db).map_err(|e| e.to_string())?;
            for task in tasks {
                raw_comment(&mut conn, task, name, &comment_body(task))
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| no_task(task))?;
            }
        }
        (Flavor::Raw, Part::Reader) => {
            let conn = raw_open_read_only(db).map_err(|e| e.to_string())?;
            let mut cursor = EventId::from(first);
            for _ in 0..count {
                let events =
                    raw_events_since(&conn, cursor, POLL_LIMIT).map_err(|e| e.to_string())?;
                cursor = events.last().map_or(cursor, |e| e.id);
            }
        }
        (Flavor::Hardened | Flavor::SingleWriter, Part::Writer) => {
            let role = match flavor {
                Flavor::SingleWriter => Role::Dashboard,
                _ => Role::Worker,
            };
            let mut board = Board::open_with(db, flavor.config(role)).map_err(err)?;
            for task in tasks {
                board
                    .comment(task, name, &comment_body(task))
                    .map_err(err)?;
            }
        }
        (Flavor::Hardened | Flavor::SingleWriter, Part::Reader) => {
            let mut board = Board::open_with(db, flavor.config(Role::Dashboard)).map_err(err)?;
            let mut cursor = EventId::from(first);
            for _ in 0..count {
                let events = board.events_since(cursor, POLL_LIMIT).map_err(err)?;
                cursor = events.last().map_or(cursor, |e| e.id);
            }
        }
        (Flavor::SingleWriter, Part::Gateway) => {
            let served = gateway(db, flavor.config(Role::Gateway))?;
            println!("served {served}");
        }
        (_, Part::Gateway) => {
            return Err(format!(
                "a gateway is for {} only",
                Flavor::SingleWriter.name()
            ));
        }
    }
    Ok(())
}

/// The single-writer gateway of [`Part::Gateway`]; returns how many requests it answered.
fn gateway(db: &Path, cfg: StoreConfig) -> Result<usize, String> {
    let mut board = Board::open_with(db, cfg).map_err(|e| e.to_string())?;
    let server = WriteServer::bind(&mut board).map_err(|e| e.to_string())?;
    // Told to stop by the end of standard input (the parent closes its end, or dies); a
    // thread blocks on it so that the serving loop never does.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().lock().read_to_end(&mut sink);
        flag.store(true, Ordering::Release);
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .map_err(|e| format!("telling the parent: {e}"))?;
    drop(out);
    let mut served = 0;
    while !stop.load(Ordering::Acquire) {
        let n = server.serve(&mut board).map_err(|e| e.to_string())?;
        served += n;
        if n == 0 {
            std::thread::sleep(SERVE_PAUSE);
        }
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_claim_matches_the_store() {
        // The baseline must do the same work as the store: same rows, same events.
        let dir = scratch("kanban-bench-test-");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let mut ids = Vec::new();
        for db in [&a, &b] {
            build_board(db, 0);
            let mut conn = raw_open(db).unwrap();
            ids = add_ready_tasks(&mut conn, 3).unwrap();
        }
        let mut raw = raw_open(&a).unwrap();
        let mut board = Board::open(&b, Role::Worker).unwrap();
        for &task in &ids {
            let r = raw_claim_task(&mut raw, task, "w").unwrap().unwrap();
            let s = board.claim_task(task, "w").unwrap().unwrap();
            assert_eq!(r, (s.task_id, s.run_id));
        }
        assert_eq!(raw_claim_task(&mut raw, ids[0], "w").unwrap(), None);
        assert_eq!(board.claim_task(ids[0], "w").unwrap(), None);
        let tail = EventId::from(last_event_id(&raw).unwrap().get() - 10);
        let mut from_raw = raw_events_since(&raw, tail, 10).unwrap();
        let mut from_store = board.events_since(tail, 10).unwrap();
        for e in from_raw.iter_mut().chain(from_store.iter_mut()) {
            e.created_at = 0;
        }
        assert_eq!(from_raw, from_store);
        retire_claimed(&mut raw).unwrap();
        let running: i64 = raw
            .query_row(
                "SELECT count(*) FROM tasks WHERE status = 'running'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(running, 0);
    }

    #[test]
    fn raw_comment_matches_the_store() {
        // The multi_process writers' baseline: same rows, same events, same clean-up.
        let dir = scratch("kanban-bench-test-");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let mut ids = Vec::new();
        let mut marks = Vec::new();
        for db in [&a, &b] {
            build_board(db, 0);
            let mut conn = raw_open(db).unwrap();
            ids = add_tasks(&mut conn, 3, "todo").unwrap();
            marks.push(mark(&conn).unwrap());
        }
        assert_eq!(marks[0], marks[1]);
        let mut raw = raw_open(&a).unwrap();
        let mut board = Board::open(&b, Role::Worker).unwrap();
        for &task in &ids {
            let body = comment_body(task);
            let r = raw_comment(&mut raw, task, "w", &body).unwrap().unwrap();
            let s = board.comment(task, "w", &body).unwrap();
            assert_eq!(r, s);
        }
        let nowhere = TaskId::from(ids[2].get() + 1);
        assert_eq!(raw_comment(&mut raw, nowhere, "w", "x").unwrap(), None);
        assert!(board.comment(nowhere, "w", "x").is_err());
        let comments = |conn: &Connection| -> Vec<(i64, i64, String, String)> {
            conn.prepare("SELECT id, task_id, author, body FROM task_comments ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let store_conn = raw_open(&b).unwrap();
        assert_eq!(comments(&raw), comments(&store_conn));
        let tail = marks[0].event;
        let mut from_raw = raw_events_since(&raw, tail, 10).unwrap();
        let mut from_store = board.events_since(tail, 10).unwrap();
        assert_eq!(from_raw.len(), 3);
        for e in from_raw.iter_mut().chain(from_store.iter_mut()) {
            e.created_at = 0;
        }
        assert_eq!(from_raw, from_store);
        drop(board);
        retire_since(&mut raw, marks[0]).unwrap();
        assert_eq!(mark(&raw).unwrap(), marks[0]);
    }
}
