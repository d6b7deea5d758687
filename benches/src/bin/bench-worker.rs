//! `bench-worker`: one child process of the `multi_process` benchmark.
//!
//! The benchmark starts it with `fork`+`exec` (never a bare `fork` of the bench process) as
//! `bench-worker raw|hardened|single_writer writer|reader|gateway DB FIRST COUNT NAME`: a
//! writer or reader opens its own session on the board, does `COUNT` comment transactions
//! (writer) or event-log polls (reader), and exits 0; a gateway (`single_writer` only) serves
//! the board's socket until its standard input closes. On any error it prints it and exits
//! 1. See `kanban_benches::worker_main`.

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
