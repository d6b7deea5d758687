//! Deterministic mode, through the `kanban-harness` binary: same seed, same trace, same
//! bytes, same findings; the naive store caught; failing seeds shrunk; stuckness judged in
//! logical steps (a livelock is a finding, a worker blocked in wall time an error).
//!
//! The test process never forks (it is multi-threaded): it runs the binary, whose
//! single-threaded supervisor forks the workers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use kanban_harness::supervisor::Outcome;
use serde_json::Value;

mod common;
use common::{harness, workspace};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `replay --check` of one seed: exit 0 and "identical" means both runs gave the same
/// trace digest and the same database digest.
fn replays_identically(scenario: &str, variant: &str, seed: u64) {
    let (out, text) =
        common::replay_check(&format!("scenarios/{scenario}.toml"), variant, seed, &[]);
    assert!(
        out.status.success() && text.contains("identical"),
        "{scenario} {variant} seed {seed} did not replay identically:\n{text}"
    );
}

#[test]
fn seeds_of_many_scenarios_replay_byte_for_byte() {
    for (scenario, variant, seeds) in [
        ("issue-33169", "hardened", &[0, 1][..]),
        ("issue-33169", "naive", &[2]),
        ("restart-storm", "hardened", &[0]),
        ("kill-during-checkpoint", "hardened", &[0]),
        ("io-errors", "hardened", &[0]),
        ("stalled-writer", "hardened", &[0]),
        ("fork-agent", "hardened", &[0]),
    ] {
        for &seed in seeds {
            replays_identically(scenario, variant, seed);
        }
    }
}

#[test]
fn two_seeds_give_two_interleavings() {
    let digest = |seed: &str| {
        let out = harness(&[
            "replay",
            "scenarios/issue-33169.toml",
            "--variant",
            "hardened",
            "--seed",
            seed,
            "--deterministic",
        ]);
        stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("deterministic: ").map(str::to_string))
            .expect("a digest line")
    };
    assert_ne!(digest("0"), digest("1"));
}

#[test]
fn the_first_lines_of_a_tiny_trace_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let out = harness(&[
        "replay",
        "scenarios/regressions/issue-33169-naive-lost-commit.toml",
        "--variant",
        "hardened",
        "--seed",
        "0",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let head: Vec<&str> = text.lines().take(60).collect();
    insta::assert_snapshot!(head.join("\n"));
}

/// Runs `variant` of issue-33169 deterministically over `seeds`; the report's run.
fn run_issue(variant: &str, seeds: u64, strategy: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    harness(&[
        "run",
        "scenarios/issue-33169.toml",
        "--variant",
        variant,
        "--seeds",
        &seeds.to_string(),
        "--deterministic",
        "--strategy",
        strategy,
        "--report",
        report.to_str().unwrap(),
    ]);
    let mut parsed: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    parsed["runs"][0].take()
}

#[test]
fn deterministic_naive_fails_and_hardened_does_not() {
    for strategy in ["random-walk", "pct"] {
        let naive = run_issue("naive", 20, strategy);
        assert!(
            naive["failed"].as_u64().unwrap() >= 10,
            "{strategy}: {naive}"
        );
        let hardened = run_issue("hardened", 40, strategy);
        assert_eq!(
            hardened["failed"].as_u64().unwrap(),
            0,
            "{strategy}: {hardened}"
        );
    }
}

#[test]
fn the_shrunk_regression_fails_naive_and_passes_hardened() {
    let out = harness(&["verify", "scenarios/regressions"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("PASS issue-33169-naive-lost-commit naive: 1 of 1"));
}

#[test]
fn shrink_halves_a_failing_seed_and_the_result_replays() {
    let dir = tempfile::tempdir().unwrap();
    let shrunk = dir.path().join("shrunk.toml");
    let out = harness(&[
        "shrink",
        "scenarios/issue-33169.toml",
        "--variant",
        "naive",
        "--seed",
        "0",
        "--out",
        shrunk.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // "LostAcked kept after N tries: BEFORE -> AFTER steps, ..."
    let text = stdout(&out);
    let steps: Vec<u64> = text
        .lines()
        .find(|l| l.contains(" kept after "))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split(" steps").next())
        .map(|l| l.split(" -> ").map(|n| n.parse().unwrap()).collect())
        .expect("a size line");
    assert!(steps[1] * 2 <= steps[0], "{text}");
    assert!(
        text.contains("hardened on the shrunk scenario: passes"),
        "{text}"
    );
    // The regression pins the kind it was shrunk for, not any failure.
    let written = std::fs::read_to_string(&shrunk).unwrap();
    assert!(
        written.contains("[expect.naive.min_rate]\nlost_acked = 1.0"),
        "{written}"
    );
    assert!(!written.contains("min_failure_rate"), "{written}");
    let path = shrunk.to_str().unwrap();
    let check = harness(&[
        "replay",
        path,
        "--variant",
        "naive",
        "--seed",
        "0",
        "--check",
    ]);
    assert!(stdout(&check).contains("identical"));
    assert!(stdout(&check).contains("failed"));
    let verify = harness(&["verify", path]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn command_workers_are_refused_deterministic_mode() {
    let out = harness(&[
        "replay",
        "scenarios/command-client.toml",
        "--variant",
        "hardened",
        "--seed",
        "0",
        "--deterministic",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be scheduled deterministically"));
}

/// `replay --check` compares findings too: two runs with the same digests but different
/// findings are not identical (the old check compared the digests only).
#[test]
fn replay_check_catches_findings_that_differ() {
    let digest = Some("ab".to_string());
    let one = Outcome {
        trace_digest: digest.clone(),
        db_digest: digest,
        ..Outcome::default()
    };
    assert!(one.replay_diff(&one.clone()).is_empty());
    let mut two = one.clone();
    two.findings.lost_acked.push("task 3 moved to done".into());
    assert_eq!(
        one.replay_diff(&two),
        ["only in run 2: lost_acked: task 3 moved to done"]
    );
}

/// A deterministic scenario of `budget_ms` with a gateway and a dashboard, and `extra`
/// lines (faults), in `dir`.
fn short_scenario(dir: &Path, budget_ms: u64, extra: &str) -> PathBuf {
    let path = dir.join("short.toml");
    std::fs::write(
        &path,
        format!(
            "description = \"a short deterministic run\"\nbudget_ms = {budget_ms}\n\
             schedule = \"deterministic\"\n{extra}\n\
             [[workers]]\nkind = \"gateway\"\n[[workers]]\nkind = \"dashboard\"\n\
             [expect.hardened]\nmax_failure_rate = 0.0\n"
        ),
    )
    .unwrap();
    path
}

/// A worker stalled past the budget takes no steps, so it is not stuck: it stops when it
/// wakes. (The old detector counted logical *time* after the budget and called it stuck.)
#[test]
fn a_stall_that_outlasts_the_budget_is_not_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(
        dir.path(),
        300,
        "[faults]\nstalls = 2\nstall_ms = [3000, 3000]",
    );
    let out = harness(&["run", scenario.to_str().unwrap(), "--seeds", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// A worker that never stops (the control makes every worker ignore the stop flag) is a
/// `stuck` finding once the budget's margin of logical steps is spent.
#[test]
fn a_worker_that_never_stops_is_stuck_after_the_step_budget() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = short_scenario(dir.path(), 100, "");
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .env(kanban_harness::token::CONTROL_IGNORE_STOP, "1")
        .args(["run", scenario.to_str().unwrap(), "--seeds", "2"])
        .args(["--report", report.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let parsed: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let run = &parsed["runs"][0];
    assert_eq!(run["failed"], 2, "{run}");
    assert!(
        run["sample_findings"][0]
            .as_str()
            .unwrap()
            .starts_with("worker_error: stuck: worker "),
        "{run}"
    );
}

/// A worker blocked outside a scheduling point (here: stopped by the test) holds the token
/// past the wall-clock cap: the seed could not be run, so the run is an error (exit 2) with
/// the trace's tail, not a finding (wall time is no part of a verdict), and it ends
/// instead of hanging.
#[test]
fn a_worker_stuck_outside_the_scheduler_is_an_error_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long.toml");
    std::fs::write(
        &scenario,
        "description = \"a long deterministic run\"\nbudget_ms = 3000\nschedule = \"deterministic\"\n\
         [[workers]]\nkind = \"gateway\"\n[[workers]]\nkind = \"dashboard\"\n\
         [expect.hardened]\nmax_failure_rate = 0.0\n",
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--seed",
            "0",
            "--jobs",
            "1",
        ])
        .args(["--stuck-ms", "300", "--report", report.to_str().unwrap()])
        .spawn()
        .unwrap();
    // The binary forks a job process, which forks the workers: stop a grandchild.
    let worker = (0..200)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            descendants(child.id())
                .into_iter()
                .find(|&(_, depth)| depth == 2)
        })
        .expect("a worker process")
        .0;
    // SAFETY: plain kill(2) of a process this test started (indirectly).
    unsafe { libc::kill(worker as i32, libc::SIGSTOP) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    let parsed: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let run = &parsed["runs"][0];
    assert_eq!(
        (&run["seeds"], &run["failed"]),
        (&0.into(), &0.into()),
        "{run}"
    );
    assert!(
        run["errors"][0]
            .as_str()
            .unwrap()
            .contains("held the token for 300ms"),
        "{run}"
    );
}

/// Processes below `root`, with their depth (1: children).
fn descendants(root: u32) -> Vec<(u32, u32)> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![(root, 0)];
    while let Some((p, depth)) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p {
                out.push((child, depth + 1));
                frontier.push((child, depth + 1));
            }
        }
    }
    out
}
