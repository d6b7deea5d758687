//! Who runs next among the units that may: a uniform random walk, or PCT.
//!
//! PCT (Burckhardt et al., "A randomized scheduler with probabilistic guarantees of finding
//! bugs", ASPLOS 2010) gives each unit a random priority, always runs the highest-priority
//! unit that may run, and at `depth - 1` random steps lowers the running unit's priority
//! below every other. A bug that needs `depth` ordering constraints is found with
//! probability at least 1/(n·k^(depth-1)) per run, far better than a random walk for
//! bugs that need a long stretch of one unit running alone (a whole transaction between
//! two points of another process).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How the next unit is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Uniformly among the units that may run.
    RandomWalk,
    /// Priority-based (PCT) with `depth - 1` priority change points spread over the first
    /// `horizon` steps.
    Pct {
        /// The bug depth PCT targets (at least 1).
        depth: u32,
        /// The number of steps the change points are drawn from.
        horizon: u64,
    },
}

/// The strategy's state during one run.
#[derive(Debug)]
pub(crate) enum Picker {
    Random,
    Pct {
        depth: u64,
        priorities: Vec<u64>,
        /// Steps at which the running unit's priority drops, ascending.
        changes: Vec<u64>,
        /// Change points passed so far.
        passed: usize,
    },
}

impl Picker {
    pub(crate) fn new(strategy: Strategy, units: usize, rng: &mut ChaCha8Rng) -> Picker {
        match strategy {
            Strategy::RandomWalk => Picker::Random,
            Strategy::Pct { depth, horizon } => {
                let depth = u64::from(depth.max(1));
                let mut changes: Vec<u64> = (1..depth)
                    .map(|_| rng.random_range(1..=horizon.max(1)))
                    .collect();
                changes.sort_unstable();
                Picker::Pct {
                    depth,
                    priorities: vec![0; units],
                    changes,
                    passed: 0,
                }
            }
        }
    }

    /// A unit starts (or starts again): under PCT it draws a fresh priority above every
    /// lowered one.
    pub(crate) fn started(&mut self, unit: usize, rng: &mut ChaCha8Rng) {
        if let Picker::Pct {
            depth, priorities, ..
        } = self
        {
            priorities[unit] = *depth + rng.random_range(0..1u64 << 32);
        }
    }

    /// Picks among `eligible` (ascending unit numbers, not empty) at `step` (1-based).
    pub(crate) fn pick(&mut self, eligible: &[usize], step: u64, rng: &mut ChaCha8Rng) -> usize {
        match self {
            Picker::Random => eligible[rng.random_range(0..eligible.len())],
            Picker::Pct {
                depth,
                priorities,
                changes,
                passed,
            } => {
                let best = *eligible
                    .iter()
                    .max_by_key(|&&u| (priorities[u], std::cmp::Reverse(u)))
                    .expect("eligible is not empty");
                while *passed < changes.len() && changes[*passed] <= step {
                    *passed += 1;
                    // Below every initial priority (>= depth), and below earlier drops.
                    priorities[best] = *depth - *passed as u64;
                }
                best
            }
        }
    }
}
