//! Every control of `scenarios/controls/` as a test: each runs through the binary, as
//! `kanban-harness controls FILE`, and must come out the way its `[control]` table demands
//! (see `kanban_harness::controls`). The test process never forks: the binary does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn controls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/controls")
}

fn control(name: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .arg("controls")
        .arg(controls_dir().join(format!("{name}.toml")))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "control {name} did not hold:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("PASS {name}:")), "{stdout}");
}

/// The controls this file tests, one `#[test]` each.
macro_rules! controls {
    ($($name:ident),* $(,)?) => {
        const NAMES: &[&str] = &[$(stringify!($name)),*];
        $(#[test] fn $name() { control(&stringify!($name).replace('_', "-")); })*
    };
}

controls!(
    damaged_start_repair_after,
    injected_lost_ack,
    injected_lost_after_read,
    job_dies_mid_run,
    matrix_hazard_switched_off,
    phase_kill_cannot_fire,
    phase_kill_must_fire,
    worker_never_stops,
    writes_all_fail,
);

#[test]
fn every_control_file_has_its_test() {
    let mut files: Vec<String> = std::fs::read_dir(controls_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".toml").map(|n| n.replace('-', "_"))
        })
        .collect();
    files.sort();
    let mut tested: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    tested.sort();
    assert_eq!(
        files, tested,
        "a control file without a test, or a test without its file"
    );
}
