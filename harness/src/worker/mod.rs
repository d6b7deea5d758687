//! Worker processes: what runs in each forked child.
//!
//! The supervisor forks; the child calls [`child_main`] and never returns into the
//! supervisor's code: the worker loop runs inside `catch_unwind`, and whatever happens the
//! child ends with `_exit` and one of the exit codes below. A SIGTERM from the supervisor
//! asks the loop to stop between operations; SIGKILL (a fault) stops it anywhere.
//!
//! Each kind lives in its own module and is built from the same parts:
//! - `Ledgered`, which wraps every write in an intent/ack pair in the worker's ledger,
//!   and records what the worker's readers observed;
//! - `Pace`, the seeded timing of the worker's in-process actors (dispatcher, notifier,
//!   pollers...), each with its own connection, interleaved in one thread;
//! - `Overlap`, the upstream in-process overlap: at each step inside a write transaction,
//!   another connection of the same process may connect and read.
//!
//! Everything random comes from the worker's seed, so the I/O shim and the deterministic
//! scheduler of later issues can drive the same loops.

mod agent;
mod dashboard;
mod flooder;
mod gateway;
mod repairer;

use std::fs::File;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kanban_store::{
    Board, DamagePolicy, Error as StoreError, EventId, Phase, RequestId, Role, StoreConfig,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alarm;
use crate::exit::{EXIT_OK, EXIT_PANIC, EXIT_SETUP};
use crate::fault::{ErrorKind, IoFault};
use crate::ledger::{self, Mark, Op, Record, Tally};
use crate::plan::{PhaseKillPlan, incarnation_seed};
use crate::scenario::{Variant, WorkerKind, WorkerSpec};
use crate::shim;
use crate::token;

/// Set by SIGTERM: finish the current operation and exit.
static STOP: AtomicBool = AtomicBool::new(false);

/// Everything a forked worker needs to know.
#[derive(Clone, Debug)]
pub struct WorkerEnv {
    /// The board.
    pub db: PathBuf,
    /// This worker's binary ledger.
    pub ledger: PathBuf,
    /// Its index among the scenario's processes.
    pub index: usize,
    /// Which start this is (0 first).
    pub incarnation: u32,
    /// The worker's seed (before mixing in the incarnation).
    pub seed: u64,
    /// Its spec from the scenario.
    pub spec: WorkerSpec,
    /// The store variant.
    pub variant: Variant,
    /// Planned kills inside store phases (each until it lands).
    pub phase_kills: Vec<PhaseKillPlan>,
    /// Planned faults at exact points of file I/O (until each lands).
    pub io_faults: Vec<IoFault>,
    /// Run on the I/O shim (always when there are I/O faults).
    pub shim: bool,
    /// Record every change to the board's files in the page-cache model (power cuts); on
    /// the shim.
    pub power: bool,
    /// Single-writer mode (dashboards' writes go to the gateway).
    pub single_writer: bool,
    /// Where faults are noted: `a<id>` when a phase kill is armed, `p<id>` when it fires
    /// (right before its signal), `i<id>` when an I/O fault acts (right before it acts).
    pub landed: PathBuf,
    /// In deterministic mode, this worker's end of its socket to the supervisor (see
    /// [`crate::token`]); the worker runs only while it holds the token.
    pub token: Option<RawFd>,
}

/// Runs the worker; returns the exit code for `_exit`. Call only in a freshly forked child.
pub fn child_main(env: &WorkerEnv) -> i32 {
    if let Some(fd) = env.token {
        // Before anything else: nothing runs without the token.
        token::connect(fd, incarnation_seed(env.seed, env.incarnation));
    }
    install_signal_handlers();
    match std::panic::catch_unwind(|| run(env)) {
        Ok(Ok(())) => EXIT_OK,
        Ok(Err(message)) => {
            eprintln!("worker {} setup failed: {message}", env.index);
            EXIT_SETUP
        }
        Err(_) => EXIT_PANIC,
    }
}

fn run(env: &WorkerEnv) -> Result<(), String> {
    let ledger = ledger::Writer::open(&env.ledger).map_err(|e| e.to_string())?;
    let landed = || {
        File::options()
            .create(true)
            .append(true)
            .open(&env.landed)
            .map_err(|e| format!("{}: {e}", env.landed.display()))
    };
    // Under the token every file operation is a scheduling point: the shim is always on.
    let shim = env.shim || env.power || !env.io_faults.is_empty() || token::connected();
    if shim {
        let power = env.power.then(|| env.db.parent().unwrap_or(Path::new(".")));
        shim::install(env.io_faults.clone(), Some(landed()?), power).map_err(|e| e.to_string())?;
    }
    alarm::install(&env.phase_kills, landed()?);
    if token::connected() {
        // SQLite's generator state came with the fork from the supervisor, whose history
        // differs from run to run: reseed it from the shim's seeded xRandomness.
        // SAFETY: documented use: a NULL buffer resets the generator.
        unsafe { rusqlite::ffi::sqlite3_randomness(0, std::ptr::null_mut()) };
    }
    let mut ctx = Ledgered {
        ledger,
        worker: u16::try_from(env.index).unwrap_or(u16::MAX),
        incarnation: env.incarnation,
        seq: 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(incarnation_seed(env.seed, env.incarnation));
    let make = Sessions {
        db: env.db.clone(),
        config: store_config(env, shim),
    };
    let result = match env.spec.kind {
        WorkerKind::Gateway => gateway::run(&make, &env.spec, &mut ctx, &mut rng),
        WorkerKind::Dashboard => dashboard::run(&make, &env.spec, &mut ctx, &mut rng),
        WorkerKind::Agent => agent::run(&make, &env.spec, &mut ctx, &mut rng),
        WorkerKind::Repairer => repairer::run(&make, &env.spec, &mut ctx, &mut rng),
        WorkerKind::Flooder => flooder::run(&make, &env.spec, &mut ctx, &mut rng),
        WorkerKind::Command => unreachable!("command workers are exec'd, not forked"),
    };
    if shim {
        // For `replay`: what the shim saw, per phase, file kind and operation.
        for ((phase, file, op), n) in shim::counts() {
            eprintln!("shim: {phase:?} {file:?} {op:?} {n}");
        }
    }
    result.map_err(|e| {
        ctx.error(Op::Open, &e);
        e.to_string()
    })
}

/// The store configuration of a worker: its variant's hazards, short timeouts (a stalled
/// peer must turn into a typed `Busy`, not a hang), and an observer of the store's phases
/// that feeds the I/O shim and arms the planned phase kills ([`alarm`]).
fn store_config(env: &WorkerEnv, shim: bool) -> StoreConfig {
    let mut cfg = StoreConfig::new(Role::Worker)
        .busy_timeout(Duration::from_millis(500))
        .lock_timeout(Duration::from_millis(500))
        .checkpoint_frames(64)
        .hazards(env.variant.hazards())
        .quarantine_on_damage(true)
        .single_writer(env.single_writer)
        .on_damage(on_damage(env));
    if token::connected() {
        cfg = cfg.clock(Arc::new(token::LogicalClock));
    }
    if env.power {
        cfg = cfg.files_observer(Arc::new(shim::store_file_change));
    }
    let kills = !env.phase_kills.is_empty();
    if !kills && !shim {
        return cfg;
    }
    cfg.observer(Arc::new(move |phase: Phase, entering: bool| {
        if shim {
            shim::store_phase(phase, entering);
        }
        if kills {
            alarm::phase(phase, entering);
        }
    }))
}

/// The gateway's damage policy: the scenario's, else its variant's.
fn on_damage(env: &WorkerEnv) -> DamagePolicy {
    let base = env.variant.damage_policy();
    DamagePolicy {
        index_only: env.spec.on_index_damage.unwrap_or(base.index_only),
        other: env.spec.on_other_damage.unwrap_or(base.other),
    }
}

/// Opens sessions of one worker process, each a separate connection.
pub(crate) struct Sessions {
    db: PathBuf,
    config: StoreConfig,
}

impl Sessions {
    /// A new session in `role`.
    pub(crate) fn open(&self, role: Role) -> Result<Board, StoreError> {
        Board::open_with(&self.db, self.config.clone().role(role))
    }

    /// The board and the store configuration (for maintenance calls: repairs).
    pub(crate) fn parts(&self) -> (&std::path::Path, &StoreConfig) {
        (&self.db, &self.config)
    }

    /// A second long-lived session in `role` when the worker uses several connections.
    pub(crate) fn second(
        &self,
        spec: &WorkerSpec,
        role: Role,
    ) -> Result<Option<Board>, StoreError> {
        match spec.connections {
            1 => Ok(None),
            _ => self.open(role).map(Some),
        }
    }

    /// The in-transaction overlap of `spec`, connecting in `role`.
    pub(crate) fn overlap(&self, spec: &WorkerSpec, role: Role) -> Overlap<'_> {
        Overlap {
            sessions: self,
            chance: spec.overlap,
            check: spec.overlap_check,
            role,
        }
    }
}

/// Wraps writes in ledger records.
pub(crate) struct Ledgered {
    ledger: ledger::Writer,
    worker: u16,
    incarnation: u32,
    seq: u64,
}

/// One effect of a committed write, as its ack records it: `(a, b)` (see [`Op`]).
pub(crate) type Effect = (i64, i64);

impl Ledgered {
    /// Runs one write: intent (with the op's arguments `args`), the write (given its
    /// token), then an ack if it had an effect. `f` returns `Ok(Some(effect))` for an
    /// effect, `Ok(None)` for none.
    pub(crate) fn write(
        &mut self,
        op: Op,
        args: (i64, i64),
        f: impl FnOnce(&str) -> Result<Option<Effect>, StoreError>,
    ) -> Option<Effect> {
        self.write_each(op, args, |token| f(token).map(|e| e.into_iter().collect()))
            .into_iter()
            .next()
    }

    /// Like [`Ledgered::write`] for a write with any number of effects: one ack each.
    pub(crate) fn write_each(
        &mut self,
        op: Op,
        args: (i64, i64),
        f: impl FnOnce(&str) -> Result<Vec<Effect>, StoreError>,
    ) -> Vec<Effect> {
        let intent = self.intent(op, args);
        match f(&intent.token()) {
            Ok(effects) => {
                for &effect in &effects {
                    self.ack(intent, effect);
                }
                effects
            }
            Err(e) => {
                self.error(op, &e);
                Vec::new()
            }
        }
    }

    /// Like [`Ledgered::write`], sending the write again (the same token, so the same
    /// request id) after every retryable error until it succeeds, fails otherwise, or the
    /// worker is asked to stop: one intent, each error recorded (and each retry tallied),
    /// an ack only after the success.
    pub(crate) fn write_retrying(
        &mut self,
        op: Op,
        args: (i64, i64),
        mut f: impl FnMut(&Record) -> Result<Option<Effect>, StoreError>,
    ) -> Option<Effect> {
        let intent = self.intent(op, args);
        loop {
            match f(&intent) {
                Ok(effect) => {
                    if let Some(effect) = effect {
                        self.ack(intent, effect);
                    }
                    return effect;
                }
                Err(e) => {
                    self.error(op, &e);
                    if !e.is_retryable() || stopping() {
                        return None;
                    }
                    self.tally(Tally::Retry);
                    // A gateway that is down is back after its restart delay: no spinning.
                    token::sleep_us(1_000);
                }
            }
        }
    }

    /// Counts something that happened ([`Tally`]).
    pub(crate) fn tally(&mut self, what: Tally) {
        self.append(&Record {
            mark: Mark::Tally,
            op: Op::Read,
            worker: self.worker,
            incarnation: self.incarnation,
            seq: self.seq,
            a: what as i64,
            b: 0,
            c: 0,
        });
    }

    /// Writes the intent of a new operation; returns it (its token names the effect).
    pub(crate) fn intent(&mut self, op: Op, (a, b): (i64, i64)) -> Record {
        self.seq += 1;
        let record = Record {
            mark: Mark::Intent,
            op,
            worker: self.worker,
            incarnation: self.incarnation,
            seq: self.seq,
            a,
            b,
            c: 0,
        };
        self.append(&record);
        record
    }

    /// Writes the ack of `intent`, after its commit returned.
    pub(crate) fn ack(&mut self, intent: Record, (a, b): Effect) {
        self.append(&Record {
            mark: Mark::Ack,
            a,
            b,
            ..intent
        });
    }

    /// Records what a reader observed: the events `events`, read after `cursor` (nothing
    /// when there were none: an empty poll observes nothing, so polls cost the ledger only
    /// when something new was read).
    pub(crate) fn observed_events(&mut self, cursor: EventId, events: &[kanban_store::Event]) {
        let Some(last) = events.last() else {
            return;
        };
        let digest = ledger::events_digest(events.iter().map(ledger::EventKey::from));
        self.read(Op::Read, cursor.get(), last.id.get(), digest);
    }

    /// Records the cursor position this incarnation found at its start.
    pub(crate) fn observed_cursor(&mut self, at: EventId) {
        self.read(Op::Cursor, at.get(), 0, 0);
    }

    fn read(&mut self, op: Op, a: i64, b: i64, c: i64) {
        self.append(&Record {
            mark: Mark::Read,
            op,
            worker: self.worker,
            incarnation: self.incarnation,
            seq: self.seq,
            a,
            b,
            c,
        });
    }

    /// Records an error: an expected one (like `Busy`) with its kind, so the supervisor can
    /// count it and judge whether the scenario can cause it; any other as an error.
    pub(crate) fn error(&mut self, op: Op, e: &StoreError) {
        eprintln!("worker {}: {op:?}: {e}", self.worker);
        let (mark, a) = match ErrorKind::of(e) {
            Some(kind) => (Mark::Expected, kind as i64),
            None => (Mark::Error, 0),
        };
        let record = Record {
            mark,
            op,
            worker: self.worker,
            incarnation: self.incarnation,
            seq: self.seq,
            a,
            b: 0,
            c: 0,
        };
        self.append(&record);
    }

    /// Makes this ledger a forked child's: its tokens get an incarnation of their own, so
    /// they never collide with the parent's.
    pub(crate) fn as_fork(&mut self, n: u32) {
        self.incarnation = 1_000_000 + self.incarnation * 1_000 + n % 1_000;
        self.seq = 0;
    }

    /// The cursor name of this worker's notifier.
    pub(crate) fn cursor_name(&self) -> String {
        cursor_name(self.worker)
    }

    fn append(&mut self, record: &Record) {
        if let Err(e) = self.ledger.append(record) {
            eprintln!("worker {}: ledger write failed: {e}", self.worker);
        }
    }
}

/// The id of the event `t` logged last (what a single-step write's ack records).
pub(crate) fn last_event(t: &kanban_store::Txn<'_>) -> i64 {
    t.event_ids().last().map_or(0, |e| e.get())
}

/// The request id of the write `intent` ledgers: its token's worker, incarnation and seq,
/// so unique in the seed, and the same when the write is sent again.
pub(crate) fn request_id(intent: &Record) -> RequestId {
    let n = (u128::from(intent.worker) << 96)
        | (u128::from(intent.incarnation) << 64)
        | u128::from(intent.seq);
    RequestId::new(n)
}

/// The notifier cursor name of worker `index`.
pub fn cursor_name(index: u16) -> String {
    format!("notifier-w{index}")
}

/// Logs an error of a read or an unledgered write (unexpected errors still count).
pub(crate) fn read_failed(ctx: &mut Ledgered, e: &StoreError) {
    ctx.error(Op::Read, e);
}

/// The in-process overlap: another connection of this process steps inside a write
/// transaction (upstream: a request handler or poller connecting while the dispatcher is
/// mid-transaction).
pub(crate) struct Overlap<'a> {
    sessions: &'a Sessions,
    chance: f64,
    check: bool,
    role: Role,
}

impl Overlap<'_> {
    /// Maybe connects a new session, reads a page of events (and checks the board, if asked),
    /// then closes it.
    pub(crate) fn maybe(&self, rng: &mut ChaCha8Rng) {
        if self.chance > 0.0
            && rng.random_bool(self.chance)
            && let Ok(mut side) = self.sessions.open(self.role)
        {
            let _ = side.events_since(EventId::default(), 20);
            if self.check {
                let _ = side.check(kanban_store::CheckLevel::Quick);
            }
        }
    }
}

/// Seeded timing of a worker's actors: each is due every `interval`, with a seeded phase.
/// Times are microseconds of [`token::now_us`]: real time, or logical under the token.
pub(crate) struct Pace {
    due: Vec<(u64, u64)>,
}

impl Pace {
    /// Actors with these intervals (milliseconds), starting at seeded offsets.
    pub(crate) fn new(intervals: &[u64], rng: &mut ChaCha8Rng) -> Pace {
        let now = token::now_us();
        let due = intervals
            .iter()
            .map(|&ms| {
                let every = ms.max(1) * 1000;
                (now + rng.random_range(0..every), every)
            })
            .collect();
        Pace { due }
    }

    /// Waits for the next due actor and returns its index; `None` when asked to stop.
    pub(crate) fn next(&mut self) -> Option<usize> {
        loop {
            if stopping() {
                return None;
            }
            let (i, &(at, every)) = self
                .due
                .iter()
                .enumerate()
                .min_by_key(|(_, (at, _))| *at)
                .expect("at least one actor");
            let now = token::now_us();
            if at <= now {
                self.due[i].0 = (at + every).max(now);
                return Some(i);
            }
            token::sleep_us((at - now).min(2_000));
        }
    }
}

/// Whether the worker was asked to stop (SIGTERM, or the scheduler's end of the seed).
pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::Relaxed) || token::stop_requested()
}

extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let term = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let alarm = SigAction::new(
        SigHandler::Handler(alarm::on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handlers only touch an atomic or call async-signal-safe functions.
    unsafe {
        let _ = sigaction(Signal::SIGTERM, &term);
        let _ = sigaction(Signal::SIGALRM, &alarm);
    }
}
