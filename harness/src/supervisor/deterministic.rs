//! Deterministic mode: one worker at a time, picked from the seed, in logical time.
//!
//! Every worker process gets one end of a socket pair and runs only while it holds the
//! token (see [`crate::token`] for the worker's side). The supervisor drives the
//! [`kanban_sched`] scheduler over those sockets: it hands the token to the worker the
//! strategy picks, with the logical time, and waits until that worker reaches its next
//! scheduling point and hands it back. The plan's timed faults land between two steps, at
//! logical times, so a kill or a stall falls at an exact position of the interleaving;
//! restarts and stalls are logical waits. A power cut (timed, or reached by a worker at
//! `Point::PowerCut` right after the operation its fault acts on) kills every worker at
//! that step, rewrites the board's files as in free mode (`power_cut`), writes
//! `<t> power cut <k> <mode> <what it chose>` to the trace, and restarts every worker after
//! its restart delay, as after a kill. When the budget of logical time is spent, every
//! grant carries the stop flag, and workers finish their operation and exit, still one at
//! a time.
//!
//! Each step and each supervisor event is one line of the trace (written to `--trace`,
//! and hashed either way): the same seed gives the same trace digest and, after a clean
//! close, the same database digest.
//!
//! Stuckness is judged in logical steps, never in wall time, so a loaded machine cannot
//! change a verdict: once the budget is spent, the workers together get [`GRACE_STEPS`]
//! more steps to stop; a worker still running then (a livelock: it keeps reaching points
//! but never stops) is a `worker_error` finding starting with `stuck:`, and is killed. A
//! worker waiting (a stall, a sleep) takes no steps, so a stall that outlasts the budget
//! is no livelock. A worker that does not come back to a scheduling point at all within
//! `RunOptions::stuck` of *wall* time is blocked outside the scheduler (a bug of the
//! harness or of a shim): no step count can see that, so the wall-clock cap stays, but as
//! [`Error::Blocked`] (the seed could not be run, the run is an error), never a finding.
//!
//! Control: with `KANBAN_HARNESS_CONTROL_IGNORE_STOP` set, workers never see the stop flag
//! (see [`crate::token`]), so every seed must end in a `stuck:` finding.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use kanban_sched::{Event, Scheduler, State, Transport, Unit, step};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::waitpid;
use sha2::{Digest, Sha256};

use super::power_cut::{self, Outage};
use super::{Outcome, RunOptions, Slot, ended, reap_all, spawn};
use crate::error::{Error, Result};
use crate::plan::{FaultAction, Plan, TimedFault};
use crate::scenario::{QUANTUM_US, Scenario};
use crate::token::{self, Point};

/// Scheduling steps the workers get, together, to stop once the budget is spent. A worker
/// finishing its operation needs tens of steps (hundreds when it waits on a busy lock);
/// the margin is wide so that only a worker that never stops reaches it.
const GRACE_STEPS: u64 = 20_000;

/// Trace lines kept for a report of a stuck worker.
const TAIL: usize = 20;

/// Runs the workers for the scenario's budget of logical time on the board `db`; every
/// worker is dead when it returns. Returns the trace digest and, with power cuts, the
/// ledger lengths at each cut.
pub(super) fn run(
    db: &Path,
    slots: &mut [Slot],
    plan: &Plan,
    scenario: &Scenario,
    opts: &RunOptions,
    outcome: &mut Outcome,
    worker_errors: &mut Vec<String>,
) -> Result<(String, Vec<Vec<usize>>)> {
    let strategy = scenario.strategy(opts.strategy, opts.pct_depth);
    let trace = Trace::new(opts.trace.as_deref())?;
    let dir = db.parent().unwrap_or(Path::new("."));
    let mut sched = Scheduler::new(slots.len(), scheduler_seed(plan.seed), strategy, QUANTUM_US);
    for unit in 0..slots.len() {
        sched.wait_until(unit, 0);
    }
    let mut procs = Procs {
        sockets: (0..slots.len()).map(|_| None).collect(),
        slots,
        stopping: false,
        trace,
        worker_errors,
        stuck: opts.stuck,
        blocked: None,
        plan,
        scenario,
        outage: Outage::new(scenario, dir, opts.verbose),
    };
    let budget_us = scenario.budget_ms * 1000;
    // The step at which the budget was spent.
    let mut stopped_at: Option<u64> = None;
    let mut faults = plan.faults.iter().peekable();
    loop {
        let now = sched.now_us();
        while let Some(f) = faults.next_if(|f| f.at_ms * 1000 <= now && now < budget_us) {
            if let Err(e) = procs.deliver(&mut sched, f, now, outcome) {
                return Err(procs.abort(e));
            }
        }
        if !procs.stopping && now >= budget_us {
            stopped_at = Some(procs.spend_budget(&mut sched, now));
        }
        if stopped_at.is_some_and(|at| sched.steps() >= at + GRACE_STEPS) {
            procs.end_overdue(&mut sched, now);
        }
        let Some((unit, event)) = step(&mut sched, &mut procs) else {
            break;
        };
        if let Some(blocked) = procs.blocked.take() {
            return Err(procs.abort(blocked));
        }
        if let Err(e) = procs.note(&mut sched, unit, event, outcome) {
            return Err(procs.abort(e));
        }
    }
    outcome.steps = sched.steps();
    reap_all(procs.slots);
    let marks = procs.outage.take().map(|o| o.marks).unwrap_or_default();
    Ok((procs.trace.finish()?, marks))
}

impl Procs<'_> {
    /// Ends the seed on `error`: every worker is killed and reaped.
    fn abort(&mut self, error: Error) -> Error {
        for unit in 0..self.slots.len() {
            self.kill(unit);
        }
        reap_all(self.slots);
        error
    }

    /// Delivers the timed fault `f`, due at `now`: a power cut whatever runs, a kill or a
    /// stall unless its worker is not running.
    fn deliver(
        &mut self,
        sched: &mut Scheduler,
        f: &TimedFault,
        now: u64,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let unit = f.worker;
        if f.action == FaultAction::PowerCut {
            return self.cut_power(sched, outcome);
        }
        if self.slots[unit].pid.is_none() {
            return Ok(());
        }
        match f.action {
            FaultAction::Kill => {
                self.trace.line(format_args!("{now} kill w{unit}"));
                self.kill(unit);
                sched.remove(unit);
                self.restart_later(sched, unit, outcome);
                outcome.kills += 1;
            }
            FaultAction::Stall(ms) => {
                self.trace.line(format_args!("{now} stall w{unit} {ms}ms"));
                sched.wait_until(unit, now + ms * 1000);
                outcome.stalls += 1;
            }
            FaultAction::PowerCut => unreachable!("cut above"),
        }
        Ok(())
    }

    /// Cuts the power at this step: every worker still there is killed where it waits for
    /// the token (or, for the one that asked for the cut, right after its operation), the
    /// board's files are rewritten as in free mode ([`Outage::rewrite`]), and every worker
    /// comes back after its restart delay of logical time, as a killed one does.
    fn cut_power(&mut self, sched: &mut Scheduler, outcome: &mut Outcome) -> Result<()> {
        if self.outage.is_none() {
            // Never: a seed with a cut planned models power loss.
            return Ok(());
        }
        let now = sched.now_us();
        let mut killed = Vec::new();
        for unit in 0..self.slots.len() {
            if self.slots[unit].pid.is_some() {
                self.kill(unit);
                sched.remove(unit);
                killed.push(unit);
            }
        }
        let outage = self.outage.as_mut().expect("checked above");
        let report = outage.rewrite(self.slots, self.plan, self.scenario, outcome)?;
        self.trace.line(format_args!(
            "{now} power cut {} {}",
            outcome.power_cuts,
            power_cut::summary(&report)
        ));
        for unit in 0..self.slots.len() {
            if killed.contains(&unit) {
                self.restart_later(sched, unit, outcome);
            } else if matches!(sched.state(unit), State::Waiting { .. }) {
                // A restart (or first start) still to come waits for the power too.
                let restart_ms = self.slots[unit].env.spec.restart_ms;
                sched.wait_until(unit, now + restart_ms * 1000);
            }
        }
        Ok(())
    }

    /// The budget is spent at `now`: workers that are not running leave the schedule (none
    /// is restarted any more). Returns the step it happened at.
    fn spend_budget(&mut self, sched: &mut Scheduler, now: u64) -> u64 {
        self.stopping = true;
        let at = sched.steps();
        self.trace.line(format_args!("{now} budget spent"));
        for unit in 0..self.slots.len() {
            if self.slots[unit].pid.is_none() {
                sched.remove(unit);
            }
        }
        at
    }

    /// Kills every worker still there `GRACE_STEPS` after the budget was spent; one that
    /// took steps all along (did not wait) is reported `stuck`.
    fn end_overdue(&mut self, sched: &mut Scheduler, now: u64) {
        for unit in 0..self.slots.len() {
            if self.slots[unit].pid.is_none() {
                continue;
            }
            // One that waits (a stall) took none of those steps: it is killed, not stuck.
            if !matches!(sched.state(unit), State::Waiting { .. }) {
                self.trace.line(format_args!("{now} stuck w{unit}"));
                self.worker_errors.push(format!(
                    "stuck: worker {unit} ({}) still running {GRACE_STEPS} scheduling steps after the budget was spent",
                    self.slots[unit].kind.name(),
                ));
            }
            self.kill(unit);
            sched.remove(unit);
        }
    }

    /// Traces the step's `event` of `unit`; a worker gone is restarted later; a worker
    /// that reached a power cut has the power cut now.
    fn note(
        &mut self,
        sched: &mut Scheduler,
        unit: Unit,
        event: Event<Point>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let (step_no, now) = (sched.steps(), sched.now_us());
        match event {
            Event::Point { at, .. } => {
                self.trace
                    .line(format_args!("{step_no} {now} w{unit} {}", describe(at)));
                if at == Point::PowerCut {
                    return self.cut_power(sched, outcome);
                }
            }
            Event::Gone => {
                self.trace
                    .line(format_args!("{step_no} {now} w{unit} gone"));
                self.restart_later(sched, unit, outcome);
            }
        }
        Ok(())
    }
}

/// The scheduler's own stream, apart from the plan's.
fn scheduler_seed(seed: u64) -> u64 {
    seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5EED
}

fn describe(point: Point) -> String {
    match point {
        Point::Io {
            op,
            file,
            phase,
            fault,
        } => match fault {
            None => format!("{op:?} {file:?} {phase:?}"),
            Some(action) => format!("{op:?} {file:?} {phase:?} fault={action:?}"),
        },
        Point::Sleep(us) => format!("sleep {us}"),
        Point::Lock => "lock".into(),
        Point::Stop => "stopped".into(),
        Point::PowerCut => "power-cut".into(),
    }
}

/// The worker processes, as the scheduler's transport.
struct Procs<'a> {
    slots: &'a mut [Slot],
    /// The supervisor's end of each live worker's socket.
    sockets: Vec<Option<UnixStream>>,
    stopping: bool,
    trace: Trace,
    worker_errors: &'a mut Vec<String>,
    stuck: Duration,
    /// A worker that reached the wall-clock cap: the seed cannot go on.
    blocked: Option<Error>,
    plan: &'a Plan,
    scenario: &'a Scenario,
    /// The seed's power, when it models power loss.
    outage: Option<Outage>,
}

impl Procs<'_> {
    /// Forks `unit`'s worker with a fresh socket pair; it waits for its first grant.
    fn start(&mut self, unit: Unit) -> Result<()> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| Error::system("a socket pair for a worker", e))?;
        let slot = &mut self.slots[unit];
        slot.env.token = Some(theirs.as_raw_fd());
        let others: Vec<_> = self
            .sockets
            .iter()
            .flatten()
            .map(AsRawFd::as_raw_fd)
            .chain([ours.as_raw_fd()])
            .collect();
        let started = spawn(slot, &others, None);
        slot.env.token = None;
        drop(theirs);
        started?;
        ours.set_read_timeout(Some(self.stuck))
            .map_err(|e| Error::system("a worker's socket", e))?;
        self.sockets[unit] = Some(ours);
        Ok(())
    }

    /// SIGKILLs `unit`'s process group and buries it.
    fn kill(&mut self, unit: Unit) {
        if let Some(pid) = self.slots[unit].pid {
            let _ = killpg(pid, Signal::SIGKILL);
        }
        self.bury(unit);
    }

    /// Waits for `unit`'s socket to close and its process to end, and notes how it ended.
    fn bury(&mut self, unit: Unit) {
        if let Some(mut socket) = self.sockets[unit].take() {
            let mut sink = [0u8; 64];
            while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
        }
        let slot = &mut self.slots[unit];
        if let Some(pid) = slot.pid {
            loop {
                match waitpid(pid, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(status) => {
                        ended(slot, status, self.worker_errors);
                    }
                    Err(_) => {}
                }
                break;
            }
            slot.pid = None;
        }
    }

    /// Plans the restart of `unit`, gone, after its restart delay of logical time.
    fn restart_later(&mut self, sched: &mut Scheduler, unit: Unit, outcome: &mut Outcome) {
        if self.stopping {
            return;
        }
        let slot = &mut self.slots[unit];
        slot.env.incarnation += 1;
        outcome.restarts += 1;
        sched.wait_until(unit, sched.now_us() + slot.env.spec.restart_ms * 1000);
    }
}

impl Transport for Procs<'_> {
    type Point = Point;

    fn grant(&mut self, unit: Unit, now_us: u64) {
        if self.slots[unit].pid.is_none() {
            self.trace.line(format_args!(
                "{now_us} start w{unit}#{}",
                self.slots[unit].env.incarnation
            ));
            if let Err(e) = self.start(unit) {
                self.worker_errors
                    .push(format!("worker {unit} could not start: {e}"));
                return;
            }
        }
        if let Some(socket) = self.sockets[unit].as_mut() {
            // A worker that died before reading its grant shows as gone in `wait`.
            let _ = socket.write_all(&token::grant(now_us, self.stopping));
        }
    }

    fn wait(&mut self, unit: Unit) -> Event<Point> {
        let mut buf = [0u8; 16];
        let read = match self.sockets[unit].as_mut() {
            Some(socket) => socket.read_exact(&mut buf),
            None => Err(ErrorKind::NotConnected.into()),
        };
        match read {
            Ok(()) => match Point::decode(&buf) {
                Some(at) => {
                    let sleep_us = match at {
                        Point::Sleep(us) => us,
                        Point::Stop => self.slots[unit].stop_ms * 1000,
                        Point::Io { .. } | Point::Lock | Point::PowerCut => 0,
                    };
                    Event::Point { at, sleep_us }
                }
                None => {
                    self.worker_errors
                        .push(format!("worker {unit} sent a garbled point: {buf:?}"));
                    self.kill(unit);
                    Event::Gone
                }
            },
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                self.blocked = Some(Error::Blocked {
                    worker: unit,
                    kind: self.slots[unit].kind.name().to_string(),
                    waited: self.stuck,
                    tail: self.trace.tail(),
                });
                self.kill(unit);
                Event::Gone
            }
            Err(_) => {
                self.bury(unit);
                Event::Gone
            }
        }
    }
}

/// The trace: hashed line by line, and written out when asked.
struct Trace {
    hash: Sha256,
    out: Option<BufWriter<File>>,
    tail: VecDeque<String>,
}

impl Trace {
    fn new(path: Option<&Path>) -> Result<Trace> {
        let out = match path {
            Some(p) => Some(BufWriter::new(File::create(p).map_err(|e| {
                Error::system(format!("creating the trace {}", p.display()), e)
            })?)),
            None => None,
        };
        Ok(Trace {
            hash: Sha256::new(),
            out,
            tail: VecDeque::with_capacity(TAIL),
        })
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        let line = format!("{args}\n");
        self.hash.update(line.as_bytes());
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(line.as_bytes());
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn tail(&self) -> String {
        self.tail.iter().map(String::as_str).collect()
    }

    fn finish(self) -> Result<String> {
        if let Some(mut out) = self.out {
            out.flush()
                .map_err(|e| Error::system("writing the trace", e))?;
        }
        Ok(format!("{:x}", self.hash.finalize()))
    }
}
