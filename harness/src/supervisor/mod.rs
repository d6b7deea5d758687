//! The supervisor: one seed, end to end, in a single-threaded process.
//!
//! It makes the board, forks the workers (no SQLite connection is open in this process at
//! any fork), runs them in one of two modes, and only then, with every worker dead, reads
//! the ledgers and checks the board:
//! - `free`: the kernel interleaves the workers in real time; the supervisor delivers the
//!   plan's faults on the wall clock, restarts killed workers like a service manager, and
//!   stops everyone when the budget is spent;
//! - `deterministic`: one worker at a time, handed a token at every scheduling point, in
//!   logical time; the same seed gives the same interleaving and the same bytes.
//!
//! Faults at exact points (phase kills, I/O faults) are delivered by the workers themselves,
//! and noted in the worker's *landed* file as they happen: a phase kill when it is armed
//! (`a<id>`, at its Nth entry into the phase) and again right before its signal is sent
//! (`p<id>`); an I/O fault right before it acts (`i<id>`, armed and landed at once). Until a
//! fault lands (a timed kill may come first, the phase may not come up, or it may end before
//! the kill's delay), every new start of the worker gets it again; the report counts
//! planned, armed and landed faults apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use serde::{Deserialize, Serialize};

use crate::check::{self, Findings, Ledger};
use crate::error::{Error, Result};
use crate::exit::{EXIT_OK, EXIT_PANIC, EXIT_SETUP};
use crate::fault::{ErrorKind, IoAction};
use crate::ledger;
use crate::plan::{Plan, incarnation_seed};
use crate::scenario::{Scenario, ScheduleMode, StrategyName, Variant, WorkerKind};
use crate::setup;
use crate::work;
use crate::worker::{self, WorkerEnv};

mod aftermath;
mod deterministic;
mod free;
mod power_cut;

use aftermath::AsLeft;
pub use aftermath::FinalRepair;

/// Where and how seeds run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Folder under which each seed gets a fresh folder for its board.
    pub work_dir: PathBuf,
    /// Keep the files of failing seeds here (with `verbose`, of every seed).
    pub artifacts: Option<PathBuf>,
    /// Print what happens (for `replay`).
    pub verbose: bool,
    /// Run every worker on the I/O shim, even in scenarios without I/O faults (to measure
    /// what the shim costs).
    pub shim: bool,
    /// Run deterministically even when the scenario does not ask for it.
    pub deterministic: bool,
    /// Deterministic mode: this strategy instead of the scenario's.
    pub strategy: Option<StrategyName>,
    /// Deterministic mode, PCT: this depth instead of the scenario's.
    pub pct_depth: Option<u32>,
    /// Deterministic mode: write one line per scheduling point here.
    pub trace: Option<PathBuf>,
    /// Deterministic mode: how long (wall time) a worker may hold the token without
    /// reaching a scheduling point before the seed is given up as one that could not be
    /// run ([`Error::Blocked`]): a wall-clock cap is never a finding.
    pub stuck: Duration,
    /// Control (test-only): job 0 of `jobs::run` `_exit(70)`s after reporting
    /// this many items, so the run loses seeds on purpose (`--control-job-dies-after`).
    pub control_job_dies_after: Option<usize>,
}

impl RunOptions {
    /// Options for seeds in `work_dir`, free-running unless the scenario says otherwise,
    /// keeping nothing.
    pub fn new(work_dir: PathBuf) -> RunOptions {
        RunOptions {
            work_dir,
            artifacts: None,
            verbose: false,
            shim: false,
            deterministic: false,
            strategy: None,
            pct_depth: None,
            trace: None,
            stuck: Duration::from_secs(10),
            control_job_dies_after: None,
        }
    }

    /// The deterministic strategy for `scenario`, or `None` when it runs free.
    pub fn schedule(&self, scenario: &Scenario) -> Option<kanban_sched::Strategy> {
        (self.deterministic || scenario.schedule == ScheduleMode::Deterministic)
            .then(|| scenario.strategy(self.strategy, self.pct_depth))
    }

    /// Seeds in a RAM-backed folder when the machine has one (faster, same semantics), else
    /// in the temporary folder.
    pub fn default_work_dir() -> PathBuf {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    }
}

/// What one seed showed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// What the checks found.
    pub findings: Findings,
    /// Backup and quarantine files in the board's folder at the end.
    pub backups: usize,
    /// The largest `-wal` the supervisor saw during the seed (free-running: a `stat` on
    /// every turn of its loop; 0 in deterministic mode), in bytes.
    #[serde(default)]
    pub max_wal_bytes: u64,
    /// SIGKILLs delivered by the supervisor.
    pub kills: u32,
    /// Stalls delivered.
    pub stalls: u32,
    /// Faults planned at exact points (phase kills and I/O faults).
    pub faults_planned: u32,
    /// Of those, the ones armed: phase kills whose Nth entry into the phase came (by any
    /// incarnation), I/O faults that acted.
    #[serde(default)]
    pub faults_armed: u32,
    /// Of those, the ones that acted: phase kills whose signal was sent, I/O faults that
    /// acted.
    pub faults_landed: u32,
    /// Worker restarts.
    pub restarts: u32,
    /// Power cuts planned: timed ones and `power-cut` I/O faults.
    #[serde(default)]
    pub power_cuts_planned: u32,
    /// Power cuts made: counted when the board's files have been rewritten.
    #[serde(default)]
    pub power_cuts: u32,
    /// Of those, per mode (`lose-unsynced`, `keep-some`, `torn`, `garbage`).
    #[serde(default)]
    pub cut_modes: BTreeMap<String, u32>,
    /// Commits acknowledged to the workers (their throughput).
    pub acked: u64,
    /// Of those, per worker kind (by name; every kind the scenario runs).
    #[serde(default)]
    pub acked_by_kind: BTreeMap<String, u64>,
    /// Expected errors the workers met, per kind (`Busy`, `DiskFull`...).
    #[serde(default)]
    pub expected_errors: BTreeMap<String, u64>,
    /// What the workers counted ([`ledger::Tally`]: retries, connections the gateway
    /// closed), per tally name.
    #[serde(default)]
    pub tallies: BTreeMap<String, u64>,
    /// Worker starts that ended with `EXIT_SETUP` (the worker could not start).
    #[serde(default)]
    pub setup_exits: u32,
    /// Wall time of the seed, in milliseconds.
    pub elapsed_ms: u64,
    /// Deterministic mode: scheduling steps taken.
    #[serde(default)]
    pub steps: u64,
    /// Deterministic mode: sha256 of the trace (one line per step and supervisor event).
    #[serde(default)]
    pub trace_digest: Option<String>,
    /// Deterministic mode: sha256 of the db and WAL files as the workers left them.
    #[serde(default)]
    pub db_digest: Option<String>,
    /// With `repair_after`: what the supervisor's repair after the run found and did.
    #[serde(default)]
    pub final_repair: Option<FinalRepair>,
}

impl Outcome {
    /// Whether the seed failed.
    pub fn failed(&self) -> bool {
        !self.findings.is_clean()
    }

    /// How `again`, a second deterministic run of the same seed, differs from this one:
    /// the trace digest, the database digest and the findings must all be the same (a
    /// verdict that changes between two runs is no verdict). Empty when they are.
    pub fn replay_diff(&self, again: &Outcome) -> Vec<String> {
        let mut diff = Vec::new();
        let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "-".into());
        for (what, a, b) in [
            ("trace", &self.trace_digest, &again.trace_digest),
            ("database", &self.db_digest, &again.db_digest),
        ] {
            if a != b {
                diff.push(format!("{what} digest: {} != {}", show(a), show(b)));
            }
        }
        let (first, second) = (self.findings.lines(), again.findings.lines());
        if first != second {
            let only = |run: &str, of: &[String], not_in: &[String]| -> Vec<String> {
                of.iter()
                    .filter(|l| !not_in.contains(l))
                    .map(|l| format!("only in {run}: {l}"))
                    .collect()
            };
            let mut lines = only("run 1", &first, &second);
            lines.extend(only("run 2", &second, &first));
            if lines.is_empty() {
                lines.push("findings: the same lines, in another order or number".into());
            }
            diff.extend(lines);
        }
        diff
    }
}

/// One worker process slot.
struct Slot {
    kind: WorkerKind,
    env: WorkerEnv,
    stop_ms: u64,
    log: PathBuf,
    text_ledger: PathBuf,
    pid: Option<Pid>,
    restart_at: Option<Instant>,
    stalled: bool,
    /// Starts that ended with `EXIT_SETUP`.
    setup_exits: u32,
    /// The process group of every start (each worker leads its own).
    groups: Vec<Pid>,
}

/// Runs one seed of `scenario` with `variant`.
pub fn run_seed(
    scenario: &Scenario,
    variant: Variant,
    seed: u64,
    opts: &RunOptions,
) -> Result<Outcome> {
    let started = Instant::now();
    if opts.schedule(scenario).is_some() {
        scenario
            .refuse_determinism()
            .map_err(|message| Error::Scenario {
                path: scenario.path.clone(),
                message,
            })?;
    }
    become_subreaper();
    let dir = tempfile::Builder::new()
        .prefix("kanban-harness-")
        .tempdir_in(&opts.work_dir)
        .map_err(|e| Error::system(format!("a folder in {}", opts.work_dir.display()), e))?;
    let db = dir.path().join("kanban.db");
    let setup_copies = setup::prepare(&db, &scenario.board, opts.schedule(scenario).is_some())?;
    let plan = Plan::new(scenario, seed);
    if opts.verbose {
        eprintln!("plan: {plan:#?}");
    }
    let mut slots = make_slots(scenario, variant, &plan, dir.path(), &db, opts)?;
    let mut outcome = Outcome {
        seed,
        faults_planned: plan.faults_planned(),
        power_cuts_planned: plan.timed_cuts() + plan.power_cut_faults(),
        ..Outcome::default()
    };
    let mut worker_errors = Vec::new();
    let ran = run_workers(
        &mut slots,
        &plan,
        scenario,
        opts,
        &db,
        &mut outcome,
        &mut worker_errors,
    )?;

    // Every worker is dead. The files as they left them come first (see `aftermath`).
    let as_left = AsLeft::take(
        dir.path(),
        &db,
        opts.artifacts.is_some(),
        ran.trace.is_some(),
    )?;
    let seed_run = SeedRun {
        scenario,
        variant,
        db: &db,
        slots: &slots,
        setup_copies: &setup_copies,
        cut_marks: &ran.cut_marks,
    };
    seed_run.judge(worker_errors, &mut outcome)?;
    outcome.backups = count_backups(dir.path());
    outcome.elapsed_ms = started.elapsed().as_millis() as u64;
    if (outcome.failed() || opts.verbose)
        && let Some(artifacts) = &opts.artifacts
    {
        as_left.keep(artifacts, scenario, variant, seed)?;
    }
    if let Some(trace_digest) = ran.trace {
        outcome.trace_digest = Some(trace_digest);
        outcome.db_digest = as_left.digest;
    }
    if opts.verbose {
        print_log_tails(&slots);
    }
    Ok(outcome)
}

/// Makes orphaned grandchildren (a worker's own children) ours, so none outlives the seed:
/// every process that may write to the board is dead before the checks.
fn become_subreaper() {
    // SAFETY: a plain prctl on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// One slot per worker process of the plan, with its files in `dir`; none started yet.
fn make_slots(
    scenario: &Scenario,
    variant: Variant,
    plan: &Plan,
    dir: &Path,
    db: &Path,
    opts: &RunOptions,
) -> Result<Vec<Slot>> {
    let mut slots: Vec<Slot> = Vec::new();
    for (spec, wp) in scenario.processes().into_iter().zip(&plan.workers) {
        slots.push(Slot {
            kind: spec.kind,
            env: WorkerEnv {
                db: setup::board_path(db, spec.path)?,
                ledger: dir.join(format!("ledger-w{}.bin", wp.index)),
                index: wp.index,
                incarnation: 0,
                seed: wp.seed,
                spec: spec.clone(),
                variant,
                phase_kills: wp.phase_kills.clone(),
                io_faults: wp.io_faults.clone(),
                shim: scenario.shim || opts.shim,
                power: scenario.power_model(),
                single_writer: scenario.single_writer,
                landed: dir.join(format!("faults-w{}.txt", wp.index)),
                token: None,
            },
            stop_ms: wp.stop_ms,
            log: dir.join(format!("worker-w{}.log", wp.index)),
            text_ledger: dir.join(format!("ledger-w{}.txt", wp.index)),
            pid: None,
            restart_at: None,
            stalled: false,
            setup_exits: 0,
            groups: Vec::new(),
        });
    }
    Ok(slots)
}

/// What running the workers left besides the outcome.
struct Ran {
    /// Deterministic mode: the trace digest.
    trace: Option<String>,
    /// Per power cut, every worker's ledger length when it happened.
    cut_marks: check::CutMarks,
}

/// Runs the workers in the mode the options pick until every one is dead.
fn run_workers(
    slots: &mut [Slot],
    plan: &Plan,
    scenario: &Scenario,
    opts: &RunOptions,
    db: &Path,
    outcome: &mut Outcome,
    worker_errors: &mut Vec<String>,
) -> Result<Ran> {
    Ok(match opts.schedule(scenario) {
        None => {
            let cut_marks = free::run(
                db,
                slots,
                plan,
                scenario,
                outcome,
                worker_errors,
                opts.verbose,
            )?;
            Ran {
                trace: None,
                cut_marks: check::CutMarks(cut_marks),
            }
        }
        Some(_) => {
            let (trace, cut_marks) =
                deterministic::run(db, slots, plan, scenario, opts, outcome, worker_errors)?;
            Ran {
                trace: Some(trace),
                cut_marks: check::CutMarks(cut_marks),
            }
        }
    })
}

/// A seed whose workers are all dead, to be judged.
struct SeedRun<'a> {
    scenario: &'a Scenario,
    variant: Variant,
    db: &'a Path,
    slots: &'a [Slot],
    /// The quarantine copies setup kept.
    setup_copies: &'a [String],
    /// Every worker's ledger length at each power cut.
    cut_marks: &'a check::CutMarks,
}

impl SeedRun<'_> {
    /// Reads the faults noted and the ledgers into `outcome`, finishes the board (final
    /// repair, a control's loss), and sets the seed's findings.
    fn judge(&self, mut worker_errors: Vec<String>, outcome: &mut Outcome) -> Result<()> {
        let (scenario, variant, db) = (self.scenario, self.variant, self.db);
        // A power cut carried by several workers is one fault, landed once by whoever cut.
        let mut cuts = BTreeSet::new();
        for slot in self.slots {
            let mut notes = FaultNotes::read(&slot.env.landed);
            cuts.extend(notes.take_power_cuts(scenario));
            outcome.faults_armed += notes.armed();
            outcome.faults_landed += notes.landed();
        }
        outcome.faults_armed += cuts.len() as u32;
        outcome.faults_landed += cuts.len() as u32;
        let ledgers = read_ledgers(self.slots);
        count_work(self.slots, &ledgers, outcome);
        worker_errors.extend(unexpected_errors(
            &outcome.expected_errors,
            &work::allowed_errors(scenario, variant),
        ));
        let final_repair = scenario
            .repair_after
            .then(|| FinalRepair::run(db, &ledgers));
        crate::inject::apply(scenario, db, &ledgers)?;
        outcome.findings = check::check(db, &ledgers, self.cut_marks, worker_errors);
        if let Some(repair) = &final_repair {
            repair.judge(&mut outcome.findings);
        }
        // A board damaged beyond indexes at start that ends with none was rebuilt.
        let rebuilt = scenario.board.damage.beyond_indexes()
            && outcome.findings.corrupt.is_empty()
            && outcome.findings.invariant.is_empty();
        outcome.findings.quarantine = crate::copies::check(db, self.setup_copies, rebuilt);
        outcome.final_repair = final_repair;
        outcome.findings.work = work::findings(
            scenario,
            variant,
            &outcome.acked_by_kind,
            outcome.restarts,
            // A power cut stops every worker.
            outcome.kills + outcome.faults_landed + outcome.power_cuts * self.slots.len() as u32,
        );
        Ok(())
    }
}

/// Prints the last lines of every worker's log (verbose runs).
fn print_log_tails(slots: &[Slot]) {
    for slot in slots {
        let log = std::fs::read_to_string(&slot.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        eprintln!(
            "worker {} ({}): {} restarts; log tail:",
            slot.env.index,
            slot.kind.name(),
            slot.env.incarnation
        );
        for line in tail.into_iter().rev() {
            eprintln!("    {line}");
        }
    }
}

impl Outcome {
    /// Notes the size of the board's `-wal` now (a `stat`: R2 holds in the supervisor too).
    fn sample_wal(&mut self, wal: &Path) {
        let len = std::fs::metadata(wal).map_or(0, |m| m.len());
        self.max_wal_bytes = self.max_wal_bytes.max(len);
    }
}

/// Counts the work of the seed from its ledgers: acknowledged commits (in all and per
/// worker kind), expected errors per kind, and starts that could not set up.
fn count_work(slots: &[Slot], ledgers: &[Ledger], outcome: &mut Outcome) {
    for (slot, ledger) in slots.iter().zip(ledgers) {
        let acked = match ledger {
            Ledger::Binary(c) => {
                for r in c
                    .records
                    .iter()
                    .filter(|r| r.mark == ledger::Mark::Expected)
                {
                    let kind = ErrorKind::from_code(r.a).map_or("?", ErrorKind::name);
                    *outcome.expected_errors.entry(kind.into()).or_default() += 1;
                }
                for r in c.records.iter().filter(|r| r.mark == ledger::Mark::Tally) {
                    let name = ledger::Tally::from_code(r.a).map_or("?", ledger::Tally::name);
                    *outcome.tallies.entry(name.into()).or_default() += 1;
                }
                c.records
                    .iter()
                    .filter(|r| r.mark == ledger::Mark::Ack)
                    .count()
            }
            Ledger::Text(entries, _) => entries
                .iter()
                .filter(|e| e.mark == ledger::Mark::Ack)
                .count(),
        } as u64;
        outcome.acked += acked;
        *outcome
            .acked_by_kind
            .entry(slot.kind.name().into())
            .or_default() += acked;
        outcome.setup_exits += slot.setup_exits;
    }
}

/// Worker errors for the expected errors (counted per kind) that nothing in the scenario
/// can cause.
fn unexpected_errors(
    counts: &BTreeMap<String, u64>,
    allowed: &std::collections::BTreeSet<ErrorKind>,
) -> Vec<String> {
    counts
        .iter()
        .filter(|(name, _)| !allowed.iter().any(|k| k.name() == name.as_str()))
        .map(|(name, n)| format!("{n} {name} errors, which nothing in this scenario can cause"))
        .collect()
}

/// Starts a slot's worker: fork for our kinds, fork+exec for `command`. The child closes
/// `close_in_child` first (the supervisor's ends of other workers' sockets). It leads a
/// process group of its own, or joins `group` (a seed that models power loss).
fn spawn(slot: &mut Slot, close_in_child: &[RawFd], group: Option<Pid>) -> Result<()> {
    let pgid = group.map_or(0, Pid::as_raw);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&slot.log)
        .map_err(|e| Error::system(format!("opening {}", slot.log.display()), e))?;
    slot.stalled = false;
    if slot.kind == WorkerKind::Command {
        let command = &slot.env.spec.command;
        let child = std::process::Command::new(&command[0])
            .args(&command[1..])
            .env("KANBAN_DB", &slot.env.db)
            .env("KANBAN_LEDGER", &slot.text_ledger)
            .env(
                "KANBAN_SEED",
                incarnation_seed(slot.env.seed, slot.env.incarnation).to_string(),
            )
            .stdin(std::process::Stdio::null())
            .process_group(pgid)
            .stdout(log.try_clone().map_err(|e| Error::system("log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::system(format!("starting {command:?}"), e))?;
        let child = Pid::from_raw(child.id() as i32);
        slot.pid = Some(child);
        slot.groups.push(group.unwrap_or(child));
        return Ok(());
    }
    // SAFETY: the supervisor is single-threaded and holds no SQLite connection here; the
    // child only runs the worker and leaves with _exit, never returning into this code.
    match unsafe { fork() }? {
        ForkResult::Child => {
            // SAFETY: a process group of its own (so its own children can be stopped with
            // it) or the seed's, and plain dup2 onto stderr/stdout, in the new process.
            unsafe {
                libc::setpgid(0, pgid);
                libc::dup2(log.as_raw_fd(), 2);
                libc::dup2(log.as_raw_fd(), 1);
            }
            drop(log);
            for &fd in close_in_child {
                // SAFETY: the child's copy of a descriptor it must not hold.
                unsafe { libc::close(fd) };
            }
            let code = worker::child_main(&slot.env);
            // SAFETY: leave the child without running the parent's destructors or handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            // Also here, so that the group holds the child before any signal to it is sent.
            let _ = nix::unistd::setpgid(child, group.unwrap_or(child));
            slot.pid = Some(child);
            slot.groups.push(group.unwrap_or(child));
            Ok(())
        }
    }
}

/// A slot's worker ended with `status` (false for a status that is no end): unexpected ends
/// are noted as worker errors, and the faults that landed are not planned again for the
/// next start.
fn ended(slot: &mut Slot, status: WaitStatus, worker_errors: &mut Vec<String>) -> bool {
    let who = format!("worker {} ({})", slot.env.index, slot.kind.name());
    match status {
        WaitStatus::Exited(_, code) => match code {
            EXIT_OK => {}
            // Counted (and shown); a floor or the crash-loop check judges it.
            EXIT_SETUP => slot.setup_exits += 1,
            EXIT_PANIC => worker_errors.push(format!("{who} panicked (see its log)")),
            other => worker_errors.push(format!("{who} exited with {other}")),
        },
        WaitStatus::Signaled(_, Signal::SIGKILL | Signal::SIGTERM, _) => {}
        WaitStatus::Signaled(_, sig, _) => {
            worker_errors.push(format!("{who} died of {sig}"));
        }
        _ => return false,
    }
    slot.pid = None;
    slot.stalled = false;
    let notes = FaultNotes::read(&slot.env.landed);
    slot.env
        .phase_kills
        .retain(|k| !notes.phase_kills.contains(&k.id));
    slot.env.io_faults.retain(|f| !notes.io.contains(&f.id));
    true
}

/// Kills whatever the workers started themselves and reaps it (we are their subreaper), so
/// nothing is alive when anyone looks at the board.
fn reap_all(slots: &[Slot]) {
    for group in slots.iter().flat_map(|s| &s.groups) {
        let _ = nix::sys::signal::killpg(*group, Signal::SIGKILL);
    }
    loop {
        match waitpid(None, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// What a worker's landed file says, over all its incarnations: the distinct ids of the
/// phase kills armed and fired, and of the I/O faults that acted.
#[derive(Debug, Default)]
struct FaultNotes {
    armed: BTreeSet<usize>,
    phase_kills: BTreeSet<usize>,
    io: BTreeSet<usize>,
}

impl FaultNotes {
    fn read(path: &Path) -> FaultNotes {
        let mut notes = FaultNotes::default();
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let (tag, id) = line.split_at(line.len().min(1));
            let Ok(id) = id.parse() else { continue };
            match tag {
                "a" => notes.armed.insert(id),
                "p" => notes.phase_kills.insert(id),
                "i" => notes.io.insert(id),
                _ => continue,
            };
        }
        notes
    }

    /// Faults armed: phase kills armed (a fired one was armed first) and I/O faults.
    fn armed(&self) -> u32 {
        (self.armed.union(&self.phase_kills).count() + self.io.len()) as u32
    }

    /// Removes and returns the power cuts among the I/O faults that acted.
    fn take_power_cuts(&mut self, scenario: &Scenario) -> BTreeSet<usize> {
        let cut = |id: &usize| {
            (scenario.faults.io.get(*id)).is_some_and(|f| f.action == IoAction::PowerCut)
        };
        let cuts: BTreeSet<usize> = self.io.iter().copied().filter(cut).collect();
        self.io.retain(|id| !cuts.contains(id));
        cuts
    }

    /// Faults that acted.
    fn landed(&self) -> u32 {
        (self.phase_kills.len() + self.io.len()) as u32
    }
}

fn read_ledgers(slots: &[Slot]) -> Vec<Ledger> {
    slots
        .iter()
        .map(|s| match s.kind {
            WorkerKind::Command => {
                let text = std::fs::read_to_string(&s.text_ledger).unwrap_or_default();
                let (entries, errors) = ledger::parse_text(&text);
                Ledger::Text(entries, errors)
            }
            _ => Ledger::Binary(ledger::parse(
                &std::fs::read(&s.env.ledger).unwrap_or_default(),
            )),
        })
        .collect()
}

/// Backup and quarantine copies in the board's folder (upstream: `kanban.db.corrupt.*.bak`).
fn count_backups(dir: &Path) -> usize {
    let files = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let corrupt = files(dir)
        .iter()
        .filter(|n| n.contains(".corrupt.") && n.ends_with(".bak"))
        .count();
    // A quarantine folder the store refuses (a link) holds no copies of its making.
    corrupt + kanban_store::quarantine::list(&dir.join("kanban.db")).map_or(0, |c| c.len())
}
