//! What the binary-level tests share: the workspace, and running the `kanban-harness`
//! binary there (the test process never forks: the binary's supervisor does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace folder (scenario paths in the tests are relative to it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the binary with `args` in the workspace; its output goes to the test's log.
pub fn harness(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "kanban-harness {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `replay --deterministic --check` of one seed of `scenario` (a path, relative to the
/// workspace or absolute), with `extra` arguments: the output, and its stdout as text.
#[allow(dead_code, reason = "each test binary uses its share of these helpers")]
pub fn replay_check(scenario: &str, variant: &str, seed: u64, extra: &[&str]) -> (Output, String) {
    let seed = seed.to_string();
    let mut args = vec![
        "replay",
        scenario,
        "--variant",
        variant,
        "--seed",
        &seed,
        "--deterministic",
        "--check",
    ];
    args.extend_from_slice(extra);
    let out = harness(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}
