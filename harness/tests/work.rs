//! Work floors through the binary: a worker whose every write fails with an error the
//! scenario can cause (here a sticky `DiskFull` from its first commit on) loses nothing and
//! corrupts nothing, yet the seed fails, because the worker did no work.

use std::process::Command;

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_worker_whose_writes_all_fail_trips_the_work_floor() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("starved.toml");
    std::fs::write(
        &scenario,
        "description = \"every dashboard write fails\"\nbudget_ms = 200\n\
         [board]\ntasks = 5\n\
         [[workers]]\nkind = \"gateway\"\n[[workers]]\nkind = \"dashboard\"\nedit_ms = 2\n\
         [[faults.io]]\nphase = \"commit\"\nfile = \"wal\"\nop = \"write\"\naction = \"full\"\n\
         sticky = true\nworker = \"dashboard\"\n\
         [expect.hardened]\nmax_failure_rate = 0.0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kanban-harness"))
        .current_dir(workspace())
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--seeds",
            "2",
            "--jobs",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("work: worker kind dashboard acked 0 commits (floor 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("DiskFull"),
        "the expected errors are counted: {stdout}"
    );
}
