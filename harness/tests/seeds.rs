//! The shipped scenarios, a few hundred seeds each, through the `kanban-harness` binary.
//!
//! The test process never forks (it is multi-threaded): it runs the binary, whose
//! single-threaded supervisor forks the workers, and reads the JSON report. Hardened runs
//! must never fail; the hazards must be caught.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `scenario` for `variant` over `seeds` seeds; returns the report's run and the
/// binary's exit code.
fn run(scenario: &str, variant: &str, seeds: u64) -> (Value, i32) {
    run_file(
        &workspace().join(format!("scenarios/{scenario}.toml")),
        variant,
        seeds,
    )
}

/// [`run`] of the scenario file at `path`.
fn run_file(path: &Path, variant: &str, seeds: u64) -> (Value, i32) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .arg("run")
        .arg(path)
        .args([
            "--variant",
            variant,
            "--seeds",
            &seeds.to_string(),
            "--jobs",
            "2",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); stdout: {stdout}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut parsed: Value = serde_json::from_str(&text).unwrap();
    let run = parsed["runs"][0].take();
    eprintln!("{} {variant}: {run}", path.display());
    (run, out.status.code().unwrap())
}

fn n(run: &Value, field: &str) -> u64 {
    run[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {run}"))
}

/// The run's faults at exact points, `(planned, armed, landed)`, checked to nest: a fault
/// lands only once armed, and is armed only if planned.
fn faults(run: &Value) -> (u64, u64, u64) {
    let counts = (
        n(run, "faults_planned"),
        n(run, "faults_armed"),
        n(run, "faults_landed"),
    );
    assert!(counts.2 <= counts.1 && counts.1 <= counts.0, "{run}");
    counts
}

/// A gateway whose only planned fault is a kill one second into a commit (which lasts
/// microseconds), killed three times at seeded moments. `scenarios/controls/` has the same
/// kill without the timed ones: 0 of 20 landed (it said 20 of 20 when armed counted).
const KILL_THAT_CANNOT_FIRE: &str = r#"description = "a commit phase kill a second in, and timed kills"
seeds = 20
budget_ms = 200

[board]
tasks = 10

[[workers]]
kind = "gateway"
tick_ms = 5
notify_ms = 5

[faults]
kills = 3

[[faults.phase_kills]]
phase = "commit"
worker = "gateway"
max_nth = 3
delay_us = [1000000, 1000000]

[expect.hardened]
max_failure_rate = 0.0
"#;

/// A phase kill armed and cancelled (the phase ended before its delay) did not land: the
/// next incarnation gets it again. Deterministic seed 1 of [`KILL_THAT_CANNOT_FIRE`]: the
/// gateway starts 4 times and arms the kill in each (at least two must), and it never
/// fires (the harness that noted a kill as landed when armed wrote one `p`, and gave it to
/// no later start).
#[test]
fn an_armed_and_cancelled_phase_kill_is_given_to_every_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retry.toml");
    std::fs::write(&path, KILL_THAT_CANNOT_FIRE).unwrap();
    let artifacts = dir.path().join("artifacts");
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .args([
            "replay",
            "--variant",
            "hardened",
            "--seed",
            "1",
            "--deterministic",
        ])
        .arg(&path)
        .arg("--artifacts")
        .arg(&artifacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(1 armed, 0 landed)"), "{stdout}");
    let restarts: usize = stdout
        .split(" restarts")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no restart count in {stdout}"));
    let notes = std::fs::read_to_string(artifacts.join("retry-hardened-1/faults-w0.txt")).unwrap();
    let armed = notes.lines().filter(|l| *l == "a0").count();
    assert_eq!(
        notes.lines().count(),
        armed,
        "only armed, never fired: {notes}"
    );
    assert!(
        armed >= 2 && armed <= restarts + 1,
        "{restarts} restarts: {notes}"
    );
}

/// Nothing corrupt, lost, broken or erroneous in any seed of `run`. (`failed` and the exit
/// code also count `work` findings: seeds a loaded machine starved of work, which each
/// scenario's `[expect.hardened]` bounds with a measured margin; `verify` judges those.)
fn assert_sound(run: &Value) {
    for kind in ["corrupt", "lost_acked", "invariant", "worker_error"] {
        assert_eq!(n(run, kind), 0, "{kind}: {run}");
    }
    assert_eq!(seeds_with(run, "quarantine"), 0, "quarantine: {run}");
}

#[test]
fn issue_33169_hardened_never_fails() {
    let (run, code) = run("issue-33169", "hardened", 200);
    assert_eq!(n(&run, "seeds"), 200);
    assert_sound(&run);
    assert!(code <= 1);
}

#[test]
fn issue_33169_naive_shows_the_reported_damage() {
    // The scenario's bar (0.70): observed 0.87 of 200 seeds free-running.
    let (run, code) = run("issue-33169", "naive", 40);
    assert!(n(&run, "damaged") >= 28, "{run}");
    assert_eq!(code, 1);
}

#[test]
fn restart_storm_hardened_survives_kills_inside_commits_and_checkpoints() {
    let (run, _) = run("restart-storm", "hardened", 200);
    assert_sound(&run);
    assert!(n(&run, "kills") >= 200 * 10, "{run}");
    assert!(n(&run, "restarts") >= 200 * 10, "{run}");
    // Both declared phase kills are planned in every seed, and retried at each restart
    // until they fire; nearly all do (99 of 100 over 50 seeds).
    let (planned, _, landed) = faults(&run);
    assert_eq!(planned, 200 * 2, "{run}");
    assert!(landed * 10 >= planned * 8, "{run}");
}

#[test]
fn restart_storm_catches_deleting_sidecars_after_a_crash() {
    let (run, _) = run("restart-storm", "hazard:delete-sidecars-after-crash", 30);
    assert!(n(&run, "damaged") >= 3, "{run}");
}

#[test]
fn backup_storm_caps_the_hardened_quarantine_and_shows_the_naive_storm() {
    let (hardened, _) = run("backup-storm", "hardened", 10);
    assert!(n(&hardened, "backups_max") <= 5, "{hardened}");
    assert!(n(&hardened, "backups_max") >= 1, "{hardened}");
    let (naive, _) = run("backup-storm", "naive", 10);
    assert!(n(&naive, "backups_max") >= 20, "{naive}");
}

#[test]
fn the_gateway_repairs_index_damage_at_start_even_when_killed_inside_the_repair() {
    let (run, _) = run("index-damage-at-start", "hardened", 60);
    assert_sound(&run);
    // A kill planned inside each seed's repair; it fires when the repair outlasts its delay
    // (78% of 50 seeds), and each that fires is a restart of its own.
    let (planned, _, landed) = faults(&run);
    assert_eq!(planned, 60, "{run}");
    assert!(landed * 2 >= planned, "{run}");
    assert!(n(&run, "restarts") >= landed, "{run}");
    // The same board with the gateway told to go on, as upstream's did: every seed ends
    // with the damage still there.
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        std::fs::read_to_string(workspace().join("scenarios/index-damage-at-start.toml"))
            .unwrap()
            .replacen(
                "kind = \"gateway\"\n",
                "kind = \"gateway\"\non_index_damage = \"continue\"\n",
                1,
            );
    let path = dir.path().join("continue.toml");
    std::fs::write(&path, scenario).unwrap();
    let (run, _) = run_file(&path, "hardened", 20);
    assert_eq!(n(&run, "corrupt"), 20, "{run}");
}

#[test]
fn command_client_acks_are_checked_and_kept() {
    let (run, _) = run("command-client", "hardened", 30);
    assert_sound(&run);
    assert!(n(&run, "acked") > 0, "{run}");
}

/// An I/O-shim scenario, hardened: sound, and at least 90% of planned faults landed (an
/// I/O fault is armed only when it acts: armed = landed).
fn hardened_with_faults_landing(scenario: &str, seeds: u64) {
    let (run, _) = run(scenario, "hardened", seeds);
    assert_sound(&run);
    let (planned, armed, landed) = faults(&run);
    assert_eq!(armed, landed, "{run}");
    assert!(planned >= seeds && landed * 10 >= planned * 9, "{run}");
}

#[test]
fn kill_during_checkpoint_lands_and_loses_nothing() {
    hardened_with_faults_landing("kill-during-checkpoint", 150);
}

#[test]
fn kill_during_journal_mode_lands_and_loses_nothing() {
    hardened_with_faults_landing("kill-during-journal-mode", 150);
}

#[test]
fn kill_during_commit_lands_and_loses_nothing() {
    hardened_with_faults_landing("kill-during-commit", 150);
}

#[test]
fn io_errors_land_and_lose_nothing() {
    hardened_with_faults_landing("io-errors", 150);
}

#[test]
fn disk_full_lands_and_loses_nothing() {
    hardened_with_faults_landing("disk-full", 150);
}

#[test]
fn a_stalled_writer_loses_nothing() {
    hardened_with_faults_landing("stalled-writer", 60);
}

#[test]
fn health_checks_and_forks_are_safe_hardened_and_caught_as_hazards() {
    for scenario in ["health-checks", "fork-agent"] {
        let (run, _) = run(scenario, "hardened", 60);
        assert_sound(&run);
    }
    let (copies, _) = run("health-checks", "hazard:copy-sidecars-on-check", 16);
    assert!(n(&copies, "damaged") >= 1, "{copies}");
    let (forks, _) = run("fork-agent", "hazard:connection-across-fork", 16);
    assert!(n(&forks, "damaged") >= 1, "{forks}");
}

/// Seeds of `run` with findings of `kind` (any of [`kanban_harness::scenario::KINDS`]).
fn seeds_with(run: &Value, kind: &str) -> u64 {
    run["seeds_with"][kind]
        .as_u64()
        .unwrap_or_else(|| panic!("seeds_with.{kind} in {run}"))
}

/// A scenario of the store's own maintenance (issue 13), hardened: sound, and every
/// quarantine copy whole, a copy kept by every rebuild.
fn hardened_keeps_whole_copies(scenario: &str, seeds: u64) -> Value {
    let (run, _) = run(scenario, "hardened", seeds);
    assert_sound(&run);
    assert_eq!(seeds_with(&run, "quarantine"), 0, "{run}");
    run
}

#[test]
fn kill_during_quarantine_lands_and_keeps_only_whole_copies() {
    let run = hardened_keeps_whole_copies("kill-during-quarantine", 30);
    let (planned, _, landed) = faults(&run);
    assert!(landed * 2 >= planned, "{run}");
}

#[test]
fn repair_at_cap_keeps_a_copy_of_what_it_replaces() {
    hardened_keeps_whole_copies("repair-at-cap", 30);
}

#[test]
fn unique_index_damage_stops_the_gateway_and_the_repair_rebuilds() {
    hardened_keeps_whole_copies("unique-index-damage", 30);
}

#[test]
fn a_symlinked_board_is_one_board_and_raw_path_siblings_are_caught() {
    hardened_keeps_whole_copies("symlinked-board", 30);
    let (raw, _) = run("symlinked-board", "hazard:raw-path-siblings", 30);
    assert!(n(&raw, "lost_acked") >= 5, "{raw}");
}

/// The matrix's shape (hazards, scenarios, verdicts; no numbers) is a snapshot: a hazard
/// that stops being detected, or a new hazard without a scenario, changes it.
#[test]
fn the_hazard_matrix_detects_every_hazard_kills_can_show() {
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .args(["matrix", "--seeds", "200", "--shape", "--jobs", "2"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    insta::assert_snapshot!(table);
    assert_eq!(out.status.code(), Some(0), "{table}");
}

/// Single-writer mode under retries, a stalled gateway and a hostile client (issue 14):
/// hardened, every retried request is applied once and nothing acked is lost, while the
/// flooder's requests are answered and its oversized and silent connections are closed (each
/// counted when the flooder saw it); without request ids, the retries are duplicates.
///
/// Failed before (the dashboards sent no request ids and the gateway recorded none): the
/// hardened run showed the duplicates the hazard now shows.
#[test]
fn single_writer_retries_apply_each_request_once_and_forget_request_ids_duplicates() {
    let (hardened, _) = run("single-writer-retries", "hardened", 16);
    assert_sound(&hardened);
    assert_eq!(seeds_with(&hardened, "duplicate"), 0, "{hardened}");
    for tally in [
        "retry",
        "flood-answered",
        "oversize-closed",
        "silent-closed",
    ] {
        let n = hardened["tallies"][tally].as_u64();
        assert!(n > Some(0), "{tally}: {hardened}");
    }
    let (forgot, _) = run("single-writer-retries", "hazard:forget-request-ids", 16);
    assert!(seeds_with(&forgot, "duplicate") >= 4, "{forgot}");
}
