//! The `inject` hook the controls stand on: a loss deleted from the board after the run,
//! before the checks, must come out classified as what it is, in every seed: an acked
//! event no reader saw as `lost_acked` (and nothing else lost), one a reader saw as
//! `lost_after_read` too. Without it nothing would prove that those findings can fire on
//! a real run. A value the hook does not know is a scenario error naming the key.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A hardened scenario without faults (so nothing else is lost), with `inject` and the
/// readers' intervals given.
fn scenario(dir: &Path, inject: &str, read_ms: u64) -> std::path::PathBuf {
    let path = dir.join(format!("{inject}.toml"));
    let text = format!(
        r#"description = "control: inject {inject}"
budget_ms = 200
inject = "{inject}"

[board]
tasks = 10

[[workers]]
kind = "gateway"
tick_ms = 10
notify_ms = {read_ms}

[[workers]]
kind = "dashboard"
poll_ms = {read_ms}
request_ms = 5
edit_ms = 3

[expect.hardened]
max_failure_rate = 0.0
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `path` hardened over `seeds` seeds; the report's run, and the exit code.
fn run(path: &Path, seeds: u64) -> (Value, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .arg("run")
        .arg(path)
        .args(["--variant", "hardened", "--seeds", &seeds.to_string()])
        .args(["--jobs", "2", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let run = std::fs::read_to_string(&report)
        .ok()
        .map(|t| serde_json::from_str::<Value>(&t).unwrap()["runs"][0].take())
        .unwrap_or(Value::Null);
    (run, out.status.code().unwrap(), stderr)
}

fn n(run: &Value, field: &str) -> u64 {
    run[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {run}"))
}

#[test]
fn an_injected_lost_ack_is_lost_acked_in_every_seed() {
    let dir = tempfile::tempdir().unwrap();
    // Readers that never come round: no event is read, so the deleted one was not.
    let (run, code, stderr) = run(&scenario(dir.path(), "delete-acked", 1_000_000), 4);
    assert_eq!(code, 1, "{run} {stderr}");
    assert_eq!(n(&run, "lost_acked"), 4, "{run}");
    assert_eq!(n(&run, "lost_after_read"), 0, "{run}");
    assert_eq!(n(&run, "corrupt") + n(&run, "worker_error"), 0, "{run}");
}

#[test]
fn an_injected_loss_a_reader_saw_is_lost_after_read_in_every_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (run, code, stderr) = run(&scenario(dir.path(), "delete-read", 2), 4);
    assert_eq!(code, 1, "{run} {stderr}");
    assert_eq!(n(&run, "lost_after_read"), 4, "{run}");
    assert_eq!(n(&run, "lost_acked"), 4, "{run}");
    assert_eq!(n(&run, "corrupt") + n(&run, "worker_error"), 0, "{run}");
}

#[test]
fn the_same_scenario_without_inject_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "delete-read", 2);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("inject = \"delete-read\"\n", "")).unwrap();
    let (run, code, stderr) = run(&path, 4);
    assert_eq!((code, n(&run, "failed")), (0, 0), "{run} {stderr}");
}

#[test]
fn an_unknown_inject_value_is_a_scenario_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, code, stderr) = run(&scenario(dir.path(), "delete-everything", 2), 1);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inject"), "{stderr}");
    assert!(stderr.contains("delete-everything"), "{stderr}");
}
