//! [`Board`]: one process's session on one board.
//!
//! A `Board` holds one read-write connection, and (for dashboards) a read-only one, for as
//! long as it lives, and the shared session lock during each operation (see
//! [`crate::generation`]). Writes go through
//! [`Board::transaction`] (`BEGIN IMMEDIATE`, R5); reads are single statements. Everything
//! a caller may want to know about the file itself (checks, info, checkpoints, quarantine)
//! is an explicit call, never a side effect of opening or of an ordinary operation.
//!
//! Layer: the facade (the layer order is in `store/ARCHITECTURE.md`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rusqlite::{Connection, TransactionBehavior};

use crate::check::{self, CheckLevel, CheckReport};
use crate::config::{Phase, Role, StoreConfig, in_phase};
use crate::damage_policy::OnDamage;
use crate::error::{Error, Result, SqlResultExt};
use crate::generation::{Pool, Sessions};
use crate::info::BoardInfo;
use crate::open::{self, Access, Intent, Session};
use crate::place;
use crate::policy::StartCheck;
use crate::quarantine;
use crate::reads;
use crate::repair;
use crate::requests::{self, RequestId, Write};
use crate::seam::Hooks;
use crate::txn::Txn;
use crate::types::{
    CheckpointReport, Claim, Event, EventId, NewTask, Quarantined, RunId, RunOutcome, Task, TaskId,
    TaskStatus,
};
use crate::wal_size::WalStat;

/// How often a transaction is restarted after `SQLITE_BUSY_SNAPSHOT` before giving up.
const SNAPSHOT_RETRIES: u32 = 5;

/// A session on one board.
///
/// `Board` is `Send` (checked at compile time below): a session may move to another thread,
/// for example into a worker thread or a task of a multi-threaded runtime. It is not
/// `Sync`: its connections are used by one thread at a time. `rusqlite::Connection` is
/// `!Sync`, and the pool's backend keeps the open's intent in a `Cell` (`Sessions::intent`,
/// in `generation.rs`), so sharing a `&Board` across threads does not compile. Every
/// operation takes `&mut self`; a process that wants several threads on one board opens a
/// `Board` per thread (each is its own session under the shared lock) or puts one behind a
/// `Mutex`.
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<kanban_store::Board>();
/// ```
pub struct Board {
    pool: Pool<Sessions>,
    path: PathBuf,
    config: StoreConfig,
    pid: u32,
    /// The `-wal` file right after this session's last complete checkpoint.
    wal_checkpointed: Option<WalStat>,
    /// The WAL hook's last count as `checkpoint_if_due` saw it, and the `-wal` file's stat
    /// when it first saw that count: while the file is still as it was then, the hook's
    /// count is the WAL's (nobody wrote since this session's commit), not the file's size.
    wal_hooked: (i64, Option<WalStat>),
}

/// `Board: Send`, asserted where it is defined, so a field that is not `Send` fails the build
/// here rather than in a caller.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<Board>();
};

impl Board {
    /// Opens the board at `path` in `role`, with default settings.
    pub fn open(path: impl AsRef<Path>, role: Role) -> Result<Board> {
        Board::open_with(path, StoreConfig::new(role))
    }

    /// Opens the board at `path` with `config`.
    pub fn open_with(path: impl AsRef<Path>, config: StoreConfig) -> Result<Board> {
        Board::start(path.as_ref(), config, Intent::Session)
    }

    /// Creates a new, empty board; refuses if anything exists at `path`.
    pub fn create(path: impl AsRef<Path>, config: StoreConfig) -> Result<Board> {
        Board::start(path.as_ref(), config, Intent::CreateNew)
    }

    /// Opens the board read-only, without any maintenance: for `info` and `check`, which
    /// must never change the file. An older schema or a rollback journal is reported as is.
    pub fn inspect(path: impl AsRef<Path>) -> Result<Board> {
        Board::start(
            path.as_ref(),
            StoreConfig::new(Role::Dashboard),
            Intent::Inspect,
        )
    }

    /// [`Board::inspect`] for a repair run with `cfg`: the same look, with `cfg`'s
    /// network file system opt-in, and a board that `cfg`'s `hard-link-alias` hazard gave a
    /// second name is not refused for it.
    pub(crate) fn inspect_for(path: &Path, cfg: &StoreConfig) -> Result<Board> {
        let mut look = StoreConfig::new(Role::Dashboard);
        look.allow_network_fs = cfg.allow_network_fs;
        cfg.hooks().for_inspection(&mut look);
        Board::start(path, look, Intent::Inspect)
    }

    fn start(given: &Path, config: StoreConfig, intent: Intent) -> Result<Board> {
        let path = &place::board(given, &config)?;
        // Before `Sessions` makes the lock file: a refused path keeps its folder as it was.
        open::refuse_early(path, &config, intent)?;
        let mut pool = Pool::new(Sessions::new(path, config.clone(), intent)?);
        if let Err(e) = pool.with(|_| ()) {
            if e.is_no_board() {
                // A lock file this open created beside what is no board goes too, so the
                // folder is left as it was. No session can be using it: every open of this
                // path is refused the same way (a file being replaced under a running open
                // is the one exception, and that is no board either until it is complete).
                pool.backend().remove_created_lock();
            }
            return Err(e);
        }
        Ok(Board {
            pool,
            path: path.to_path_buf(),
            config,
            pid: std::process::id(),
            wal_checkpointed: None,
            wal_hooked: (0, None),
        })
    }

    /// The board's canonical path (its folder canonicalized, a symlink followed; see
    /// `place.rs`): the name its siblings are derived from and its errors give, which
    /// may differ from the path the caller gave.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This session's role.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// This session's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction and commits; any error rolls back.
    ///
    /// `f` may run again if SQLite reports `SQLITE_BUSY_SNAPSHOT`, so it must not have
    /// effects outside the transaction.
    ///
    /// Two tasks and the link between them commit together, or not at all:
    ///
    /// ```
    /// use kanban_store::{Board, NewTask, Role, StoreConfig, TaskStatus};
    ///
    /// # fn main() -> kanban_store::Result<()> {
    /// let dir = tempfile::tempdir().expect("a temporary folder");
    /// let cfg = StoreConfig::new(Role::Gateway).creating();
    /// let mut board = Board::open_with(dir.path().join("kanban.db"), cfg)?;
    /// let new = |title: &str| NewTask { title: title.into(), ..NewTask::default() };
    ///
    /// let (parent, child) = board.transaction(|t| {
    ///     let parent = t.create_task(&new("design"))?;
    ///     let child = t.create_task(&new("build"))?;
    ///     t.link(parent, child)?;
    ///     t.recompute_ready()?;
    ///     Ok((parent, child))
    /// })?;
    /// assert_eq!(board.get_task(parent)?.map(|t| t.status), Some(TaskStatus::Ready));
    /// assert_eq!(board.get_task(child)?.map(|t| t.status), Some(TaskStatus::Todo));
    ///
    /// // An error inside rolls everything back.
    /// let failed = board.transaction(|t| {
    ///     t.create_task(&new("never stored"))?;
    ///     t.link(parent, 999_999.into())
    /// });
    /// assert!(failed.is_err());
    /// assert_eq!(board.list_board()?.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<T>(&mut self, mut f: impl FnMut(&Txn<'_>) -> Result<T>) -> Result<T> {
        if self.forwards() {
            return Err(Error::WrongRole {
                path: self.path.clone(),
                role: self.config.role,
                operation: "a transaction of its own in single-writer mode (the write methods go to the gateway)",
            });
        }
        let now = self.config.clock.now_ms();
        let config = self.config.clone();
        let hooks = config.hooks();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened_by = self.pid;
            let result = self.with_conn(|conn, path| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(Attempt::Sql)?;
                let guard = || same_process(opened_by, path, hooks);
                let value = f(&Txn {
                    tx: &tx,
                    path,
                    now,
                    guard: &guard,
                    events: Default::default(),
                });
                if let Err(e) = guard() {
                    // Forked inside the transaction: the copy of it in this child must not
                    // commit, nor roll back, through a connection whose locks are the
                    // parent's. Leave it alone; the child cannot use this session any more.
                    std::mem::forget(tx);
                    return Err(Attempt::Store(e));
                }
                let value = value.map_err(Attempt::Store)?;
                config
                    .in_phase(Phase::Commit, || tx.commit())
                    .map_err(Attempt::Sql)?;
                hooks.after_commit(path);
                Ok(value)
            });
            match result {
                Ok(v) => return Ok(v),
                Err(Attempt::Sql(e)) if is_busy_snapshot(&e) && attempt < SNAPSHOT_RETRIES => {}
                Err(Attempt::Sql(e)) => return Err(self.write_failed(e, hooks)),
                Err(Attempt::Store(err)) => return Err(err),
            }
        }
    }

    /// The error of a transaction SQLite refused for good (`SQLITE_BUSY` says how long it
    /// waited), after the hooks' reaction to it, if any, on the session's connection.
    fn write_failed(&mut self, e: rusqlite::Error, hooks: &dyn Hooks) -> Error {
        let err = match Error::sqlite(&self.path, e) {
            Error::Busy { path, what, .. } => Error::Busy {
                path,
                what,
                waited_ms: crate::millis::u64_ms(self.config.busy_timeout),
            },
            other => other,
        };
        if let Some(fallback) = hooks.on_write_error(&err) {
            let _ = self.with_conn(|conn, _| {
                fallback(conn);
                Ok::<(), Error>(())
            });
        }
        err
    }

    /// Creates a task.
    pub fn create_task(&mut self, task: &NewTask) -> Result<TaskId> {
        self.submit_new(Write::CreateTask(task.clone())).map(TaskId)
    }

    /// Changes a task's title, body and priority; returns the `updated` event's id.
    pub fn update_task(
        &mut self,
        id: TaskId,
        title: &str,
        body: &str,
        priority: i64,
    ) -> Result<EventId> {
        self.submit_new(Write::UpdateTask {
            id,
            title: title.into(),
            body: body.into(),
            priority,
        })
        .map(EventId)
    }

    /// A user moves a task (not into or out of `running`); returns the `moved` event's id.
    pub fn move_task(&mut self, id: TaskId, to: TaskStatus) -> Result<EventId> {
        self.submit_new(Write::MoveTask { id, to }).map(EventId)
    }

    /// Makes `child` depend on `parent`; returns the `linked` event's id.
    pub fn link(&mut self, parent: TaskId, child: TaskId) -> Result<EventId> {
        self.submit_new(Write::Link { parent, child }).map(EventId)
    }

    /// Adds a comment.
    pub fn comment(&mut self, task: TaskId, author: &str, body: &str) -> Result<i64> {
        self.submit_new(Write::Comment {
            task,
            author: author.into(),
            body: body.into(),
        })
    }

    /// Runs a user's `write` at most once per `id`, whatever the mode: a dashboard in
    /// single-writer mode sends it to the gateway with its id (whose
    /// [`crate::WriteServer`] calls this), every other session applies it in
    /// one transaction that also records the id. An id already applied is answered with
    /// its first answer (the recorded value) and not applied again; the same id with
    /// another write is [`Error::RequestIdReused`]. So a retry of an [`Error::Unavailable`]
    /// (or of any error) with the same id is always safe. The board keeps the newest
    /// [`requests::KEPT_REQUEST_IDS`] ids.
    pub fn submit(&mut self, id: RequestId, write: &Write) -> Result<i64> {
        if self.forwards() {
            self.check_process()?;
            return requests::forward(&self.path, &self.config, id, write);
        }
        if !self.config.hooks().records_request_ids() {
            return self.transaction(|t| write.apply(t));
        }
        let digest = requests::digest(write);
        self.transaction(|t| match requests::recorded(t, id, &digest)? {
            Some(first) => Ok(first),
            None => {
                let value = write.apply(t)?;
                requests::record(t, id, &digest, value)?;
                Ok(value)
            }
        })
    }

    /// The write methods' path: forwarded under a fresh id, or applied here without
    /// recording one (an id no caller knows can never be retried, and a random one written
    /// into the board would make two runs of one deterministic seed differ).
    fn submit_new(&mut self, write: Write) -> Result<i64> {
        if self.forwards() {
            return self.submit(RequestId::random(), &write);
        }
        self.transaction(|t| write.apply(t))
    }

    /// Whether this board holds the gateway lock (a gateway's, for its whole life,
    /// repairs included).
    pub(crate) fn holds_gateway(&mut self) -> Result<bool> {
        self.check_process()?;
        Ok(self.pool.backend().holds_gateway())
    }

    /// Whether this session's writes go to the gateway (single-writer mode, dashboards).
    fn forwards(&self) -> bool {
        self.config.single_writer && self.config.role == Role::Dashboard
    }

    /// Promotes waiting tasks whose parents are done.
    pub fn recompute_ready(&mut self) -> Result<Vec<TaskId>> {
        self.transaction(|t| t.recompute_ready())
    }

    /// Claims `task` for `worker` if it is ready (one compare-and-swap transaction).
    pub fn claim_task(&mut self, task: TaskId, worker: &str) -> Result<Option<Claim>> {
        self.transaction(|t| t.claim_task(task, worker))
    }

    /// Claims the best ready task, if any.
    pub fn claim_next(&mut self, worker: &str) -> Result<Option<Claim>> {
        self.transaction(|t| t.claim_next(worker))
    }

    /// Records a heartbeat for a running run; returns its heartbeat time now (see
    /// [`Txn::heartbeat`]).
    pub fn heartbeat(&mut self, run: RunId) -> Result<i64> {
        self.transaction(|t| t.heartbeat(run))
    }

    /// Ends a running run.
    pub fn end_run(&mut self, run: RunId, outcome: RunOutcome, result: &str) -> Result<TaskId> {
        self.transaction(|t| t.end_run(run, outcome, result))
    }

    /// Times out runs without a heartbeat for `max_age_ms`.
    pub fn expire_runs(&mut self, max_age_ms: i64) -> Result<Vec<RunId>> {
        self.transaction(|t| t.expire_runs(max_age_ms))
    }

    /// Moves a notifier cursor forward (never backwards, never past the last event).
    pub fn advance_cursor(&mut self, name: &str, to: EventId) -> Result<EventId> {
        self.transaction(|t| t.advance_cursor(name, to))
    }

    /// Every task.
    pub fn list_board(&mut self) -> Result<Vec<Task>> {
        self.with_reader(reads::list_board)
    }

    /// One task.
    pub fn get_task(&mut self, id: TaskId) -> Result<Option<Task>> {
        self.with_reader(|c, p| reads::get_task(c, p, id))
    }

    /// Up to `limit` events after `cursor`.
    pub fn events_since(&mut self, cursor: EventId, limit: u32) -> Result<Vec<Event>> {
        self.with_reader(|c, p| reads::events_since(c, p, cursor, limit))
    }

    /// A notifier cursor's position.
    pub fn cursor(&mut self, name: &str) -> Result<EventId> {
        self.with_reader(|c, p| reads::cursor(c, p, name))
    }

    /// An explicit integrity, foreign-key and invariant check (never run implicitly, R7).
    /// With [`StoreConfig::quarantine_on_damage`], structural damage is also copied to
    /// quarantine (capped, content-addressed) and the report says what was kept.
    ///
    /// ```
    /// use kanban_store::{Board, CheckLevel, Role, StoreConfig};
    ///
    /// # fn main() -> kanban_store::Result<()> {
    /// let dir = tempfile::tempdir().expect("a temporary folder");
    /// let db = dir.path().join("kanban.db");
    /// drop(Board::create(&db, StoreConfig::new(Role::Gateway))?);
    ///
    /// // `inspect` never changes the file; a check on it is read-only.
    /// let report = Board::inspect(&db)?.check(CheckLevel::Full)?;
    /// assert!(report.is_ok(), "a new board is healthy: {report:?}");
    /// assert_eq!(report.findings().count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn check(&mut self, level: CheckLevel) -> Result<CheckReport> {
        let (path, cfg) = (&self.path, &self.config);
        cfg.hooks().before_check(path, cfg);
        let mut report = self.with_reader(|c, _| Ok(check::run(c, level)))?;
        let (path, cfg) = (&self.path, &self.config);
        cfg.hooks().after_check(path, cfg, report.is_corrupt())?;
        if report.is_corrupt() && self.config.quarantine_on_damage {
            report.quarantined = Some(self.quarantine()?);
        }
        Ok(report)
    }

    /// The gateway's check at start-up (R7: explicit, once), then its
    /// [`StoreConfig::on_damage`] policy: by default, damage confined to indexes is repaired
    /// (`REINDEX`, nothing lost) and anything else gives [`Error::Corrupt`] so the gateway
    /// stops until an operator runs `kanban-db repair`.
    pub fn check_at_start(&mut self) -> Result<StartCheck> {
        if !self.config.role.owns_checkpoints() {
            return Err(Error::WrongRole {
                path: self.path.clone(),
                role: self.config.role,
                operation: "the start-up check (the gateway's)",
            });
        }
        let check = self.check(CheckLevel::Full)?;
        let policy = self.config.on_damage;
        match policy.reaction(&check) {
            None | Some(OnDamage::Continue) => Ok(StartCheck {
                check,
                repaired: None,
            }),
            Some(OnDamage::Stop) => Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "the gateway stops; run `kanban-db repair`: {}",
                    check.findings().next().unwrap_or_default()
                ),
            }),
            Some(OnDamage::Repair) => {
                // A rebuild only if the policy allows one for damage beyond indexes.
                let scope = match policy.other {
                    OnDamage::Repair => repair::Scope::Rebuild,
                    OnDamage::Stop | OnDamage::Continue => repair::Scope::Indexes,
                };
                match repair::repair_within(&self.path, &self.config, scope) {
                    Ok(report) => Ok(StartCheck {
                        check,
                        repaired: Some(report),
                    }),
                    // The damage grew beyond indexes before the repair had the board.
                    Err(Error::Corrupt { .. }) if policy.other == OnDamage::Continue => {
                        Ok(StartCheck {
                            check,
                            repaired: None,
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// R6: a PASSIVE checkpoint, by the owner only; the busy flag is returned, not dropped.
    pub fn checkpoint(&mut self) -> Result<CheckpointReport> {
        if !self.config.role.owns_checkpoints() {
            return Err(Error::WrongRole {
                path: self.path.clone(),
                role: self.config.role,
                operation: "checkpoint",
            });
        }
        let config = self.config.clone();
        let hooks = config.hooks();
        self.with_conn(|conn, path| {
            // `nosync-checkpoint`: OFF for the checkpoint only, the connection's own after.
            let unsynced = !hooks.syncs_checkpoints();
            if unsynced {
                conn.pragma_update(None, "synchronous", "OFF").at(path)?;
            }
            let report = config
                .in_phase(Phase::Checkpoint, || {
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok(CheckpointReport {
                            busy: r.get::<_, i64>(0)? != 0,
                            wal_frames: r.get(1)?,
                            checkpointed: r.get(2)?,
                        })
                    })
                })
                .at(path);
            if unsynced {
                conn.pragma_update(None, "synchronous", hooks.synchronous())
                    .at(path)?;
            }
            report
        })
    }

    /// Runs [`Board::checkpoint`] if the WAL has reached the configured number of frames:
    /// at this session's last commit (SQLite's WAL hook reports the whole WAL, other
    /// processes' frames included), or by the size of `-wal` when it changed since this
    /// session's last complete checkpoint (others wrote while this session wrote nothing;
    /// see the store's `wal_size` module). The gateway calls this on every dispatcher tick.
    pub fn checkpoint_if_due(&mut self) -> Result<Option<CheckpointReport>> {
        let due = i64::from(self.config.checkpoint_frames);
        let hooked = self.pool.with(|s| s.wal_frames.load(Ordering::Relaxed))?;
        let wal = WalStat::of(&self.path);
        if hooked != self.wal_hooked.0 {
            self.wal_hooked = (hooked, wal);
        }
        // The file's size bounds the frames from above (a WAL started over keeps its
        // length): used only when others wrote since this session's own last commit.
        let grown = match wal {
            Some(stat) if wal != self.wal_checkpointed && wal != self.wal_hooked.1 => {
                stat.frames(self.page_size()?) >= due
            }
            _ => false,
        };
        if hooked < due && !grown {
            return Ok(None);
        }
        let report = self.checkpoint()?;
        if report.checkpointed == report.wal_frames {
            // The next writer starts the WAL over; its commit reports the new size.
            self.pool
                .with(|s| s.wal_frames.store(0, Ordering::Relaxed))?;
            self.wal_checkpointed = WalStat::of(&self.path);
        }
        Ok(Some(report))
    }

    /// The board's page size.
    fn page_size(&mut self) -> Result<u64> {
        let size: i64 =
            self.with_conn(|c, p| c.pragma_query_value(None, "page_size", |r| r.get(0)).at(p))?;
        Ok(size.unsigned_abs())
    }

    /// Versions, journal mode, sizes.
    pub fn info(&mut self) -> Result<BoardInfo> {
        self.with_reader(crate::info::read)
    }

    /// Keeps a copy of the board (made with the backup API) in `<db>.quarantine/`, named
    /// by its content and capped at the configured number of copies: at the cap it keeps
    /// nothing ([`Quarantined::CapReached`]; only a repair makes room, see [`quarantine`]).
    pub fn quarantine(&mut self) -> Result<Quarantined> {
        let cap = self.config.quarantine_cap;
        let observer = self.config.observer.clone();
        let ns = crate::copy::Namespace::of(&self.config);
        self.with_reader(|c, p| {
            in_phase(observer.as_ref(), Phase::Quarantine, || {
                quarantine::keep(c, p, cap, quarantine::AtCap::Skip, &ns)
            })
        })
    }

    /// Writes a consistent copy of the board to `dest` (a new file) with the backup API,
    /// while other processes go on using the board: one backup step under one read
    /// transaction, so it finishes whatever they write meanwhile, and holds the board as it
    /// was when it began. The copy is written under a temporary name beside `dest` and
    /// checked; only a whole copy gets `dest`'s name, and a killed copy leaves nothing at
    /// `dest` (the store's `copy` module). Something at `dest` already: [`Error::AlreadyExists`].
    pub fn backup_to(&mut self, dest: &Path) -> Result<()> {
        let ns = crate::copy::Namespace::of(&self.config);
        self.with_reader(|c, p| crate::copy::to_new_file(c, p, dest, &ns))
    }

    /// Runs `f` on the read-only connection if there is one, else on the session's.
    fn with_reader<T>(&mut self, f: impl FnOnce(&Connection, &Path) -> Result<T>) -> Result<T> {
        self.check_process()?;
        let (path, config) = (&self.path, &self.config);
        self.pool
            .with(|session: &mut Session| match &session.reader {
                Some(reader) => f(reader, path),
                None => read_write(session, path, config, |c, p| f(c, p)),
            })?
    }

    /// Runs `f` on the read-write connection (a fresh one per call with the
    /// `connect-per-operation` hazard).
    pub(crate) fn with_conn<T, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Connection, &Path) -> Result<T, E>,
    ) -> Result<T, E> {
        self.check_process()?;
        let (path, config) = (&self.path, &self.config);
        self.pool
            .with(|session: &mut Session| read_write(session, path, config, f))?
    }

    /// Refuses a session used in a process other than the one that opened it.
    fn check_process(&self) -> Result<()> {
        same_process(self.pid, &self.path, self.config.hooks())
    }
}

/// Runs `f` on `session`'s read-write connection (the caller checked the process and
/// checked the session out, once).
fn read_write<T, E: From<Error>>(
    session: &mut Session,
    path: &Path,
    config: &StoreConfig,
    f: impl FnOnce(&mut Connection, &Path) -> Result<T, E>,
) -> Result<T, E> {
    match &mut session.conn {
        Some(conn) => f(conn, path),
        None if session.per_operation => {
            let mut conn = open::connect(path, config, Access::ReadWrite)?;
            f(&mut conn, path)
        }
        None => Err(Error::WrongRole {
            path: path.to_path_buf(),
            role: config.role,
            operation: "writing through an inspection session",
        }
        .into()),
    }
}

/// Refuses use of a session opened by process `opened_by` in any other process (a fork).
fn same_process(opened_by: u32, path: &Path, hooks: &dyn Hooks) -> Result<()> {
    if hooks.allows_use_across_fork() {
        return Ok(());
    }
    let now = std::process::id();
    if now != opened_by {
        return Err(Error::UsedAcrossFork {
            path: path.to_path_buf(),
            opened_by,
            used_by: now,
        });
    }
    Ok(())
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("path", &self.path)
            .field("role", &self.config.role)
            .finish_non_exhaustive()
    }
}

/// Why one attempt of a transaction failed.
enum Attempt {
    /// SQLite refused (maybe retryable).
    Sql(rusqlite::Error),
    /// The operation refused (never retried).
    Store(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Store(e)
    }
}

fn is_busy_snapshot(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_BUSY_SNAPSHOT)
}
