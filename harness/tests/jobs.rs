//! Seeds cannot vanish: a job process that dies mid-run makes the run an error (exit 2)
//! naming the seeds it never reported, and a run of no seeds meets no expectation.
//!
//! The test process never forks (it is multi-threaded): it runs the binary, whose top
//! process forks the jobs; the hidden `--control-job-dies-after N` makes job 0 `_exit(70)`
//! after reporting N seeds.

use std::path::{Path, PathBuf};

use kanban_harness::report::RunSummary;
use kanban_harness::scenario::{Expect, Variant};

mod common;
use common::harness;

/// A short scenario every seed of which passes, in `dir`.
fn tiny(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        "description = \"a short run\"\nbudget_ms = 100\n\
         [board]\ntasks = 5\n\
         [[workers]]\nkind = \"gateway\"\n\
         [expect.hardened]\nmax_failure_rate = 0.0\n",
    )
    .unwrap();
    path
}

#[test]
fn a_job_that_dies_mid_run_is_an_error_naming_the_lost_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let path = scenario.to_str().unwrap();
    let args = ["run", path, "--seeds", "6", "--jobs", "2"];
    let whole = harness(&args);
    assert_eq!(
        whole.status.code(),
        Some(0),
        "the control's scenario passes"
    );
    // Job 0 owns seeds 0, 2 and 4: it reports seed 0, then dies.
    let out = harness(&[&args[..], &["--control-job-dies-after", "1"]].concat());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "job 0 exited with 70 (a panic) without reporting 2 of its seeds: \
             tiny hardened seed 2, tiny hardened seed 4"
        ),
        "{stderr}"
    );
}

#[test]
fn verify_with_a_job_dead_before_its_first_seed_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let path = scenario.to_str().unwrap();
    let out = harness(&[
        "verify",
        path,
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--control-job-dies-after",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tiny hardened seed 0, tiny hardened seed 1"),
        "{stderr}"
    );
}

#[test]
fn a_run_of_no_seeds_meets_no_expectation() {
    let run = RunSummary::new("tiny", Variant::Hardened);
    let expect = Expect {
        max_failure_rate: Some(0.0),
        ..Expect::default()
    };
    assert_eq!(run.misses(&expect), ["0 seeds run"]);
}
