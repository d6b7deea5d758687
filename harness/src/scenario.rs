//! Scenarios: TOML files that describe one reproducible situation.
//!
//! A scenario says which workers share a board and how often they act, what faults hit them,
//! which variants of the store to run, for how many seeds, and what outcome to expect from
//! each variant. The format is documented in the README; unknown keys are errors, reported
//! with the file and the key, because a misspelt fault that silently does nothing would make
//! a scenario pass for the wrong reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kanban_store::hazards::{Hazard, HazardSet};
use kanban_store::{DamagePolicy, OnDamage};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fault::{ErrorKind, FileKind, IoAction, IoOp, IoPhase};

/// A parsed scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line for `kanban-harness list`.
    pub description: String,
    /// Seeds `verify` runs per variant.
    #[serde(default = "defaults::seeds")]
    pub seeds: u64,
    /// Wall-clock time each seed's workers run, in milliseconds.
    #[serde(default = "defaults::budget_ms")]
    pub budget_ms: u64,
    /// The board the workers start from.
    #[serde(default)]
    pub board: BoardSpec,
    /// The worker processes.
    pub workers: Vec<WorkerSpec>,
    /// What goes wrong, and when.
    #[serde(default)]
    pub faults: Faults,
    /// Power cuts, through the page-cache model (`pagecache`).
    #[serde(default)]
    pub power: Power,
    /// Run the workers on the I/O shim even without I/O faults (it is on whenever there are).
    #[serde(default)]
    pub shim: bool,
    /// How the workers interleave: `free` (the kernel schedules them, in real time) or
    /// `deterministic` (one at a time, picked from the seed, in logical time).
    #[serde(default)]
    pub schedule: ScheduleMode,
    /// Deterministic mode: how the next worker is picked (`random-walk` or `pct`).
    #[serde(default)]
    pub strategy: StrategyName,
    /// Deterministic mode, `pct`: the bug depth PCT aims at (priority change points + 1).
    #[serde(default = "defaults::pct_depth")]
    pub pct_depth: u32,
    /// Single-writer mode: dashboards send their writes to the gateway over the board's
    /// socket; the gateway serves them between its other work.
    #[serde(default)]
    pub single_writer: bool,
    /// After every worker is dead, the supervisor checks the board, then repairs it, as an
    /// operator would (a repair killed midway is finished by the next one). Damage it finds
    /// fails the seed unless a repairer injected it and was killed before undoing it
    /// (`supervisor::FinalRepair`).
    #[serde(default)]
    pub repair_after: bool,
    /// For controls only: after the run and before the checks, delete one acknowledged
    /// effect from the board, so that a control shows how the checks classify it (see
    /// [`Inject`]). Nothing touches the board when it is absent.
    #[serde(default)]
    pub inject: Inject,
    /// The first seed (`verify` runs `first_seed..first_seed + seeds`); a regression
    /// scenario pins the seed that showed its bug.
    #[serde(default)]
    pub first_seed: u64,
    /// `verify --seeds N` leaves this scenario's seeds as they are (a regression pinned to
    /// the seed that shows it).
    #[serde(default)]
    pub pin_seeds: bool,
    /// The variants to run, with the outcome each must show.
    pub expect: BTreeMap<String, Expect>,
    /// In a control file (`scenarios/controls/`): what `kanban-harness controls` demands
    /// of the run (`controls`); nothing else reads it.
    #[serde(default)]
    pub control: Option<toml::Table>,
    /// Where the file was read from (not in the file).
    #[serde(skip)]
    pub path: PathBuf,
}

/// How a scenario's workers interleave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleMode {
    /// The kernel schedules the worker processes; time is real.
    #[default]
    Free,
    /// One worker at a time, picked from the seed at every scheduling point; time is
    /// logical (see `token`).
    Deterministic,
}

/// The deterministic scheduler's strategy, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// Uniformly random among the workers that may run.
    #[default]
    RandomWalk,
    /// Priority-based (PCT), with `pct_depth - 1` priority change points.
    Pct,
}

impl StrategyName {
    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            StrategyName::RandomWalk => "random-walk",
            StrategyName::Pct => "pct",
        }
    }
}

/// Logical microseconds each scheduling step costs in deterministic mode.
pub const QUANTUM_US: u64 = 10;

/// The starting board.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSpec {
    /// Tasks created (and made ready) before the workers start.
    #[serde(default)]
    pub tasks: u32,
    /// Damage done to the board before the workers start.
    #[serde(default)]
    pub damage: Damage,
    /// Leave the board in rollback (DELETE) journal mode, as upstream boards were after
    /// their WAL-to-DELETE fallback; the first session upgrades it under its lock.
    #[serde(default)]
    pub rollback: bool,
    /// Quarantine copies kept before the workers start (each after an edit of its own, so
    /// each is distinct), through the store's [`kanban_store::Board::quarantine`]: at the
    /// default cap of 5, the next repair that rebuilds meets a full quarantine folder.
    #[serde(default)]
    pub quarantined: u32,
}

/// A loss injected after the run, before the checks (for controls only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Inject {
    /// Nothing (every scenario but a control).
    #[default]
    None,
    /// Delete the event of one acknowledged write that no reader had observed: the
    /// checks must call it `lost_acked`.
    DeleteAcked,
    /// Delete the event of one acknowledged write that a reader had observed: the checks
    /// must call it `lost_after_read` (and `lost_acked`).
    DeleteRead,
}

/// Damage a scenario can start from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Damage {
    /// A healthy board.
    #[default]
    None,
    /// `idx_events_run` misses entries (the upstream symptom).
    Index,
    /// A comment on a task that does not exist (written with foreign keys off): damage
    /// beyond indexes (`foreign_key_check` reports it) that every page still reads well, so
    /// a repair rebuilds the board (dropping the comment, which no worker reads), and the
    /// copy it keeps of it passes `quick_check`.
    Reference,
    /// Two `notify_subs` rows with one name under its UNIQUE (primary-key) index
    /// ([`kanban_store::hazards::damage_unique_index`]): a full check says `non-unique
    /// entry in index`, and `REINDEX` fails on it, so only a rebuild undoes it.
    UniqueIndex,
}

impl Damage {
    /// Whether the damage is beyond what `REINDEX` fixes: the hardened gateway reports it
    /// and stops (an expected `Corrupt`), and only a rebuild undoes it.
    pub fn beyond_indexes(self) -> bool {
        matches!(self, Damage::Reference | Damage::UniqueIndex)
    }
}

/// Which name of the board a worker opens it by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoardPath {
    /// The board's own name, `kanban.db`.
    #[default]
    Target,
    /// A symlink beside it, `kanban-link.db -> kanban.db` (made when a worker asks for it).
    Link,
}

impl BoardPath {
    /// The file name of the board by this name, in the seed's folder.
    pub fn file_name(self) -> &'static str {
        match self {
            BoardPath::Target => "kanban.db",
            BoardPath::Link => "kanban-link.db",
        }
    }
}

/// What kind of process a worker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerKind {
    /// Dispatcher, notifier and checkpoint owner.
    Gateway,
    /// Board reads, websocket polling, user edits.
    Dashboard,
    /// Heartbeats and results.
    Agent,
    /// An external program.
    Command,
    /// An operator: repairs the board now and then (after damaging it, if asked), with
    /// the other workers running.
    Repairer,
    /// A hostile client of the gateway's socket (single-writer mode): floods it with
    /// requests over `connections` connections at once, sends a frame larger than the
    /// largest request, and connects without sending anything.
    Flooder,
}

impl WorkerKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            WorkerKind::Gateway => "gateway",
            WorkerKind::Dashboard => "dashboard",
            WorkerKind::Agent => "agent",
            WorkerKind::Command => "command",
            WorkerKind::Repairer => "repairer",
            WorkerKind::Flooder => "flooder",
        }
    }
}

/// One kind of worker process, and how many of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// What it is.
    pub kind: WorkerKind,
    /// How many such processes.
    #[serde(default = "defaults::one")]
    pub count: u32,
    /// Gateway: dispatcher tick interval (upstream: 60 s).
    #[serde(default = "defaults::tick_ms")]
    pub tick_ms: u64,
    /// Gateway: notifier poll interval (upstream: 5 s).
    #[serde(default = "defaults::notify_ms")]
    pub notify_ms: u64,
    /// Dashboard: websocket poll interval per tab (upstream: 0.3 s).
    #[serde(default = "defaults::poll_ms")]
    pub poll_ms: u64,
    /// Dashboard: API request interval (board reads).
    #[serde(default = "defaults::request_ms")]
    pub request_ms: u64,
    /// Dashboard: user edit interval (create, move, comment); flooder: the interval of
    /// its turns (a flood, an oversized frame, or a silent connection each).
    #[serde(default = "defaults::edit_ms")]
    pub edit_ms: u64,
    /// Agent: heartbeat interval; results come every few heartbeats.
    #[serde(default = "defaults::heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Repairer: how often it repairs.
    #[serde(default = "defaults::repair_ms")]
    pub repair_ms: u64,
    /// Repairer: the damage it does (with the board to itself) before each repair
    /// (`index`, `reference`, `unique-index`; default `none`).
    #[serde(default)]
    pub damage: Damage,
    /// Connections the process uses concurrently (upstream: dispatcher and notifier
    /// threads; request handlers and websocket pollers). At least 1.
    #[serde(default = "defaults::connections")]
    pub connections: u32,
    /// Chance, at each step inside a write transaction, that another connection of the same
    /// process takes a step (connect, read): the in-process overlap of the upstream bug.
    #[serde(default)]
    pub overlap: f64,
    /// With `overlap`: the other connection also runs a quick health check, as upstream's
    /// request handlers did.
    #[serde(default)]
    pub overlap_check: bool,
    /// Agent: every this many heartbeats, fork a child that reports through the session it
    /// inherits (0: never). The hardened store refuses a session used across a fork.
    #[serde(default)]
    pub fork_every: u32,
    /// Gateway: commits nothing of its own (no dispatcher, no notifier, no server): it only
    /// ticks `checkpoint_if_due`, the checkpoint owner of a board that others write.
    #[serde(default)]
    pub silent: bool,
    /// Gateway: its reaction to index-only damage at start-up (`repair`, `stop` or
    /// `continue`; default: the store's, `repair`; `naive`: `continue`, as upstream).
    #[serde(default)]
    pub on_index_damage: Option<OnDamage>,
    /// Gateway: its reaction to any other damage at start-up (default: the store's,
    /// `stop`; `naive`: `continue`, as upstream).
    #[serde(default)]
    pub on_other_damage: Option<OnDamage>,
    /// Command: the program and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// Pause before a killed worker is started again (a service manager's restart delay).
    #[serde(default = "defaults::restart_ms")]
    pub restart_ms: u64,
    /// The name it opens the board by: `target` (the board's own) or `link` (a symlink to
    /// it): one board, one identity, whichever name a process uses.
    #[serde(default)]
    pub path: BoardPath,
}

/// The faults of each seed; times and targets come from the seed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// SIGKILLs at seeded moments, per seed.
    #[serde(default)]
    pub kills: u32,
    /// SIGSTOP/SIGCONT stalls per seed.
    #[serde(default)]
    pub stalls: u32,
    /// Stall length range in milliseconds, `[min, max]`.
    #[serde(default = "defaults::stall_ms")]
    pub stall_ms: [u64; 2],
    /// Which kind of worker the stalls stop (default: any process).
    #[serde(default)]
    pub stall_worker: Option<WorkerKind>,
    /// When the stalls start, in milliseconds after the workers start, `[min, max]`
    /// (default: anywhere in the budget); so a stall can be made to end inside the seed.
    #[serde(default)]
    pub stall_at_ms: Option<[u64; 2]>,
    /// Kills inside a store phase.
    #[serde(default)]
    pub phase_kills: Vec<PhaseKill>,
    /// Faults at exact points of SQLite's file I/O, through the I/O shim.
    #[serde(default)]
    pub io: Vec<IoFaultSpec>,
    /// `all` (default): every entry of `io` is planned; `one`: each seed draws one entry.
    #[serde(default)]
    pub io_pick: IoPick,
}

/// Power cuts: the workers' file changes recorded in the page-cache model, and cut at
/// seeded moments (`cuts`) or at exact file operations (`faults.io` with
/// `action = "power-cut"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// Record the workers' file changes even when no cut is planned (to measure what the
    /// model costs); on whenever a cut is.
    #[serde(default)]
    pub model: bool,
    /// Timed power cuts per seed, at seeded moments; after each the workers restart.
    #[serde(default)]
    pub cuts: u32,
    /// When the timed cuts fall, in milliseconds after the workers start, `[min, max]`
    /// (default: anywhere in the budget).
    #[serde(default)]
    pub cut_at_ms: Option<[u64; 2]>,
    /// The modes a cut draws from (`lose-unsynced`, `keep-some`, `torn`, `garbage`;
    /// default: every one).
    #[serde(default)]
    pub modes: Vec<String>,
}

impl Power {
    /// The modes a cut draws from (validated when the scenario is parsed).
    pub fn modes(&self) -> Vec<crate::pagecache::Mode> {
        if self.modes.is_empty() {
            return crate::pagecache::Mode::ALL.to_vec();
        }
        (self.modes.iter()).filter_map(|m| m.parse().ok()).collect()
    }
}

/// How the entries of `faults.io` become a seed's plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoPick {
    /// Every entry.
    #[default]
    All,
    /// One entry, drawn from the seed.
    One,
}

/// A fault at the Nth matching file operation inside a phase (see `shim`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoFaultSpec {
    /// The phase: `checkpoint-copy`, `checkpoint-tail`, `wal-truncate`, `commit`,
    /// `checkpoint`, `migration`, `journal-mode`, `quarantine` or `none`.
    pub phase: IoPhase,
    /// The file kind: `db`, `wal`, `journal`, `temp` or `shm`.
    pub file: FileKind,
    /// The operation: `read`, `write`, `truncate`, `sync`, `wal-write-lock`, ...
    pub op: IoOp,
    /// The matching operation it acts at is drawn from `[min, max]` (1-based).
    #[serde(default = "defaults::nth")]
    pub nth: [u32; 2],
    /// `kill-before`, `kill-after`, `ioerr-write`, `ioerr-fsync`, `full` or `stop`.
    pub action: IoAction,
    /// For failing actions: keep failing every later match in that process.
    #[serde(default)]
    pub sticky: bool,
    /// Which kind of worker (default: any forked worker).
    #[serde(default)]
    pub worker: Option<WorkerKind>,
    /// Plan it on every matching worker, not on one drawn from the seed (for a step that
    /// whichever worker comes first performs, like the switch to WAL).
    #[serde(default)]
    pub every_worker: bool,
    /// For `stop`: how long the supervisor leaves the worker stopped.
    #[serde(default = "defaults::stop_ms")]
    pub stop_ms: u64,
}

/// A kill planned inside a store phase: at the worker's `nth` entry into it (seeded from
/// `1..=max_nth`), after a seeded delay within `delay_us`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseKill {
    /// `commit` or `checkpoint` (or any store phase: `migration`, `journal-mode`,
    /// `quarantine`).
    pub phase: String,
    /// Which kind of worker to kill (default: any).
    #[serde(default)]
    pub worker: Option<WorkerKind>,
    /// The entry into the phase is drawn from `1..=max_nth`.
    #[serde(default = "defaults::max_nth")]
    pub max_nth: u32,
    /// Microseconds after entering the phase, drawn from `[min, max]`.
    #[serde(default = "defaults::delay_us")]
    pub delay_us: [u64; 2],
}

/// Every finding kind by name, in report order: the names expectations use.
pub const KINDS: [&str; 9] = [
    "corrupt",
    "lost_acked",
    "lost_suffix",
    "invariant",
    "worker_error",
    "work",
    "lost_after_read",
    "quarantine",
    "duplicate",
];

/// The finding kinds a variant may not show unless its expectations name them (in
/// `max_rate` or `min_rate`) or expect damage (`min_damage_rate`, a hazard shown breaking
/// the board): `lost_suffix` is a promise broken under `synchronous=FULL`, which only a
/// variant that runs `NORMAL` may allow (`max_rate = { lost_suffix = 1.0 }`). Every other
/// kind is judged only where named.
pub const STRICT_KINDS: [&str; 1] = ["lost_suffix"];

/// The outcome a variant must show over its seeds. Rates are shares of seeds; the finding
/// kinds are those of [`KINDS`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// At most this share of seeds may fail, with findings of any kind (0.0: none).
    #[serde(default)]
    pub max_failure_rate: Option<f64>,
    /// At least this share of seeds must show damage: corruption or a lost acknowledged
    /// commit (not merely errors).
    #[serde(default)]
    pub min_damage_rate: Option<f64>,
    /// Per finding kind, the share of seeds that must show it at least (`{ lost_acked =
    /// 0.8 }`: the hazard is caught the way it should be).
    #[serde(default)]
    pub min_rate: BTreeMap<String, f64>,
    /// Per finding kind, the share of seeds that may show it at most (see
    /// [`Expect::max_rate_of`]: a kind of [`STRICT_KINDS`] left out may show in none).
    #[serde(default)]
    pub max_rate: BTreeMap<String, f64>,
    /// At most this many backup/quarantine files in any seed's board folder.
    #[serde(default)]
    pub max_backups: Option<usize>,
    /// At least this many in some seed (the unbounded backups are shown).
    #[serde(default)]
    pub min_backups: Option<usize>,
    /// At most this many bytes of `-wal` sampled in any seed (free-running seeds: the
    /// supervisor stats the file on every turn of its loop).
    #[serde(default)]
    pub max_wal_bytes: Option<u64>,
    /// At least this share of planned faults must land (default 0.5: a scenario whose
    /// faults mostly never get their chance tests nothing).
    #[serde(default)]
    pub min_landed: Option<f64>,
    /// Per worker kind, the acknowledged commits each seed must reach (default:
    /// `work::default_floor`); below it, the seed has a `work` finding.
    #[serde(default)]
    pub min_acked: BTreeMap<WorkerKind, u64>,
    /// Expected errors allowed beyond those the scenario's faults can cause
    /// (`work::allowed_errors`).
    #[serde(default)]
    pub allow_errors: Vec<ErrorKind>,
}

impl Expect {
    /// The share of seeds that may show `kind` at most: as `max_rate` says, else 0 for a
    /// kind of [`STRICT_KINDS`] that `min_rate` does not name either, in a variant that
    /// expects no damage (`None`: any share).
    pub fn max_rate_of(&self, kind: &str) -> Option<f64> {
        let strict = STRICT_KINDS.contains(&kind)
            && !self.min_rate.contains_key(kind)
            && self.min_damage_rate.is_none();
        (self.max_rate.get(kind).copied()).or(strict.then_some(0.0))
    }

    /// Why these expectations make no sense for `scenario`, as `key...: why`.
    fn validate(&self, scenario: &Scenario) -> std::result::Result<(), String> {
        let rates = [
            ("max_failure_rate", self.max_failure_rate),
            ("min_damage_rate", self.min_damage_rate),
            ("min_landed", self.min_landed),
        ];
        for (key, rate) in rates {
            if rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
                return Err(format!("{key}` must be within 0..=1"));
            }
        }
        for (key, map) in [("min_rate", &self.min_rate), ("max_rate", &self.max_rate)] {
            for (kind, &rate) in map {
                if !KINDS.contains(&kind.as_str()) {
                    return Err(format!(
                        "{key}.{kind}`: no such finding kind ({})",
                        KINDS.join(", ")
                    ));
                }
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{key}.{kind}` must be within 0..=1"));
                }
            }
        }
        for kind in self.min_acked.keys() {
            if !scenario.workers.iter().any(|w| w.kind == *kind) {
                return Err(format!(
                    "min_acked.{}`: the scenario has no {} worker",
                    kind.name(),
                    kind.name()
                ));
            }
        }
        Ok(())
    }
}

pub(crate) mod defaults {
    pub fn seeds() -> u64 {
        100
    }
    pub fn budget_ms() -> u64 {
        300
    }
    pub fn one() -> u32 {
        1
    }
    pub fn tick_ms() -> u64 {
        20
    }
    pub fn notify_ms() -> u64 {
        5
    }
    pub fn poll_ms() -> u64 {
        3
    }
    pub fn request_ms() -> u64 {
        10
    }
    pub fn edit_ms() -> u64 {
        15
    }
    pub fn repair_ms() -> u64 {
        50
    }
    pub fn heartbeat_ms() -> u64 {
        10
    }
    pub fn connections() -> u32 {
        2
    }
    pub fn restart_ms() -> u64 {
        5
    }
    pub fn stall_ms() -> [u64; 2] {
        [5, 50]
    }
    pub fn pct_depth() -> u32 {
        3
    }
    pub fn max_nth() -> u32 {
        10
    }
    pub fn delay_us() -> [u64; 2] {
        [0, 200]
    }
    pub fn nth() -> [u32; 2] {
        [1, 1]
    }
    pub fn stop_ms() -> u64 {
        50
    }
}

impl Scenario {
    /// Why this scenario cannot run deterministically, if it cannot: a `command` worker's
    /// SQLite is not ours, so its file operations are no scheduling points.
    pub fn refuse_determinism(&self) -> std::result::Result<(), String> {
        match self
            .workers
            .iter()
            .position(|w| w.kind == WorkerKind::Command)
        {
            Some(i) => Err(format!(
                "`workers[{i}]` is a \"command\" worker: an external program's SQLite does not run on the harness's I/O shim, so it cannot be scheduled deterministically"
            )),
            None => Ok(()),
        }
    }

    /// Whether the workers record their file changes in the page-cache model: asked for,
    /// or needed by a planned cut.
    pub fn power_model(&self) -> bool {
        self.power.model || self.power.cuts > 0 || self.power_cut_faults()
    }

    /// Whether `faults.io` cuts the power at an exact file operation.
    pub fn power_cut_faults(&self) -> bool {
        (self.faults.io.iter()).any(|f| f.action == IoAction::PowerCut)
    }

    /// The deterministic strategy of this scenario (its `strategy` and `pct_depth`, unless
    /// `name` or `depth` override them). PCT's change points fall within the steps a seed
    /// of this budget takes at most.
    pub fn strategy(
        &self,
        name: Option<StrategyName>,
        depth: Option<u32>,
    ) -> kanban_sched::Strategy {
        match name.unwrap_or(self.strategy) {
            StrategyName::RandomWalk => kanban_sched::Strategy::RandomWalk,
            StrategyName::Pct => kanban_sched::Strategy::Pct {
                depth: depth.unwrap_or(self.pct_depth).max(1),
                horizon: self.budget_ms * 1000 / QUANTUM_US,
            },
        }
    }

    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadScenario {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses scenario text (named `path` in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
        let bad = |message: String| Error::Scenario {
            path: path.to_path_buf(),
            message,
        };
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
        scenario.path = path.to_path_buf();
        scenario.refuse_bad_counts().map_err(bad)?;
        if scenario.schedule == ScheduleMode::Deterministic {
            scenario.refuse_determinism().map_err(bad)?;
        }
        scenario.refuse_bad_workers().map_err(bad)?;
        scenario.refuse_absent_targets().map_err(bad)?;
        scenario.refuse_bad_faults().map_err(bad)?;
        scenario.refuse_bad_expectations().map_err(bad)?;
        Ok(scenario)
    }

    /// Refuses counts that must be at least 1 (seeds, budget, worker processes, PCT depth).
    fn refuse_bad_counts(&self) -> std::result::Result<(), String> {
        if self.seeds == 0 {
            return Err("`seeds` must be at least 1".into());
        }
        if self.budget_ms == 0 {
            return Err("`budget_ms` must be at least 1".into());
        }
        if self.processes().is_empty() {
            return Err(
                "`workers`: at least one worker process is needed (with `count` >= 1)".into(),
            );
        }
        if self.pct_depth == 0 {
            return Err("`pct_depth` must be at least 1".into());
        }
        Ok(())
    }

    /// Refuses a worker without connections, an overlap outside 0..=1, and a `command` that
    /// is missing from a command worker or given to another kind.
    fn refuse_bad_workers(&self) -> std::result::Result<(), String> {
        for (i, w) in self.workers.iter().enumerate() {
            if w.connections == 0 {
                return Err(format!("`workers[{i}].connections` must be at least 1"));
            }
            if !(0.0..=1.0).contains(&w.overlap) {
                return Err(format!(
                    "`workers[{i}].overlap` is {}; it must be within 0..=1",
                    w.overlap
                ));
            }
            match (w.kind, w.command.is_empty()) {
                (WorkerKind::Command, true) => {
                    return Err(format!(
                        "`workers[{i}].command` is missing: a \"command\" worker needs the program to run"
                    ));
                }
                (kind, false) if kind != WorkerKind::Command => {
                    return Err(format!(
                        "`workers[{i}].command` is only for kind \"command\", not \"{}\"",
                        kind.name()
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Refuses faults that cannot be planned: an unknown phase, an empty range, an I/O
    /// operation that cannot fail with an error code.
    fn refuse_bad_faults(&self) -> std::result::Result<(), String> {
        if self.power_model()
            && let Some(i) = (self.workers.iter()).position(|w| w.kind == WorkerKind::Command)
        {
            return Err(format!(
                "`workers[{i}]` is a \"command\" worker: its SQLite does not run on the harness's I/O shim, so the page-cache model cannot see its writes and a power cut would judge it wrongly"
            ));
        }
        for (i, k) in self.faults.phase_kills.iter().enumerate() {
            if phase_named(&k.phase).is_none() {
                return Err(format!(
                    "`faults.phase_kills[{i}].phase`: unknown phase {:?} ({})",
                    k.phase,
                    kanban_store::Phase::ALL.map(|p| p.name()).join(", ")
                ));
            }
            if k.delay_us[0] > k.delay_us[1] {
                return Err(format!(
                    "`faults.phase_kills[{i}].delay_us`: empty range {:?}",
                    k.delay_us
                ));
            }
            if k.max_nth == 0 {
                return Err(format!(
                    "`faults.phase_kills[{i}].max_nth` must be at least 1"
                ));
            }
        }
        for (i, f) in self.faults.io.iter().enumerate() {
            if f.action.error_code().is_some() && !f.op.can_fail() {
                return Err(format!(
                    "`faults.io[{i}]`: {:?} cannot fail with an error code; kill or stop it instead",
                    f.op
                ));
            }
            if f.nth[0] == 0 || f.nth[0] > f.nth[1] {
                return Err(format!(
                    "`faults.io[{i}].nth`: {:?} is not a range of 1-based counts",
                    f.nth
                ));
            }
        }
        for (i, m) in self.power.modes.iter().enumerate() {
            if let Err(e) = m.parse::<crate::pagecache::Mode>() {
                return Err(format!("`power.modes[{i}]`: {e}"));
            }
        }
        if let Some([lo, hi]) = self.power.cut_at_ms
            && lo > hi
        {
            return Err(format!("`power.cut_at_ms`: empty range {:?}", [lo, hi]));
        }
        if let Some([lo, hi]) = self.faults.stall_at_ms
            && lo > hi
        {
            return Err(format!("`faults.stall_at_ms`: empty range {:?}", [lo, hi]));
        }
        if self.faults.stall_ms[0] > self.faults.stall_ms[1] {
            return Err(format!(
                "`faults.stall_ms`: empty range {:?}",
                self.faults.stall_ms
            ));
        }
        Ok(())
    }

    /// Refuses expectations that do not validate, none at all, or one for no variant.
    fn refuse_bad_expectations(&self) -> std::result::Result<(), String> {
        for (name, e) in &self.expect {
            e.validate(self)
                .map_err(|m| format!("`expect.\"{name}\".{m}"))?;
        }
        if self.expect.is_empty() {
            return Err("`expect`: name at least one variant".into());
        }
        for name in self.expect.keys() {
            Variant::parse(name).map_err(|e| format!("`expect.\"{name}\"`: {e}"))?;
        }
        Ok(())
    }

    /// Refuses a phase kill or I/O fault that no worker process could carry: one aimed at a
    /// kind the scenario has no forked worker of (the plan would drop it, and the seed would
    /// plan nothing). Only forked workers carry faults at exact points; `command` ones are
    /// exec'd programs.
    fn refuse_absent_targets(&self) -> std::result::Result<(), String> {
        let mut kinds: Vec<&str> = Vec::new();
        for w in self.processes() {
            if w.kind != WorkerKind::Command && !kinds.contains(&w.kind.name()) {
                kinds.push(w.kind.name());
            }
        }
        let targets = (self.faults.phase_kills.iter().map(|k| k.worker))
            .enumerate()
            .map(|(i, w)| (format!("faults.phase_kills[{i}]"), w))
            .chain(
                (self.faults.io.iter().map(|f| f.worker))
                    .enumerate()
                    .map(|(i, w)| (format!("faults.io[{i}]"), w)),
            )
            .chain(
                (self.faults.stall_worker)
                    .filter(|_| self.faults.stalls > 0)
                    .map(|w| ("faults.stall".to_string(), Some(w))),
            );
        for (key, worker) in targets {
            let missing = match worker {
                Some(kind) if !kinds.contains(&kind.name()) => {
                    format!(
                        "`{key}.worker` = \"{}\": no such forked worker",
                        kind.name()
                    )
                }
                None if kinds.is_empty() => format!("`{key}`: no forked worker to carry it"),
                _ => continue,
            };
            return Err(format!(
                "{missing} (the scenario's forked workers: {}; `command` workers carry no \
                 phase or I/O faults)",
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ));
        }
        Ok(())
    }

    /// The file stem, used as the scenario's name in reports.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    }

    /// The variants the scenario declares, in file order of `expect`.
    pub fn variants(&self) -> Vec<Variant> {
        self.expect
            .keys()
            .filter_map(|k| Variant::parse(k).ok())
            .collect()
    }

    /// The workers, one entry per process (counts expanded), in file order.
    pub fn processes(&self) -> Vec<&WorkerSpec> {
        self.workers
            .iter()
            .flat_map(|w| std::iter::repeat_n(w, w.count as usize))
            .collect()
    }
}

/// The TOML files named by `paths`: files as they are, folders expanded to their `*.toml`
/// files (sorted).
pub fn toml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| Error::ReadScenario {
                path: path.clone(),
                source,
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// The store phase with this name.
pub fn phase_named(name: &str) -> Option<kanban_store::Phase> {
    kanban_store::Phase::ALL
        .into_iter()
        .find(|p| p.name() == name)
}

/// Which store a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// The hardened store.
    Hardened,
    /// The upstream code at bug time.
    Naive,
    /// The hardened store plus one hazard.
    Hazard(HazardKey),
}

/// A hazard, ordered by its position in [`Hazard::ALL`] (for stable report order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HazardKey(usize);

impl HazardKey {
    /// The hazard.
    pub fn hazard(self) -> Hazard {
        Hazard::ALL[self.0]
    }
}

impl Variant {
    /// Parses `hardened`, `naive` or `hazard:<name>`.
    pub fn parse(name: &str) -> Result<Variant> {
        let unknown = || {
            let names: Vec<&str> = Hazard::ALL.iter().map(|h| h.name()).collect();
            Error::Variant(name.to_string(), names.join(", "))
        };
        match name {
            "hardened" => Ok(Variant::Hardened),
            "naive" => Ok(Variant::Naive),
            _ => {
                let hazard = name.strip_prefix("hazard:").ok_or_else(unknown)?;
                let i = Hazard::ALL
                    .iter()
                    .position(|h| h.name() == hazard)
                    .ok_or_else(unknown)?;
                Ok(Variant::Hazard(HazardKey(i)))
            }
        }
    }

    /// The gateway's damage policy: the store's, or upstream's for `naive` (it had no
    /// repair). A scenario's gateway keys override it.
    pub fn damage_policy(self) -> DamagePolicy {
        match self {
            Variant::Naive => DamagePolicy::UPSTREAM,
            Variant::Hardened | Variant::Hazard(_) => DamagePolicy::default(),
        }
    }

    /// The hazards this variant switches on.
    pub fn hazards(self) -> HazardSet {
        match self {
            Variant::Hardened => HazardSet::default(),
            Variant::Naive => HazardSet::naive(),
            Variant::Hazard(k) => HazardSet::default().with(k.hazard()),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Hardened => f.write_str("hardened"),
            Variant::Naive => f.write_str("naive"),
            Variant::Hazard(k) => write!(f, "hazard:{}", k.hazard().name()),
        }
    }
}
