//! `kanban-harness`: run seeded multi-process fault scenarios against the kanban store.
//!
//! Exit codes: 0 when every seed passed (or, for `verify`, every expectation held), 1 when
//! any failed, 2 for bad usage, an unreadable scenario, or a run that could not judge every
//! seed planned for it (a job that died, a seed that could not run).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kanban_harness::controls::ControlFile;
use kanban_harness::jobs::{self, Item};
use kanban_harness::report::{Report, RunSummary, table};
use kanban_harness::scenario::{Scenario, StrategyName, Variant};
use kanban_harness::supervisor::{RunOptions, run_seed};
use kanban_harness::{Error, Result, shrink};
use kanban_store::hazards::Hazard;

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
        } => {
            let scenarios = load_all(&scenarios)?;
            let variants = variants
                .iter()
                .map(|v| Variant::parse(v))
                .collect::<Result<Vec<_>>>()?;
            let mut plan = Vec::new();
            for s in &scenarios {
                let vs = if variants.is_empty() {
                    s.variants()
                } else {
                    variants.clone()
                };
                let seeds = seed_list(&seeds, s)?;
                plan.extend(vs.into_iter().map(|v| (s, v, seeds.clone())));
            }
            let runs = execute(&plan, &common)?;
            print!("{}", table(&runs));
            print_failures(&runs, &plan, &run_options(&common, false));
            Ok(runs.iter().all(|r| r.failed == 0 && r.errors.is_empty()))
        }
        Command::Verify {
            paths,
            seeds,
            common,
        } => {
            let scenarios = load_all(&default_paths(paths))?;
            let plan: Vec<_> = scenarios
                .iter()
                .flat_map(|s| {
                    let first = s.first_seed;
                    let n = match seeds {
                        Some(n) if !s.pin_seeds => n,
                        _ => s.seeds,
                    };
                    let seeds: Vec<u64> = (first..first + n).collect();
                    s.variants().into_iter().map(move |v| (s, v, seeds.clone()))
                })
                .collect();
            let runs = execute(&plan, &common)?;
            print!("{}", table(&runs));
            let mut ok = true;
            for (run, (scenario, variant, _)) in runs.iter().zip(&plan) {
                let expect = &scenario.expect[&variant.to_string()];
                let misses = run.misses(expect);
                let verdict = if misses.is_empty() { "PASS" } else { "FAIL" };
                println!(
                    "{verdict} {} {variant}: {} of {} seeds failed{}",
                    scenario.name(),
                    run.failed,
                    run.seeds,
                    if misses.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", misses.join("; "))
                    }
                );
                ok &= misses.is_empty();
            }
            Ok(ok)
        }
        Command::Replay {
            one,
            artifacts,
            trace,
            check,
        } => {
            let s = Scenario::load(&one.scenario)?;
            let seed = one.seed;
            let (variant, mut opts) = one.resolve()?;
            opts.artifacts = artifacts;
            opts.verbose = !check;
            opts.trace = trace;
            if check && opts.schedule(&s).is_none() {
                return Err(Error::Usage(
                    "--check compares two deterministic runs: add --deterministic".into(),
                ));
            }
            let outcome = run_seed(&s, variant, seed, &opts)?;
            if check {
                let again = run_seed(&s, variant, seed, &opts)?;
                let diff = outcome.replay_diff(&again);
                for (run, o) in [("run 1", &outcome), ("run 2", &again)] {
                    println!(
                        "{run}: {} steps, trace {}, database {}, {} findings, {}",
                        o.steps,
                        o.trace_digest.as_deref().unwrap_or("-"),
                        o.db_digest.as_deref().unwrap_or("-"),
                        o.findings.lines().len(),
                        if o.failed() { "failed" } else { "passed" }
                    );
                }
                if diff.is_empty() {
                    println!("identical");
                } else {
                    println!("DIFFERENT");
                    for line in &diff {
                        println!("  {line}");
                    }
                }
                return Ok(diff.is_empty());
            }
            println!(
                "seed {seed}: {} kills, {} stalls, {} planned faults ({} armed, {} landed), {} restarts, {} backups, {} ms",
                outcome.kills,
                outcome.stalls,
                outcome.faults_planned,
                outcome.faults_armed,
                outcome.faults_landed,
                outcome.restarts,
                outcome.backups,
                outcome.elapsed_ms
            );
            for line in outcome.findings.lines() {
                println!("  {line}");
            }
            if let (Some(trace), Some(db)) = (&outcome.trace_digest, &outcome.db_digest) {
                println!(
                    "deterministic: {} steps; trace digest {trace}; database digest {db}",
                    outcome.steps
                );
            }
            println!("{}", if outcome.failed() { "FAILED" } else { "passed" });
            Ok(!outcome.failed())
        }
        Command::Shrink { one, out } => {
            let (variant, mut opts) = one.resolve()?;
            // Shrinking needs exact verdicts: always deterministic.
            opts.deterministic = true;
            let shrunk = shrink::shrink(&one.scenario, variant, one.seed, &opts, |line| {
                eprintln!("shrink: {line}")
            })?;
            let (b, a) = (shrunk.before, shrunk.after);
            println!(
                "{:?} kept after {} tries: {} -> {} steps, {} -> {} acked commits, {} -> {} workers, {} -> {} ms",
                shrunk.kind,
                shrunk.tries,
                b.steps,
                a.steps,
                b.acked,
                a.acked,
                b.workers,
                a.workers,
                b.budget_ms,
                a.budget_ms
            );
            for line in &shrunk.findings {
                println!("  {line}");
            }
            if variant != Variant::Hardened {
                println!(
                    "hardened on the shrunk scenario: {}",
                    if shrunk.hardened_passes {
                        "passes"
                    } else {
                        "FAILS too"
                    }
                );
            }
            match out {
                Some(path) => {
                    std::fs::write(&path, &shrunk.scenario)
                        .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{}", shrunk.scenario),
            }
            Ok(true)
        }
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
        Command::Controls { paths } => controls(paths),
        Command::List { paths } => {
            for s in load_all(&default_paths(paths))? {
                println!("{:<28} {}", s.name(), s.description);
            }
            Ok(true)
        }
    }
}

/// Runs the hazard detection matrix: each detectable hazard and, on the same seeds, its
/// `hardened` control, in batches until the verdict is in (detected, or a control that
/// failed) or the seeds run out; true when every detectable hazard was detected.
/// Which rows of the matrix run, and how.
struct MatrixRows {
    /// The hazards whose rows run.
    hazards: Vec<Hazard>,
    /// The control: `hardened` runs in place of each hazard.
    switched_off: bool,
}

/// The hazards named (every one when none is).
fn matrix_hazards(names: &[String]) -> Result<Vec<Hazard>> {
    if names.is_empty() {
        return Ok(Hazard::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| match Variant::parse(&format!("hazard:{name}"))? {
            Variant::Hazard(key) => Ok(key.hazard()),
            _ => unreachable!("a hazard: prefix parses to a hazard"),
        })
        .collect()
}

fn matrix(max_seeds: u64, shape: bool, rows: &MatrixRows, common: &Common) -> Result<bool> {
    use kanban_harness::matrix::{self, Detection, Line, Verdict};
    let opts = run_options(common, false);
    let batch = (common.jobs.max(1) * 4) as u64;
    let mut lines = Vec::new();
    for &hazard in &rows.hazards {
        let (name, detection, reason) = matrix::row(hazard);
        let variant = match rows.switched_off {
            true => Variant::Hardened,
            false => Variant::parse(&format!("hazard:{}", hazard.name()))?,
        };
        let (mut control, mut run) = (Pairs::default(), Pairs::default());
        let mut verdict = matrix::judge(&control.summary, &run.summary, detection);
        if detection != Detection::NotByKills {
            let scenario = Scenario::load(&PathBuf::from(format!("scenarios/{name}.toml")))?;
            let mut next = 0;
            while next < max_seeds && verdict == Verdict::NotDetected {
                let end = (next + batch).min(max_seeds);
                let items: Vec<Item<'_>> = (next..end)
                    .flat_map(|seed| {
                        [Variant::Hardened, variant].map(|variant| Item {
                            scenario: &scenario,
                            variant,
                            seed,
                        })
                    })
                    .collect();
                jobs::run(&items, common.jobs, &opts, |item, result| {
                    let pairs = if item.variant == Variant::Hardened {
                        &mut control
                    } else {
                        &mut run
                    };
                    pairs.seeds.insert(item.seed, result);
                })?;
                next = end;
                let starved = control.starved();
                control.summarise(name, Variant::Hardened, &starved);
                run.summarise(name, variant, &starved);
                verdict = matrix::judge(&control.summary, &run.summary, detection);
            }
            eprintln!(
                "{}: {verdict:?} after {} seeds",
                hazard.name(),
                run.summary.seeds
            );
        }
        let starved = control.starved().len() as u64;
        let (control, run) = (control.summary, run.summary);
        lines.push(Line {
            hazard: hazard.name().to_string(),
            scenario: name.to_string(),
            detection,
            seeds: run.seeds,
            failed: run.failed,
            first_failing_seed: run.failing_seeds.first().copied(),
            control_seeds: control.seeds,
            control_failed: control.failed,
            control_kinds: matrix::kinds(&control),
            starved,
            verdict,
            kinds: if detection == Detection::NotByKills {
                reason.to_string()
            } else {
                matrix::kinds(&run)
            },
        });
    }
    print!("{}", matrix::table(&lines, !shape));
    if let Some(path) = &common.report {
        let json = serde_json::json!({ "hazards": lines });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).expect("json") + "\n",
        )
        .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
    }
    Ok(lines
        .iter()
        .all(|l| matches!(l.verdict, Verdict::Detected | Verdict::NotByKills)))
}

/// Runs every control through this binary; prints a verdict per control.
fn controls(paths: Vec<PathBuf>) -> Result<bool> {
    let exe = std::env::current_exe().map_err(|e| Error::system("finding this binary", e))?;
    let paths = match paths.is_empty() {
        true => vec![PathBuf::from("scenarios/controls")],
        false => paths,
    };
    let files = kanban_harness::scenario::toml_files(&paths)?
        .iter()
        .map(|p| ControlFile::load(p))
        .collect::<Result<Vec<_>>>()?;
    let mut failed = 0;
    for file in &files {
        let misses = file.run(&exe)?;
        let verdict = if misses.is_empty() { "PASS" } else { "FAIL" };
        println!("{verdict} {}: {}", file.name(), file.control.what);
        for miss in &misses {
            println!("    {miss}");
        }
        failed += usize::from(!misses.is_empty());
    }
    println!(
        "{} controls: {} held, {failed} failed",
        files.len(),
        files.len() - failed
    );
    Ok(failed == 0)
}

/// One side of a matrix row: every seed's result, and the summary of the seeds both sides
/// ran, but for the pairs whose control starved.
#[derive(Default)]
struct Pairs {
    seeds: BTreeMap<u64, std::result::Result<kanban_harness::supervisor::Outcome, String>>,
    summary: RunSummary,
}

impl Pairs {
    /// The seeds in which this side (the control) did no work: the machine's load starved
    /// them, and a starved seed judges neither the control nor the hazard.
    fn starved(&self) -> Vec<u64> {
        self.seeds
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|o| !o.findings.work.is_empty()))
            .map(|(&seed, _)| seed)
            .collect()
    }

    fn summarise(&mut self, name: &str, variant: Variant, starved: &[u64]) {
        self.summary = RunSummary::new(name, variant);
        for (&seed, result) in self.seeds.iter().filter(|(s, _)| !starved.contains(s)) {
            match result {
                Ok(outcome) => self.summary.add(outcome),
                Err(e) => self.summary.add_error(seed, e.clone()),
            }
        }
    }
}

fn run_options(common: &Common, verbose: bool) -> RunOptions {
    let mut opts = RunOptions::new(
        common
            .work_dir
            .clone()
            .unwrap_or_else(RunOptions::default_work_dir),
    );
    opts.artifacts = common.artifacts.clone();
    opts.verbose = verbose;
    opts.shim = common.shim;
    opts.control_job_dies_after = common.control_job_dies_after;
    common.schedule.apply(&mut opts);
    opts
}

/// Runs every (scenario, variant, seeds) of `plan`; one summary each, in plan order.
fn execute(plan: &[(&Scenario, Variant, Vec<u64>)], common: &Common) -> Result<Vec<RunSummary>> {
    let shard = common.shard.as_deref().map(parse_shard).transpose()?;
    let items: Vec<Item<'_>> = plan
        .iter()
        .flat_map(|(s, v, seeds)| {
            seeds
                .iter()
                .enumerate()
                .filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k - 1))
                .map(|(_, &seed)| Item {
                    scenario: s,
                    variant: *v,
                    seed,
                })
        })
        .collect();
    let opts = run_options(common, false);
    let key = |s: &Scenario, v: Variant| (s.path.clone(), v);
    let mut runs: BTreeMap<(PathBuf, Variant), (RunSummary, u64)> = plan
        .iter()
        .map(|(s, v, _)| (key(s, *v), (RunSummary::new(&s.name(), *v), 0)))
        .collect();
    for item in &items {
        runs.get_mut(&key(item.scenario, item.variant))
            .expect("planned")
            .1 += 1;
    }
    let jobs = common.jobs.clamp(1, items.len().max(1));
    let started = Instant::now();
    let progress = Progress::new(items.len() as u64);
    jobs::run(&items, jobs, &opts, |item, result| {
        let (summary, left) = runs
            .get_mut(&key(item.scenario, item.variant))
            .expect("planned");
        match result {
            Ok(outcome) => summary.add(&outcome),
            Err(e) => summary.add_error(item.seed, e),
        }
        *left -= 1;
        if *left == 0 {
            summary.finish(jobs);
            progress.line(&format!(
                "{} {}: {} of {} seeds failed ({:.1} seeds/s)",
                summary.scenario,
                summary.variant,
                summary.failed,
                summary.seeds,
                summary.seeds_per_s
            ));
        }
        progress.tick();
    })?;
    progress.done();
    eprintln!(
        "{} seeds in {:.1} s with {jobs} jobs",
        items.len(),
        started.elapsed().as_secs_f64()
    );
    let ordered: Vec<RunSummary> = plan
        .iter()
        .map(|(s, v, _)| runs[&key(s, *v)].0.clone())
        .collect();
    let planned: Vec<u64> = plan
        .iter()
        .map(|(s, v, _)| {
            items
                .iter()
                .filter(|i| key(i.scenario, i.variant) == key(s, *v))
                .count() as u64
        })
        .collect();
    if let Some(path) = &common.report {
        let report = Report {
            runs: ordered.clone(),
        };
        let json = serde_json::to_string_pretty(&report).expect("serialisable");
        std::fs::write(path, json + "\n")
            .map_err(|e| Error::system(format!("writing {}", path.display()), e))?;
    }
    let unjudged = unjudged(&ordered, &planned);
    if !unjudged.is_empty() {
        print!("{}", table(&ordered));
        return Err(Error::SeedsNotJudged(unjudged));
    }
    Ok(ordered)
}

/// The runs that did not judge every seed planned for them (`planned[i]` for `runs[i]`),
/// one line each with the seeds' errors: such a run has no verdict, pass or fail.
fn unjudged(runs: &[RunSummary], planned: &[u64]) -> Vec<String> {
    runs.iter()
        .zip(planned)
        .filter(|(run, planned)| run.seeds != **planned || !run.errors.is_empty())
        .map(|(run, planned)| {
            let mut line = format!(
                "{} {}: {} of {planned} planned seeds judged",
                run.scenario, run.variant, run.seeds
            );
            for e in &run.errors {
                line.push_str(&format!("; {e}"));
            }
            line
        })
        .collect()
}

/// Prints the replay command of every failing seed (the first few per run).
fn print_failures(runs: &[RunSummary], plan: &[(&Scenario, Variant, Vec<u64>)], opts: &RunOptions) {
    for (run, (scenario, variant, _)) in runs.iter().zip(plan) {
        // The flags that make the replay run the same way.
        let mut flags = String::new();
        if opts.deterministic {
            flags.push_str(" --deterministic");
        }
        if let Some(name) = opts.strategy {
            flags.push_str(&format!(" --strategy {}", name.name()));
        }
        if let Some(depth) = opts.pct_depth {
            flags.push_str(&format!(" --pct-depth {depth}"));
        }
        for e in &run.errors {
            println!("error {} {variant}: {e}", scenario.name());
        }
        for seed in run.failing_seeds.iter().take(10) {
            println!(
                "replay: kanban-harness replay {} --variant {variant} --seed {seed}{flags}",
                scenario.path.display()
            );
        }
        if run.failing_seeds.len() > 10 {
            println!(
                "... and {} more failing seeds",
                run.failing_seeds.len() - 10
            );
        }
        for f in &run.sample_findings {
            println!("  e.g. {f}");
        }
    }
}

/// A progress bar on a terminal; plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta}")
                    .expect("valid template"),
            );
            bar
        });
        Progress { bar }
    }

    fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![
            PathBuf::from("scenarios"),
            PathBuf::from("scenarios/regressions"),
        ]
    } else {
        paths
    }
}

/// Loads scenario files, expanding folders to their `*.toml` files (sorted).
fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>> {
    let files = kanban_harness::scenario::toml_files(paths)?;
    files.iter().map(|f| Scenario::load(f)).collect()
}

fn seed_list(args: &SeedArgs, scenario: &Scenario) -> Result<Vec<u64>> {
    if let Some(seed) = args.seed {
        return Ok(vec![seed]);
    }
    if let Some(range) = &args.seed_range {
        let bad = || Error::Usage(format!("--seed-range {range:?}: expected A..B"));
        let (a, b) = range.split_once("..").ok_or_else(bad)?;
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        return if a < b {
            Ok((a..b).collect())
        } else {
            Err(bad())
        };
    }
    let first = scenario.first_seed;
    Ok((first..first + args.seeds.unwrap_or(scenario.seeds)).collect())
}

fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::Usage(format!("--shard {text:?}: expected K/N with 1 <= K <= N"));
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_short_of_its_planned_seeds_is_unjudged() {
        let mut run = RunSummary::new("s", Variant::Hardened);
        run.add(&kanban_harness::supervisor::Outcome::default());
        assert!(unjudged(std::slice::from_ref(&run), &[1]).is_empty());
        assert_eq!(
            unjudged(std::slice::from_ref(&run), &[2]),
            ["s hardened: 1 of 2 planned seeds judged"]
        );
        run.add_error(7, "no board".into());
        assert_eq!(
            unjudged(&[run], &[1]),
            ["s hardened: 1 of 1 planned seeds judged; seed 7: no board"]
        );
    }
}
