//! Running many seeds: in parallel job processes, each a single-threaded supervisor.
//!
//! The top process forks `jobs` children *before* it starts any thread (the progress bar)
//! or opens any board. Job `j` runs the items `i` with `i % jobs == j`, one after another,
//! and writes one JSON line per finished item to its pipe; the top process reads the pipes
//! as lines arrive. A job ends with `_exit`, never returning into the top process's code.
//!
//! A job can die with seeds still to run (a panic in the supervisor is `_exit(70)`, an OOM
//! kill is SIGKILL): its pipe then closes early, just as when it is done. So the end of a
//! pipe proves nothing; the top process waits for every job and checks that it exited 0
//! *and* reported every item it owned. Anything else is [`Error::Jobs`], naming the job,
//! how it ended and the seeds it never reported: a run with seeds missing has no verdict.
//!
//! Control: [`RunOptions::control_job_dies_after`] (`--control-job-dies-after N`, hidden)
//! makes job 0 `_exit(70)` after reporting N items, so a test can check that lost seeds
//! make the run an error.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe};
use serde::{Deserialize, Serialize};

use crate::error::{Error, JobFailure, Result};
use crate::scenario::{Scenario, Variant};
use crate::supervisor::{Outcome, RunOptions, run_seed};

/// One seed to run.
#[derive(Clone, Debug)]
pub struct Item<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The variant.
    pub variant: Variant,
    /// The seed.
    pub seed: u64,
}

/// What a job reports about one item.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    item: usize,
    result: Result<Outcome, String>,
}

/// How a job leaves when it panics, or when the control makes it die.
const EXIT_JOB_DIED: i32 = 70;

/// Runs `items` in `jobs` parallel processes; calls `done` as each finishes (in the order
/// they finish). Fails with [`Error::Jobs`] when a job did not exit 0 having reported every
/// item it owned (after `done` saw every item that was reported).
pub fn run<'a>(
    items: &[Item<'a>],
    jobs: usize,
    opts: &RunOptions,
    mut done: impl FnMut(&Item<'a>, Result<Outcome, String>),
) -> Result<()> {
    let jobs = jobs.clamp(1, items.len().max(1));
    let (mut readers, pids) = fork_jobs(items, jobs, opts)?;
    let mut reported = vec![false; items.len()];
    let mut open = readers.len();
    while open > 0 {
        for i in ready(&readers)? {
            if drain(&mut readers[i], items, &mut reported, &mut done)? {
                readers[i] = None;
                open -= 1;
            }
        }
    }
    let failures = failures(pids, items, jobs, &reported);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Jobs(failures))
    }
}

/// The top process's end of a job's pipe (`None` once it closed).
type Reader = Option<BufReader<std::fs::File>>;

/// Forks the `jobs` job processes; the read end of each one's pipe, and its pid.
fn fork_jobs(
    items: &[Item<'_>],
    jobs: usize,
    opts: &RunOptions,
) -> Result<(Vec<Reader>, Vec<Pid>)> {
    let mut readers = Vec::new();
    let mut pids = Vec::new();
    for j in 0..jobs {
        let (read, write) = pipe()?;
        // SAFETY: the caller is single-threaded (no progress thread yet, no connection open);
        // the child runs seeds and leaves with _exit.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(read);
                drop(readers);
                let code = match std::panic::catch_unwind(|| run_job(items, j, jobs, opts, write)) {
                    Ok(()) => 0,
                    Err(_) => EXIT_JOB_DIED,
                };
                // SAFETY: leave the job without unwinding into the caller.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(write);
                pids.push(child);
                readers.push(Some(BufReader::new(std::fs::File::from(read))));
            }
        }
    }
    Ok((readers, pids))
}

/// Waits until some open pipes can be read; their indices.
fn ready(readers: &[Reader]) -> Result<Vec<usize>> {
    let live: Vec<usize> = (0..readers.len())
        .filter(|&i| readers[i].is_some())
        .collect();
    let mut fds: Vec<PollFd> = live
        .iter()
        .map(|&i| {
            let r = readers[i].as_ref().expect("live");
            PollFd::new(r.get_ref().as_fd(), PollFlags::POLLIN)
        })
        .collect();
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(live
        .into_iter()
        .zip(&fds)
        .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
        .map(|(i, _)| i)
        .collect())
}

/// Hands every whole line already buffered in `reader` to `done`, not just the one poll
/// woke us for; true when the pipe ended.
fn drain<'a>(
    reader: &mut Reader,
    items: &[Item<'a>],
    reported: &mut [bool],
    done: &mut impl FnMut(&Item<'a>, Result<Outcome, String>),
) -> Result<bool> {
    loop {
        let reader = reader.as_mut().expect("open reader");
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| Error::system("reading a job's results", e))?;
        // A line without its newline is all a job that died mid-write left.
        if n == 0 || !line.ends_with('\n') {
            return Ok(true);
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| Error::system("a job's result line", std::io::Error::other(e)))?;
        reported[parsed.item] = true;
        done(&items[parsed.item], parsed.result);
        if !reader.buffer().contains(&b'\n') {
            return Ok(false);
        }
    }
}

/// The jobs that did not exit 0 having reported every item they owned (job `j` owns the
/// items `i` with `i % jobs == j`); waits for every job.
fn failures(pids: Vec<Pid>, items: &[Item<'_>], jobs: usize, reported: &[bool]) -> Vec<JobFailure> {
    pids.into_iter()
        .enumerate()
        .filter_map(|(j, pid)| {
            let status = wait(pid);
            let missing: Vec<String> = (j..items.len())
                .step_by(jobs)
                .filter(|&i| !reported[i])
                .map(|i| describe(&items[i]))
                .collect();
            (status.is_some() || !missing.is_empty()).then(|| JobFailure {
                job: j,
                status: status.unwrap_or_else(|| "exited with 0".into()),
                missing,
            })
        })
        .collect()
}

/// Waits for job `pid`: `None` when it exited 0, else how it ended.
fn wait(pid: Pid) -> Option<String> {
    loop {
        return match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(_, 0)) => None,
            Ok(WaitStatus::Exited(_, EXIT_JOB_DIED)) => {
                Some(format!("exited with {EXIT_JOB_DIED} (a panic)"))
            }
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exited with {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("was killed by {sig}")),
            Ok(other) => Some(format!("ended as {other:?}")),
            Err(e) => Some(format!("could not be waited for ({e})")),
        };
    }
}

/// An item as an error names it.
fn describe(item: &Item<'_>) -> String {
    format!(
        "{} {} seed {}",
        item.scenario.name(),
        item.variant,
        item.seed
    )
}

fn run_job(items: &[Item<'_>], j: usize, jobs: usize, opts: &RunOptions, out: OwnedFd) {
    let mut out = std::fs::File::from(out);
    let dies_after = opts.control_job_dies_after.filter(|_| j == 0);
    for (n, (i, item)) in items.iter().enumerate().skip(j).step_by(jobs).enumerate() {
        if dies_after == Some(n) {
            // SAFETY: the control's death: leave at once, as a panicking job does.
            unsafe { libc::_exit(EXIT_JOB_DIED) }
        }
        let result =
            run_seed(item.scenario, item.variant, item.seed, opts).map_err(|e| e.to_string());
        let line = serde_json::to_string(&Line { item: i, result }).expect("serialisable");
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}
