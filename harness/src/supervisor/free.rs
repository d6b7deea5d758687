//! Free-running mode: the kernel schedules the workers, in real time.
//!
//! The supervisor delivers the plan's timed faults on the wall clock (SIGKILL; SIGSTOP then
//! SIGCONT), restarts killed workers after their restart delay like a service manager, and
//! when the budget is spent asks every worker to stop (SIGTERM, then SIGKILL after a grace
//! period). On every turn of its loop it also stats the board's `-wal` (the largest size
//! seen is the seed's `max_wal_bytes`).

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use super::power_cut::{self, Outage};
use super::{Outcome, Slot, ended, reap_all};
use crate::error::Result;
use crate::plan::{FaultAction, Plan};
use crate::scenario::Scenario;

/// How long workers get to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_millis(1500);

/// Runs the workers for the scenario's budget; every worker is dead when it returns. With
/// power cuts, it returns the ledger lengths at each cut.
pub(super) fn run(
    db: &std::path::Path,
    slots: &mut [Slot],
    plan: &Plan,
    scenario: &Scenario,
    outcome: &mut Outcome,
    worker_errors: &mut Vec<String>,
    verbose: bool,
) -> Result<Vec<Vec<usize>>> {
    let wal = kanban_store::wal_path(db);
    let dir = db.parent().unwrap_or(std::path::Path::new("."));
    let mut outage = Outage::new(scenario, dir, verbose);
    for i in 0..slots.len() {
        power_cut::start(&mut outage, slots, i)?;
    }
    let start = Instant::now();
    let budget = Duration::from_millis(scenario.budget_ms);
    let mut faults = plan.faults.iter().peekable();
    let mut resumes: Vec<(Instant, usize)> = Vec::new();
    while start.elapsed() < budget {
        let now = Instant::now();
        while let Some(f) = faults.next_if(|f| start + Duration::from_millis(f.at_ms) <= now) {
            // The power goes whatever runs.
            if f.action == FaultAction::PowerCut {
                if let Some(outage) = &mut outage {
                    outage.cut(slots, plan, scenario, true, outcome, worker_errors)?;
                }
                continue;
            }
            let slot = &mut slots[f.worker];
            let Some(pid) = slot.pid else { continue };
            match f.action {
                FaultAction::Kill => {
                    let _ = kill(pid, Signal::SIGKILL);
                    outcome.kills += 1;
                }
                FaultAction::Stall(ms) if !slot.stalled => {
                    let _ = kill(pid, Signal::SIGSTOP);
                    slot.stalled = true;
                    resumes.push((now + Duration::from_millis(ms), f.worker));
                    outcome.stalls += 1;
                }
                FaultAction::Stall(_) | FaultAction::PowerCut => {}
            }
        }
        resumes.retain(|&(at, i)| {
            if at > now {
                return true;
            }
            if let (Some(pid), true) = (slots[i].pid, slots[i].stalled) {
                let _ = kill(pid, Signal::SIGCONT);
            }
            slots[i].stalled = false;
            false
        });
        reap(slots, false, &mut resumes, worker_errors)?;
        // Before any restart: a worker that cut the power took every other one with it.
        if let Some(outage) = outage.as_mut().filter(|o| o.requested()) {
            outage.cut(slots, plan, scenario, true, outcome, worker_errors)?;
        }
        for i in 0..slots.len() {
            if slots[i].restart_at.is_some_and(|at| at <= now) {
                let slot = &mut slots[i];
                slot.restart_at = None;
                slot.env.incarnation += 1;
                outcome.restarts += 1;
                power_cut::start(&mut outage, slots, i)?;
            }
        }
        outcome.sample_wal(&wal);
        std::thread::sleep(Duration::from_micros(200));
    }
    stop(slots, worker_errors)?;
    // A cut in the last turn, or while the workers were stopping, still happened; so do
    // timed cuts planned within the budget that a slow turn left undelivered.
    if let Some(outage) = outage.as_mut() {
        for _ in faults.filter(|f| f.action == FaultAction::PowerCut) {
            outage.cut(slots, plan, scenario, false, outcome, worker_errors)?;
        }
    }
    if let Some(outage) = outage.as_mut() {
        if outage.requested() {
            outage.cut(slots, plan, scenario, false, outcome, worker_errors)?;
        }
        return Ok(std::mem::take(&mut outage.marks));
    }
    Ok(Vec::new())
}

/// Collects exited workers; outside `stopping`, schedules their restart. A worker that
/// stopped itself (an I/O fault holding a lock) is resumed after its `stop_ms`.
fn reap(
    slots: &mut [Slot],
    stopping: bool,
    resumes: &mut Vec<(Instant, usize)>,
    worker_errors: &mut Vec<String>,
) -> Result<()> {
    loop {
        let flags = if stopping {
            WaitPidFlag::empty()
        } else {
            WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED
        };
        let status = match waitpid(None, Some(flags)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
            Ok(s) => s,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(pid) = status.pid() else { continue };
        let Some(i) = slots.iter().position(|s| s.pid == Some(pid)) else {
            continue;
        };
        let slot = &mut slots[i];
        if let WaitStatus::Stopped(..) = status {
            if !slot.stalled {
                slot.stalled = true;
                resumes.push((Instant::now() + Duration::from_millis(slot.stop_ms), i));
            }
            continue;
        }
        if !ended(slot, status, worker_errors) {
            continue;
        }
        if !stopping {
            slot.restart_at =
                Some(Instant::now() + Duration::from_millis(slot.env.spec.restart_ms));
        }
        if stopping && slots.iter().all(|s| s.pid.is_none()) {
            return Ok(());
        }
    }
}

/// Asks every worker to stop, then makes sure they have.
fn stop(slots: &mut [Slot], worker_errors: &mut Vec<String>) -> Result<()> {
    let mut resumes = Vec::new();
    for slot in slots.iter_mut() {
        slot.restart_at = None;
        if let Some(pid) = slot.pid {
            if slot.stalled {
                let _ = kill(pid, Signal::SIGCONT);
            }
            let _ = kill(pid, Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + GRACE;
    while slots.iter().any(|s| s.pid.is_some()) && Instant::now() < deadline {
        reap(slots, false, &mut resumes, worker_errors)?;
        for slot in slots.iter_mut() {
            slot.restart_at = None;
            if let (Some(pid), true) = (slot.pid, slot.stalled) {
                // A worker that stopped itself while stopping: let it go on and exit.
                let _ = kill(pid, Signal::SIGCONT);
                slot.stalled = false;
            }
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    for slot in slots.iter() {
        if let Some(pid) = slot.pid {
            worker_errors.push(format!(
                "worker {} ({}) ignored SIGTERM for {GRACE:?}",
                slot.env.index,
                slot.kind.name()
            ));
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    if slots.iter().any(|s| s.pid.is_some()) {
        reap(slots, true, &mut resumes, worker_errors)?;
    }
    reap_all(slots);
    Ok(())
}
