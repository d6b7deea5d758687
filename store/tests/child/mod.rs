//! Spawning child processes from a test: the test binary re-executes itself.
//!
//! Tests never `fork()` (the test harness is multi-threaded); they start a fresh copy of
//! their own binary that runs one `#[ignore]`d entry test, selected with `--exact`, with its
//! instructions in environment variables. The entry test returns at once when the
//! variables are absent, so a plain `cargo test -- --ignored` is harmless.

use std::process::Command;

/// The environment variable that tells an entry test it is a child.
pub const ROLE: &str = "KANBAN_TEST_CHILD";

/// Starts the entry test `entry` of this binary as a child process with `env` (stdout and
/// stderr piped). `entry` is the test's full name in the binary, `<module>::<fn>`.
pub fn spawn(entry: &str, role: &str, env: &[(&str, String)]) -> std::process::Child {
    command(entry, role, env).spawn().expect("spawn the child")
}

/// The command [`spawn`] runs, for a caller that changes it first (another user, say).
pub fn command(entry: &str, role: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        entry,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE, role)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// This process's child role, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}
