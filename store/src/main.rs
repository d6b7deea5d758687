//! `kanban-db`: look at a board from the outside, safely, while other processes use it.
//!
//! `info` and `check` open the board read-only through the store (shared lock, no
//! maintenance, no checkpoint on close), so they never change the file and never disturb
//! the processes using it. `repair`, `backup` and `quarantine` act on it the same way: through
//! SQLite and our lock file, never by copying or renaming its files. Exit codes: 0 healthy
//! (or repaired), 1 damaged (findings printed), 2 a path that cannot be used (the typed error
//! printed), 3 another maintenance or open sessions kept the board (who and since when, if
//! known).
//!
//! Layer: CLI (the layer order is in `store/ARCHITECTURE.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kanban_store::{Board, CheckLevel, DamagePolicy, Error, OnDamage, Role, StoreConfig};
use kanban_store::{Scope, repair_within};

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
    /// Repair a damaged board, safely while other processes use it: REINDEX when only
    /// indexes are damaged, else rebuild what is readable (the damaged board is kept in
    /// quarantine first). Prints what it did and what it could not save.
    Repair {
        /// The board.
        db: PathBuf,
        /// How long to wait for other sessions to let go, in seconds.
        #[arg(long, default_value_t = 30)]
        wait: u64,
        /// Only REINDEX, which loses nothing: damage beyond indexes is reported (exit 1) and
        /// the board left as it was.
        #[arg(long)]
        indexes_only: bool,
    },
    /// Write a consistent copy of the board to DEST (a new file), online.
    Backup {
        /// The board.
        db: PathBuf,
        /// Where to write the copy (must not exist).
        dest: PathBuf,
    },
    /// The copies of damaged boards kept in `<db>.quarantine/`.
    ///
    /// Only files named as the store names its copies are listed or removed; a folder
    /// that is a symbolic link (or not a folder) is refused (exit 2) and left alone.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
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

#[derive(Debug, Subcommand)]
enum QuarantineAction {
    /// List the kept copies, oldest first, with their sizes.
    List {
        /// The board.
        db: PathBuf,
    },
    /// Remove kept copies, keeping the N newest (by modification time, then name).
    Prune {
        /// The board.
        db: PathBuf,
        /// How many of the newest copies to keep; 0 removes them all.
        #[arg(long, default_value_t = 1)]
        keep: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kanban-db: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The exit code for `err`: 3 another maintenance holds the board, 1 a damaged board, 2
/// anything else (a path that holds no board, the file system, locks, usage).
fn exit_code(err: &Error) -> u8 {
    if matches!(err, Error::MaintenanceBusy { .. }) {
        3
    } else if err.is_damage()
        && !matches!(err, Error::NotADatabase { .. } | Error::EmptyFile { .. })
    {
        1
    } else {
        2
    }
}

/// What an operator can do about what a check found (and what a gateway would do).
fn next_step(report: &kanban_store::CheckReport) -> &'static str {
    let duplicates = report
        .integrity
        .iter()
        .any(|f| f.starts_with("non-unique entry in index"));
    match DamagePolicy::default().reaction(report) {
        Some(OnDamage::Repair) if duplicates => {
            "next: a unique index lists one key twice: `kanban-db repair` rebuilds the index \
             (REINDEX) if the table is sound; if the table itself holds the key twice, it keeps \
             a copy of this board in quarantine and rebuilds it, keeping the first row of each \
             key; a gateway stops on duplicate rows until then"
        }
        Some(OnDamage::Repair) => {
            "next: only indexes are damaged: `kanban-db repair` rebuilds them (REINDEX), losing \
             nothing; a gateway does it at its start"
        }
        _ => {
            "next: `kanban-db repair` rebuilds what can be read and keeps a copy of this board \
             in quarantine; a gateway stops on this damage until then"
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
        Command::Check { full, db } => check(&db, full),
        Command::Repair {
            db,
            wait,
            indexes_only,
        } => repair(&db, wait, indexes_only),
        Command::Backup { db, dest } => {
            Board::inspect(&db)?.backup_to(&dest)?;
            println!("{} -> {}", db.display(), dest.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            action: QuarantineAction::List { db },
        } => quarantine_list(&db),
        Command::Quarantine {
            action: QuarantineAction::Prune { db, keep },
        } => quarantine_prune(&db, keep),
        Command::Selftest { folder } => selftest(folder),
    }
}

/// `kanban-db check`.
fn check(db: &Path, full: bool) -> Result<ExitCode, Error> {
    let level = if full {
        CheckLevel::Full
    } else {
        CheckLevel::Quick
    };
    let report = Board::inspect(db)?.check(level)?;
    if report.is_ok() {
        println!("{}: ok", db.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: damaged", db.display());
    for finding in report.findings() {
        println!("  {finding}");
    }
    println!("{}", next_step(&report));
    Ok(ExitCode::from(1))
}

/// `kanban-db repair`.
fn repair(db: &Path, wait: u64, indexes_only: bool) -> Result<ExitCode, Error> {
    let mut cfg = StoreConfig::new(Role::Gateway);
    cfg = cfg.lock_timeout(std::time::Duration::from_secs(wait));
    let scope = match indexes_only {
        true => Scope::Indexes,
        false => Scope::Rebuild,
    };
    let report = repair_within(db, &cfg, scope)?;
    print_repair(db, &report);
    Ok(if report.after.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `kanban-db quarantine list`.
fn quarantine_list(db: &Path) -> Result<ExitCode, Error> {
    let survey = kanban_store::quarantine::survey(db)?;
    for copy in &survey.copies {
        let size = std::fs::symlink_metadata(copy).map_or(0, |m| m.len());
        println!("{}  {size} bytes", copy.display());
    }
    println!("{} copies", survey.copies.len());
    if survey.others > 0 {
        println!("{} other entries left alone", survey.others);
    }
    Ok(ExitCode::SUCCESS)
}

/// `kanban-db quarantine prune`.
fn quarantine_prune(db: &Path, keep: usize) -> Result<ExitCode, Error> {
    let removed = kanban_store::quarantine::prune(db, keep)?;
    for copy in &removed {
        println!("removed {}", copy.display());
    }
    println!(
        "{} removed, {} kept",
        removed.len(),
        kanban_store::quarantine::list(db)?.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kanban-db selftest`.
fn selftest(folder: Option<PathBuf>) -> Result<ExitCode, Error> {
    let folder = folder.unwrap_or_else(std::env::temp_dir);
    let temp = tempfile::Builder::new()
        .prefix("kanban-selftest-")
        .tempdir_in(&folder)
        .map_err(|source| Error::Io {
            path: folder.clone(),
            source,
        })?;
    for line in kanban_store::selftest(temp.path())? {
        println!("ok  {line}");
    }
    println!("selftest passed");
    Ok(ExitCode::SUCCESS)
}

/// What a repair did, for the operator.
fn print_repair(db: &std::path::Path, report: &kanban_store::RepairReport) {
    use kanban_store::RepairAction;
    let what = match report.action {
        RepairAction::Healthy => "healthy: nothing to repair",
        RepairAction::Reindexed => {
            "repaired in place: the damage was confined to indexes (REINDEX)"
        }
        RepairAction::Rebuilt => "rebuilt from what could be read",
    };
    println!("{}: {what}", db.display());
    for finding in report.before.findings() {
        println!("  before: {finding}");
    }
    for s in &report.salvaged {
        println!(
            "  {}: {} rows saved, {} lost{}, {} changed to fit, {} restored",
            s.table,
            s.copied,
            s.lost,
            if s.uncounted {
                " (or more: no whole index to count them by)"
            } else {
                ""
            },
            s.changed,
            s.added
        );
    }
    if let Some(q) = &report.quarantined {
        println!("  the damaged board: {q}");
    }
    for finding in report.after.findings() {
        println!("  still: {finding}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_exits_2_damage_1() {
        let path = || PathBuf::from("/boards/kanban.db");
        for (err, code) in [
            (
                Error::FileSystemFailure {
                    path: path(),
                    detail: "OFD locks do not hold".into(),
                },
                2,
            ),
            (
                Error::UnsupportedFileSystem {
                    path: path(),
                    fs: "nfs (magic 0x6969)".into(),
                },
                2,
            ),
            (
                Error::UnsafeLockFile {
                    path: path(),
                    why: "a symlink".into(),
                },
                2,
            ),
            (
                Error::HardLinked {
                    path: path(),
                    links: 2,
                },
                2,
            ),
            (
                Error::UnknownSqliteVersion {
                    version: "-1".into(),
                },
                2,
            ),
            (Error::NotADatabase { path: path() }, 2),
            (
                Error::Corrupt {
                    path: path(),
                    detail: "wrong # of entries in index idx_events_run".into(),
                },
                1,
            ),
            (
                Error::MaintenanceBusy {
                    path: path(),
                    holder: None,
                    waited_ms: 0,
                },
                3,
            ),
        ] {
            assert_eq!(exit_code(&err), code, "{err}");
        }
    }
}
