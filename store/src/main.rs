//! `kanban-db`: look at a board from the outside, safely, while other processes use it.
//!
//! `info` and `check` open the board read-only through the store (shared lock, no
//! maintenance, no checkpoint on close), so they never change the file and never disturb
//! the processes using it. Exit codes: 0 healthy, 1 damaged (findings printed), 2 a path
//! that cannot be used (the typed error printed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kanban_store::{Board, CheckLevel, Error, Role, StoreConfig};

/// Operator tool for kanban board databases.
#[derive(Debug, Parser)]
#[command(name = "kanban-db", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new, empty board (refuses if anything exists at the path).
    Init {
        /// Where to create it.
        db: PathBuf,
    },
    /// Show versions, journal mode, schema version, page count and WAL size.
    Info {
        /// The board.
        db: PathBuf,
    },
    /// Check integrity, foreign keys and the kanban invariants (quick check by default).
    Check {
        /// Run the full `integrity_check` (every index entry) instead of `quick_check`.
        #[arg(long)]
        full: bool,
        /// The board.
        db: PathBuf,
    },
    /// Check that this build and this file system can run boards.
    ///
    /// Runs a throw-away board through every role in a new temporary folder, inside FOLDER
    /// when given: the file system that matters is the one the boards live on.
    Selftest {
        /// Where to make the throw-away board (default: a new temporary folder).
        folder: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kanban-db: {err}");
            if err.is_damage()
                && !matches!(err, Error::NotADatabase { .. } | Error::EmptyFile { .. })
            {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

fn run(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Init { db } => {
            Board::create(&db, StoreConfig::new(Role::Worker))?;
            println!("created {}", db.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { db } => {
            println!("{}", Board::inspect(&db)?.info()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { full, db } => {
            let level = if full {
                CheckLevel::Full
            } else {
                CheckLevel::Quick
            };
            let report = Board::inspect(&db)?.check(level)?;
            if report.is_ok() {
                println!("{}: ok", db.display());
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}: damaged", db.display());
            for finding in report.findings() {
                println!("  {finding}");
            }
            Ok(ExitCode::from(1))
        }
        Command::Selftest { folder } => {
            let folder = folder.unwrap_or_else(std::env::temp_dir);
            let temp = tempfile::Builder::new()
                .prefix("kanban-selftest-")
                .tempdir_in(&folder)
                .map_err(|source| Error::Io {
                    path: folder.clone(),
                    source,
                })?;
            for line in kanban_store::selftest::run(temp.path())? {
                println!("ok  {line}");
            }
            println!("selftest passed");
            Ok(ExitCode::SUCCESS)
        }
    }
}
