//! Power cuts: every worker stopped at once, the board's files rewritten into a state the
//! disk could hold, and the service brought back.
//!
//! In a seed that models power loss every worker joins one process group (the first to
//! start leads it, later ones join while any member lives), so one `kill(2)` of the group
//! stops all of them before any runs again: the supervisor's, for a timed cut, or the
//! worker's own, for a cut at an exact file operation (`shim::CUT_REQUEST` tells the
//! supervisor why they died). The supervisor then reaps every worker, notes how long each
//! ledger was (the check tells acks before a cut from acks after it), and runs
//! [`pagecache::cut`] with the cut's seeded mode: unsynced writes undone, kept, torn or
//! trashed, unsynced creates and deletes undone, the `-shm` deleted. A cut is counted
//! *landed* there, when the files have been rewritten, and only there. Then every worker
//! restarts after its restart delay, as a service manager brings services back after an
//! outage.
//!
//! Under the token (`deterministic`) the workers keep a process group each (a kill of one
//! worker must not take the others), and no worker cuts by itself: one whose operation a
//! `power-cut` fault acts on reaches `Point::PowerCut` right after it, and the supervisor,
//! which holds every other worker at its point, kills them all at that step and runs the
//! same [`Outage::rewrite`]; timed cuts fall at their logical time. The journal then holds
//! the appends in the order the workers ran, one at a time, and the cut's randomness comes
//! from the plan alone, so the cut replays byte for byte; [`summary`] puts what it chose in
//! the trace.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::{FaultNotes, Outcome, Slot, ended, spawn};
use crate::error::{Error, Result};
use crate::pagecache::{self, AllStopped, CutReport};
use crate::plan::Plan;
use crate::scenario::Scenario;
use crate::shim::CUT_REQUEST;

/// The power of one seed that models power loss.
pub(super) struct Outage {
    /// The board folder.
    dir: PathBuf,
    /// The process group every worker joins (none while no worker lives).
    group: Option<Pid>,
    /// Cuts made so far.
    cuts: u32,
    /// Per cut, the byte length of every worker's ledger when it happened.
    pub(super) marks: Vec<Vec<usize>>,
    /// Print what each cut did (`replay`).
    verbose: bool,
}

impl Outage {
    /// The outage of a seed of `scenario` on the board folder `dir`; `None` when the
    /// scenario does not model power loss.
    pub(super) fn new(scenario: &Scenario, dir: &Path, verbose: bool) -> Option<Outage> {
        scenario.power_model().then(|| Outage {
            dir: dir.to_path_buf(),
            group: None,
            cuts: 0,
            marks: Vec::new(),
            verbose,
        })
    }

    /// Whether a worker cut the power at an exact file operation.
    pub(super) fn requested(&self) -> bool {
        self.dir.join(CUT_REQUEST).exists()
    }

    /// Cuts the power (free-running): stops every worker at once (they may be dead
    /// already), reaps them, rewrites the board's files, and schedules every worker's
    /// restart (`restart`).
    pub(super) fn cut(
        &mut self,
        slots: &mut [Slot],
        plan: &Plan,
        scenario: &Scenario,
        restart: bool,
        outcome: &mut Outcome,
        worker_errors: &mut Vec<String>,
    ) -> Result<()> {
        if let Some(group) = self.group.filter(|_| slots.iter().any(|s| s.pid.is_some())) {
            let _ = killpg(group, Signal::SIGKILL);
        }
        for slot in slots.iter_mut() {
            let Some(pid) = slot.pid else { continue };
            // A worker outside the group (none should be) is stopped as well.
            let _ = kill(pid, Signal::SIGKILL);
            loop {
                match waitpid(pid, None) {
                    Ok(status) if ended(slot, status, worker_errors) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.group = None;
        self.rewrite(slots, plan, scenario, outcome)?;
        let now = std::time::Instant::now();
        for slot in slots.iter_mut() {
            slot.restart_at =
                restart.then(|| now + std::time::Duration::from_millis(slot.env.spec.restart_ms));
        }
        Ok(())
    }

    /// The cut itself, in either mode, once the caller has stopped and reaped every worker:
    /// notes every ledger's length, rewrites the board's files with the mode and the
    /// randomness the plan draws for this cut (`Plan::power_cut`), and counts it. Returns
    /// what the cut did, for the deterministic trace.
    pub(super) fn rewrite(
        &mut self,
        slots: &mut [Slot],
        plan: &Plan,
        scenario: &Scenario,
        outcome: &mut Outcome,
    ) -> Result<CutReport> {
        self.marks.push(
            (slots.iter())
                .map(|s| std::fs::metadata(&s.env.ledger).map_or(0, |m| m.len() as usize))
                .collect(),
        );
        let (mode, mut rng) = plan.power_cut(scenario, self.cuts);
        let stopped = AllStopped::after_reaping_every_worker();
        let report = pagecache::cut(&self.dir, mode, &mut rng, &stopped)?;
        if self.verbose {
            eprintln!("power cut {}: {report:#?}", self.cuts + 1);
        }
        let request = self.dir.join(CUT_REQUEST);
        match std::fs::remove_file(&request) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::system(format!("removing {}", request.display()), e)),
        }
        self.cuts += 1;
        outcome.power_cuts += 1;
        *outcome.cut_modes.entry(mode.name().into()).or_default() += 1;
        // A cut carried by every worker is made once: whoever reached it first made it.
        let mut made = std::collections::BTreeSet::new();
        for slot in slots.iter() {
            made.extend(FaultNotes::read(&slot.env.landed).take_power_cuts(scenario));
        }
        for slot in slots.iter_mut() {
            slot.stalled = false;
            slot.env.io_faults.retain(|f| !made.contains(&f.id));
        }
        Ok(report)
    }

    /// Starts `slots[i]`'s worker in the seed's process group (leading a new one when no
    /// worker lives).
    pub(super) fn spawn(&mut self, slots: &mut [Slot], i: usize) -> Result<()> {
        let join = self.group.filter(|_| slots.iter().any(|s| s.pid.is_some()));
        spawn(&mut slots[i], &[], join)?;
        if join.is_none() {
            self.group = slots[i].pid;
        }
        Ok(())
    }
}

/// Starts `slots[i]`'s worker, in the outage's process group when the seed models power
/// loss.
pub(super) fn start(outage: &mut Option<Outage>, slots: &mut [Slot], i: usize) -> Result<()> {
    match outage {
        Some(outage) => outage.spawn(slots, i),
        None => spawn(&mut slots[i], &[], None),
    }
}

/// One line for the deterministic trace of what a cut did: its mode, and per file the
/// pending operations it undid, the write it tore and the sector it trashed, and the
/// namespace changes it undid. Nothing that holds a pid, which differs from run to run:
/// no kept link, and a copy the store is still writing (its name holds `.partial-` and
/// then the writer's pid) only by its name up to `.partial-`.
pub(super) fn summary(report: &CutReport) -> String {
    let mut line = report.mode.name().to_string();
    for f in &report.files {
        let name = match f.name.find(".partial-") {
            Some(at) => &f.name[..at + ".partial-".len()],
            None => &f.name,
        };
        line.push_str(&format!(
            " {name} undone [{}] of {}",
            ranges(&f.undone),
            f.pending
        ));
        if let Some(torn) = &f.torn {
            line.push_str(&format!(" torn #{} new {:?}", torn.op, torn.new_sectors));
        }
        if let Some(sector) = f.trashed {
            line.push_str(&format!(" trashed {sector}"));
        }
    }
    line.push_str(&format!(
        "; namespace undone {}, shm removed {}",
        report.namespace.len(),
        report.shm_removed.len()
    ));
    line
}

/// Ascending indexes as runs: `0-3,5,7-8`.
fn ranges(indexes: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => runs.push((i, i)),
        }
    }
    let runs: Vec<String> = (runs.iter())
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    runs.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn indexes_print_as_runs() {
        assert_eq!(super::ranges(&[]), "");
        assert_eq!(super::ranges(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
    }
}
