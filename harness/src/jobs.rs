//! Running many seeds: in parallel job processes, each a single-threaded supervisor.
//!
//! The top process forks `jobs` children *before* it starts any thread (the progress bar)
//! or opens any board. Job `j` runs the items `i` with `i % jobs == j`, one after another,
//! and writes one JSON line per finished item to its pipe; the top process reads the pipes
//! as lines arrive. A job ends with `_exit`, never returning into the top process's code.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
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

/// Runs `items` in `jobs` parallel processes; calls `done` as each finishes (in the order
/// they finish). `before_wait` runs once every job is forked (start progress output there).
pub fn run<'a>(
    items: &[Item<'a>],
    jobs: usize,
    opts: &RunOptions,
    mut done: impl FnMut(&Item<'a>, Result<Outcome, String>),
) -> Result<()> {
    let jobs = jobs.clamp(1, items.len().max(1));
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
                    Err(_) => 70,
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
    let mut open = readers.len();
    while open > 0 {
        let ready: Vec<usize> = {
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
            live.into_iter()
                .zip(&fds)
                .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect()
        };
        for i in ready {
            // Read every whole line already buffered, not just the one poll woke us for.
            loop {
                let reader = readers[i].as_mut().expect("open reader");
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(|e| Error::system("reading a job's results", e))?;
                if n == 0 {
                    readers[i] = None;
                    open -= 1;
                    break;
                }
                let parsed: Line = serde_json::from_str(&line)
                    .map_err(|e| Error::system("a job's result line", std::io::Error::other(e)))?;
                done(&items[parsed.item], parsed.result);
                if !reader.buffer().contains(&b'\n') {
                    break;
                }
            }
        }
    }
    for pid in pids {
        let _ = waitpid(pid, None);
    }
    Ok(())
}

fn run_job(items: &[Item<'_>], j: usize, jobs: usize, opts: &RunOptions, out: OwnedFd) {
    let mut out = std::fs::File::from(out);
    for (i, item) in items.iter().enumerate().filter(|(i, _)| i % jobs == j) {
        let result =
            run_seed(item.scenario, item.variant, item.seed, opts).map_err(|e| e.to_string());
        let line = serde_json::to_string(&Line { item: i, result }).expect("serialisable");
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}
