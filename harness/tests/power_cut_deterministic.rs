//! Power cuts under the token, through the `kanban-harness` binary: a cut at an exact file
//! operation (a `power-cut` I/O fault) and timed cuts land at one step of the interleaving,
//! the page-cache model rewrites the files from the seed, and two runs of a seed give the
//! same trace, the same bytes and the same findings, a failing seed of `hazard:sync-off`
//! included.
//!
//! The test process never forks (it is multi-threaded): it runs the binary, whose
//! single-threaded supervisor forks the workers.

use std::path::Path;

mod common;

/// `replay --check` of one seed of `scenario` with its trace in `trace`: both runs must be
/// identical. Returns the trace (of the second run) and `replay`'s output.
fn replay_checked(scenario: &Path, variant: &str, seed: u64, trace: &Path) -> (String, String) {
    let (out, text) = common::replay_check(
        scenario.to_str().unwrap(),
        variant,
        seed,
        &["--trace", trace.to_str().unwrap()],
    );
    assert!(
        out.status.success() && text.lines().any(|l| l == "identical"),
        "{} {variant} seed {seed} did not replay identically:\n{text}",
        scenario.display()
    );
    (std::fs::read_to_string(trace).unwrap(), text)
}

#[test]
fn a_cut_at_a_file_operation_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::workspace().join("scenarios/power-cut-during-commit.toml");
    // Seed 2's cut keeps some unsynced writes (its randomness shows in the trace); under
    // sync-off it loses acknowledged commits: a failing verdict replays too.
    for (variant, seed, fails) in [("hardened", 2, false), ("hazard:sync-off", 2, true)] {
        let (trace, text) = replay_checked(&scenario, variant, seed, &dir.path().join("t"));
        let lines: Vec<&str> = trace.lines().collect();
        let at = (lines.iter())
            .position(|l| l.contains(" power cut 1 "))
            .unwrap_or_else(|| panic!("{variant} seed {seed}: no power cut in the trace"));
        // The worker that cut came to its point right after the faulted operation.
        assert!(lines[at - 1].ends_with(" power-cut"), "{}", lines[at - 1]);
        assert!(
            lines[at - 2].ends_with("fault=PowerCut"),
            "{}",
            lines[at - 2]
        );
        assert_eq!(text.contains(", failed"), fails, "{text}");
    }
}

#[test]
fn timed_cuts_land_at_their_logical_time_and_replay_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("timed-cuts.toml");
    std::fs::write(
        &scenario,
        r#"
description = "timed power cuts, deterministic"
budget_ms = 60

[board]
tasks = 5

[[workers]]
kind = "gateway"
tick_ms = 4
restart_ms = 2

[[workers]]
kind = "dashboard"
poll_ms = 3
edit_ms = 2
restart_ms = 2

[power]
cuts = 2
cut_at_ms = [10, 40]

[expect.hardened]
max_failure_rate = 0.0
"#,
    )
    .unwrap();
    let (trace, _) = replay_checked(&scenario, "hardened", 0, &dir.path().join("t"));
    let cuts: Vec<&str> = (trace.lines())
        .filter(|l| l.contains(" power cut "))
        .collect();
    assert_eq!(cuts.len(), 2, "{cuts:?}");
    for cut in cuts {
        let t: u64 = cut.split(' ').next().unwrap().parse().unwrap();
        assert!((10_000..60_000).contains(&t), "{cut}");
    }
}
