//! `bench-worker`: one child process of the `multi_process` benchmark.
//!
//! The benchmark starts it with `fork`+`exec` (never a bare `fork` of the bench process) as
//! `bench-worker raw|hardened writer|reader DB COUNT NAME`: it opens its own session on the
//! board, does `COUNT` claim transactions (writer) or event-log polls (reader), and exits 0;
//! on any error it prints it and exits 1. See `kanban_benches::worker_main`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match kanban_benches::worker_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench-worker: {message}");
            ExitCode::FAILURE
        }
    }
}
