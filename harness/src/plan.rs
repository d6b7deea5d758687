//! From a seed to a plan: everything random about a run is decided here, up front.
//!
//! The seed drives one ChaCha8 stream (stable across platforms and versions), from which
//! come each worker's own seed and every fault: when each SIGKILL lands and on whom, when
//! and how long each stall lasts, and at which entry into which store phase a worker is
//! killed. The plan is printed by `replay`, so a failing seed can be read before it is
//! rerun.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fault::{IoAction, IoFault};
use crate::pagecache::Mode;
use crate::scenario::{IoPick, Scenario, WorkerKind, phase_named};

/// The whole plan of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The seed it came from.
    pub seed: u64,
    /// One entry per worker process.
    pub workers: Vec<WorkerPlan>,
    /// Faults the supervisor delivers, by time.
    pub faults: Vec<TimedFault>,
}

/// What one worker process is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Its index in the scenario's process list.
    pub index: usize,
    /// Its kind.
    pub kind: WorkerKind,
    /// Its own seed (each restart derives a new one from it).
    pub seed: u64,
    /// Kills inside store phases, each given to every incarnation until it lands.
    pub phase_kills: Vec<PhaseKillPlan>,
    /// Faults at exact points of file I/O, given to each incarnation until each lands.
    pub io_faults: Vec<IoFault>,
    /// How long a `stop` fault leaves this worker stopped, in milliseconds.
    pub stop_ms: u64,
}

/// Kill at the `nth` entry into `phase`, `delay_us` after entering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseKillPlan {
    /// Its index in the scenario's `faults.phase_kills` (noted as `a<id>` when armed and
    /// `p<id>` when it fires).
    pub id: usize,
    /// The store phase.
    pub phase: kanban_store::Phase,
    /// Which entry (1-based).
    pub nth: u32,
    /// Microseconds after entry (0: at once).
    pub delay_us: u64,
}

/// A fault the supervisor delivers at a moment of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedFault {
    /// Milliseconds after the workers start.
    pub at_ms: u64,
    /// The target worker's index.
    pub worker: usize,
    /// What happens.
    pub action: FaultAction,
}

/// What a timed fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// SIGKILL.
    Kill,
    /// SIGSTOP, then SIGCONT after this many milliseconds.
    Stall(u64),
    /// A power cut: every worker SIGKILLed at once, the board's files cut by the page-cache
    /// model, the workers restarted (the target worker is not used).
    PowerCut,
}

impl Plan {
    /// Faults planned in this seed: phase kills and I/O faults.
    /// A power cut given to every worker (`every_worker`: whoever reaches the point first)
    /// is one planned fault: one cut, however many carry it.
    pub fn faults_planned(&self) -> u32 {
        let others: usize = (self.workers.iter())
            .map(|w| {
                let io = w
                    .io_faults
                    .iter()
                    .filter(|f| f.action != IoAction::PowerCut);
                w.phase_kills.len() + io.count()
            })
            .sum();
        others as u32 + self.power_cut_faults()
    }

    /// Power cuts planned at exact file operations in this seed (one per `faults.io` entry,
    /// however many workers carry it).
    pub fn power_cut_faults(&self) -> u32 {
        let ids: std::collections::BTreeSet<usize> = (self.workers.iter())
            .flat_map(|w| &w.io_faults)
            .filter(|f| f.action == IoAction::PowerCut)
            .map(|f| f.id)
            .collect();
        ids.len() as u32
    }

    /// Timed power cuts planned in this seed.
    pub fn timed_cuts(&self) -> u32 {
        (self.faults.iter())
            .filter(|f| f.action == FaultAction::PowerCut)
            .count() as u32
    }

    /// The mode and the randomness of the seed's `k`th power cut (0-based), drawn from a
    /// stream of their own, so that a cut replays byte for byte from the seed and the
    /// page-cache journal, whatever else the seed drew.
    pub fn power_cut(&self, scenario: &Scenario, k: u32) -> (Mode, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ 0x5043_5554_0000_0000 ^ u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let modes = scenario.power.modes();
        let mode = modes[rng.random_range(0..modes.len())];
        (mode, rng)
    }

    /// The plan of `seed` for `scenario`.
    pub fn new(scenario: &Scenario, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let processes = scenario.processes();
        let mut workers: Vec<WorkerPlan> = processes
            .iter()
            .enumerate()
            .map(|(index, spec)| WorkerPlan {
                index,
                kind: spec.kind,
                seed: rng.random(),
                phase_kills: Vec::new(),
                io_faults: Vec::new(),
                stop_ms: 0,
            })
            .collect();
        plan_phase_kills(scenario, &mut workers, &mut rng);
        plan_io_faults(scenario, &mut workers, &mut rng);
        let mut faults = plan_timed(scenario, &workers, &mut rng);
        faults.sort_by_key(|t| (t.at_ms, t.worker));
        Plan {
            seed,
            workers,
            faults,
        }
    }
}

/// Gives each of the scenario's phase kills to one forked worker of its kind, at a drawn
/// entry and delay.
fn plan_phase_kills(scenario: &Scenario, workers: &mut [WorkerPlan], rng: &mut ChaCha8Rng) {
    for (id, kill) in scenario.faults.phase_kills.iter().enumerate() {
        let targets = forked_of_kind(workers, kill.worker);
        let target = targets[rng.random_range(0..targets.len())];
        workers[target].phase_kills.push(PhaseKillPlan {
            id,
            phase: phase_named(&kill.phase).expect("validated when parsed"),
            nth: rng.random_range(1..=kill.max_nth),
            delay_us: rng.random_range(kill.delay_us[0]..=kill.delay_us[1]),
        });
    }
}

/// Gives the chosen I/O faults (every one, or one drawn) to one forked worker of their kind
/// (or to each, with `every_worker`), at a drawn Nth match.
fn plan_io_faults(scenario: &Scenario, workers: &mut [WorkerPlan], rng: &mut ChaCha8Rng) {
    let io = &scenario.faults.io;
    let chosen: Vec<usize> = match scenario.faults.io_pick {
        IoPick::All => (0..io.len()).collect(),
        IoPick::One if io.is_empty() => Vec::new(),
        IoPick::One => vec![rng.random_range(0..io.len())],
    };
    for id in chosen {
        let spec = &io[id];
        let mut targets = forked_of_kind(workers, spec.worker);
        if !spec.every_worker {
            targets = vec![targets[rng.random_range(0..targets.len())]];
        }
        for target in targets {
            let w = &mut workers[target];
            w.io_faults.push(IoFault {
                id,
                phase: spec.phase,
                file: spec.file,
                op: spec.op,
                nth: rng.random_range(spec.nth[0]..=spec.nth[1]),
                action: spec.action,
                sticky: spec.sticky,
            });
            if spec.action == IoAction::Stop {
                w.stop_ms = w.stop_ms.max(spec.stop_ms);
            }
        }
    }
}

/// The timed kills and stalls, at drawn moments, on drawn workers (not yet sorted).
fn plan_timed(
    scenario: &Scenario,
    workers: &[WorkerPlan],
    rng: &mut ChaCha8Rng,
) -> Vec<TimedFault> {
    let budget = scenario.budget_ms.max(1);
    let n = workers.len();
    let f = &scenario.faults;
    let mut faults = Vec::new();
    for _ in 0..f.kills {
        faults.push(TimedFault {
            at_ms: rng.random_range(0..budget),
            worker: rng.random_range(0..n),
            action: FaultAction::Kill,
        });
    }
    let stalled = f.stall_worker.map(|k| forked_of_kind(workers, Some(k)));
    for _ in 0..f.stalls {
        faults.push(TimedFault {
            at_ms: match f.stall_at_ms {
                Some([lo, hi]) => rng.random_range(lo..=hi),
                None => rng.random_range(0..budget),
            },
            worker: match &stalled {
                Some(targets) => targets[rng.random_range(0..targets.len())],
                None => rng.random_range(0..n),
            },
            action: FaultAction::Stall(rng.random_range(f.stall_ms[0]..=f.stall_ms[1])),
        });
    }
    // Drawn last, so that scenarios without cuts keep the plans they had.
    for _ in 0..scenario.power.cuts {
        faults.push(TimedFault {
            at_ms: match scenario.power.cut_at_ms {
                Some([lo, hi]) => rng.random_range(lo..=hi),
                None => rng.random_range(0..budget),
            },
            worker: 0,
            action: FaultAction::PowerCut,
        });
    }
    faults
}

/// The forked workers (not `command` ones) of `kind` (any kind when `None`): the ones that
/// can carry faults at exact points. Never empty: the scenario refuses a fault no worker
/// could carry when it is parsed.
fn forked_of_kind(workers: &[WorkerPlan], kind: Option<WorkerKind>) -> Vec<usize> {
    let targets: Vec<usize> = workers
        .iter()
        .filter(|w| w.kind != WorkerKind::Command)
        .filter(|w| kind.is_none_or(|k| k == w.kind))
        .map(|w| w.index)
        .collect();
    assert!(
        !targets.is_empty(),
        "a fault for {kind:?} with no forked worker of that kind: refused when parsed"
    );
    targets
}

/// The seed of a worker's `incarnation` (0 for the first start).
pub fn incarnation_seed(worker_seed: u64, incarnation: u32) -> u64 {
    worker_seed ^ u64::from(incarnation).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared phase kill is planned, even two on the same worker (one slot per
    /// worker once kept the last: restart-storm planned 87 of its 100 over 50 seeds).
    #[test]
    fn every_declared_phase_kill_is_planned() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/restart-storm.toml"
        ));
        let scenario = Scenario::load(path).unwrap();
        let declared = scenario.faults.phase_kills.len();
        let mut shared = 0;
        for seed in 0..50 {
            let plan = Plan::new(&scenario, seed);
            let mut ids: Vec<usize> = plan
                .workers
                .iter()
                .flat_map(|w| w.phase_kills.iter().map(|k| k.id))
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..declared).collect::<Vec<_>>(), "seed {seed}");
            assert_eq!(plan.faults_planned() as usize, declared, "seed {seed}");
            shared += plan
                .workers
                .iter()
                .filter(|w| w.phase_kills.len() > 1)
                .count();
        }
        assert!(
            shared > 0,
            "no seed put two kills on one worker: the test shows nothing"
        );
    }

    /// A power cut every worker carries (whoever reaches the point first cuts) is one
    /// planned fault, not one per worker.
    ///
    /// Failed before: power-cut-during-journal-mode planned 3 per seed, of which at most one
    /// could land (cuts 94 of 180 over 60 seeds).
    #[test]
    fn a_power_cut_on_every_worker_is_planned_once() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/power-cut-during-journal-mode.toml"
        ));
        let scenario = Scenario::load(path).unwrap();
        for seed in 0..20 {
            let plan = Plan::new(&scenario, seed);
            let carriers = (plan.workers.iter())
                .filter(|w| w.io_faults.iter().any(|f| f.action == IoAction::PowerCut))
                .count();
            assert_eq!(carriers, 3, "seed {seed}");
            assert_eq!(plan.power_cut_faults(), 1, "seed {seed}");
            assert_eq!(plan.faults_planned(), 1, "seed {seed}");
        }
    }

    /// `faults.stall_worker` aims every stall at a worker of that kind.
    ///
    /// Failed before: the key was unknown (`unknown field \`stall_worker\``).
    #[test]
    fn stalls_stop_the_kind_they_name() {
        let text = "description = \"t\"\nsingle_writer = true\n\
            [[workers]]\nkind = \"dashboard\"\ncount = 3\n\
            [[workers]]\nkind = \"gateway\"\n\
            [faults]\nstalls = 4\nstall_worker = \"gateway\"\n\
            [expect.hardened]\nmax_failure_rate = 0.0\n";
        let scenario = Scenario::parse(text, std::path::Path::new("t.toml")).unwrap();
        let gateway = (scenario.processes().iter())
            .position(|w| w.kind == WorkerKind::Gateway)
            .unwrap();
        for seed in 0..20 {
            let plan = Plan::new(&scenario, seed);
            assert_eq!(plan.faults.len(), 4);
            assert!(
                plan.faults.iter().all(|f| f.worker == gateway),
                "seed {seed}: {:?}",
                plan.faults
            );
        }
    }
}
