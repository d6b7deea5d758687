//! `kanban-harness`: run seeded multi-process fault scenarios against the kanban store.
//!
//! Exit codes: 0 when every seed passed (or, for `verify`, every expectation held), 1 when
//! any failed, 2 for bad usage, an unreadable scenario, or a run that could not judge every
//! seed planned for it (a job that died, a seed that could not run).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kanban_harness::Result;
use kanban_harness::scenario::{StrategyName, Variant};
use kanban_harness::supervisor::RunOptions;

use cli::matrix::{MatrixRows, matrix, matrix_hazards};

/// Multi-process fault harness for the kanban store.
#[derive(Debug, Parser)]
#[command(name = "kanban-harness", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios over seeds and print a summary table.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Variants to run (default: those the scenario declares): hardened, naive,
        /// hazard:<name>.
        #[arg(long = "variant")]
        variants: Vec<String>,
        #[command(flatten)]
        seeds: SeedArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Run every scenario for the variants and seeds it declares and check its expectations.
    Verify {
        /// Scenario files or folders (default: scenarios/ and scenarios/regressions/).
        paths: Vec<PathBuf>,
        /// Seeds per variant, instead of each scenario's own number (except in scenarios
        /// with `pin_seeds`: regressions pinned to the seed that shows them).
        #[arg(long)]
        seeds: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Rerun one seed verbosely: its plan, its workers' logs, its findings.
    Replay {
        #[command(flatten)]
        one: OneSeed,
        /// Keep the seed's files here (board, ledgers, worker logs), failing or not.
        #[arg(long)]
        artifacts: Option<PathBuf>,
        /// Deterministic mode: write the trace (one line per scheduling point) here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Deterministic mode: run the seed twice; exit 0 only if both runs give the same
        /// trace digest, the same database digest and the same findings.
        #[arg(long)]
        check: bool,
    },
    /// Shrink a failing seed (deterministic mode) to a smaller scenario that still fails
    /// the same way, and write it as a scenario file pinned to that seed.
    Shrink {
        #[command(flatten)]
        one: OneSeed,
        /// Where to write the shrunk scenario (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// For every hazard of the store, run the scenario that should expose it under
    /// `hazard:<name>` until it is caught (or the seeds run out), and print the matrix.
    Matrix {
        /// Seeds at most per hazard.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// Print the table's shape only: hazards, scenarios and verdicts, without the counts
        /// and failure kinds that vary from run to run.
        #[arg(long)]
        shape: bool,
        /// Only these hazards' rows (default: every hazard).
        #[arg(long = "hazard")]
        hazards: Vec<String>,
        /// Control: run `hardened` in place of each hazard, so that no row can be detected.
        #[arg(long, hide = true)]
        control_switched_off: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Run the controls: runs of this binary built so that one figure or verdict must come
    /// out a known way (a kill that cannot fire counts 0 landed, a lost ack is found...);
    /// exit 0 only if every one does.
    Controls {
        /// Control files or folders (default: scenarios/controls/).
        paths: Vec<PathBuf>,
    },
    /// List scenarios with their descriptions.
    List {
        /// Scenario files or folders (default: scenarios/ and scenarios/regressions/).
        paths: Vec<PathBuf>,
    },
}

/// One seed of one scenario and variant (`replay`, `shrink`).
#[derive(Debug, Args)]
struct OneSeed {
    /// The scenario file.
    scenario: PathBuf,
    /// The variant.
    #[arg(long)]
    variant: String,
    /// The seed.
    #[arg(long)]
    seed: u64,
    /// Where seeds make their boards (default: /dev/shm, else the temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[command(flatten)]
    schedule: ScheduleArgs,
}

impl OneSeed {
    /// The variant, and run options for it.
    fn resolve(&self) -> Result<(Variant, RunOptions)> {
        let mut opts = RunOptions::new(
            self.work_dir
                .clone()
                .unwrap_or_else(RunOptions::default_work_dir),
        );
        self.schedule.apply(&mut opts);
        Ok((Variant::parse(&self.variant)?, opts))
    }
}

#[derive(Debug, Args)]
struct SeedArgs {
    /// Run N seeds from the scenario's `first_seed` (0 unless it pins one).
    #[arg(long, conflicts_with_all = ["seed", "seed_range"])]
    seeds: Option<u64>,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seed_range")]
    seed: Option<u64>,
    /// Run seeds A..B (B excluded).
    #[arg(long)]
    seed_range: Option<String>,
}

#[derive(Debug, Args)]
struct Common {
    /// Parallel job processes.
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Run only shard K of N (1-based) of the seeds, for a CI matrix.
    #[arg(long)]
    shard: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep db, -wal, -shm, ledgers and logs of failing seeds here.
    #[arg(long)]
    artifacts: Option<PathBuf>,
    /// Where seeds make their boards (default: /dev/shm, else the temporary folder).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Run every worker on the I/O shim, even without I/O faults (to measure its cost).
    #[arg(long)]
    shim: bool,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Control (for tests): job 0 dies (`_exit(70)`) after reporting N seeds; the run
    /// must then end in an error (exit 2) naming the seeds lost.
    #[arg(long, hide = true)]
    control_job_dies_after: Option<usize>,
}

#[derive(Debug, Args)]
struct ScheduleArgs {
    /// Run deterministically (one worker at a time, picked from the seed, logical time),
    /// whatever the scenario's `schedule`.
    #[arg(long)]
    deterministic: bool,
    /// Deterministic mode: the strategy, instead of the scenario's.
    #[arg(long, value_enum)]
    strategy: Option<StrategyName>,
    /// Deterministic mode, PCT: the depth, instead of the scenario's `pct_depth`.
    #[arg(long)]
    pct_depth: Option<u32>,
    /// Deterministic mode: give up a seed (an error, exit 2, never a finding) when a worker
    /// holds the token this long, in wall-clock milliseconds, without reaching a
    /// scheduling point.
    #[arg(long, default_value_t = 10_000)]
    stuck_ms: u64,
}

impl ScheduleArgs {
    fn apply(&self, opts: &mut RunOptions) {
        opts.deterministic = self.deterministic;
        opts.strategy = self.strategy;
        opts.pct_depth = self.pct_depth;
        opts.stuck = std::time::Duration::from_millis(self.stuck_ms);
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kanban-harness: {e}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> Result<bool> {
    match command {
        Command::Run {
            scenarios,
            variants,
            seeds,
            common,
        } => cli::run::run(scenarios, variants, seeds, common),
        Command::Verify {
            paths,
            seeds,
            common,
        } => cli::verify::verify(paths, seeds, common),
        Command::Replay {
            one,
            artifacts,
            trace,
            check,
        } => cli::replay::replay(one, artifacts, trace, check),
        Command::Shrink { one, out } => cli::shrink::shrink(one, out),
        Command::Matrix {
            seeds,
            shape,
            hazards,
            control_switched_off,
            common,
        } => {
            let rows = MatrixRows {
                hazards: matrix_hazards(&hazards)?,
                switched_off: control_switched_off,
            };
            matrix(seeds, shape, &rows, &common)
        }
        Command::Controls { paths } => cli::controls::controls(paths),
        Command::List { paths } => cli::list::list(paths),
    }
}
