//! The token and the logical clock.
//!
//! Each unit (a worker slot of the supervisor) is in one [`State`]. At most one is
//! [`State::Running`]: it holds the token until it reaches its next scheduling point
//! ([`Scheduler::ready`], [`Scheduler::wait_until`]) or dies ([`Scheduler::remove`]); only
//! then may [`Scheduler::pick`] hand the token on. Every pick is one *step* and moves the
//! logical clock on by a fixed quantum; when no unit may run but some wait, the clock jumps
//! to the earliest wake-up, so sleeping never costs real time and no wake-up is lost.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::strategy::{Picker, Strategy};

/// A schedulable unit: an index the caller chose (a worker slot).
pub type Unit = usize;

/// Where a unit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No process: never started, dead, or finished.
    Absent,
    /// At a scheduling point, may run.
    Ready,
    /// May run once the clock reaches `until_us` (a sleep, a stall, or a pending restart).
    Waiting {
        /// Logical microseconds.
        until_us: u64,
    },
    /// Holds the token.
    Running,
}

/// The scheduler of one run.
#[derive(Debug)]
pub struct Scheduler {
    states: Vec<State>,
    now_us: u64,
    quantum_us: u64,
    steps: u64,
    picker: Picker,
    rng: ChaCha8Rng,
}

impl Scheduler {
    /// A scheduler for `units` units, all [`State::Absent`], with the clock at 0; each step
    /// costs `quantum_us` of logical time.
    pub fn new(units: usize, seed: u64, strategy: Strategy, quantum_us: u64) -> Scheduler {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let picker = Picker::new(strategy, units, &mut rng);
        Scheduler {
            states: vec![State::Absent; units],
            now_us: 0,
            quantum_us,
            steps: 0,
            picker,
            rng,
        }
    }

    /// The logical clock, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Steps taken (picks).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The state of `unit`.
    pub fn state(&self, unit: Unit) -> State {
        self.states[unit]
    }

    /// The unit holding the token, if any.
    pub fn running(&self) -> Option<Unit> {
        self.states.iter().position(|&s| s == State::Running)
    }

    /// The running `unit` reached a scheduling point and may go on at once.
    pub fn ready(&mut self, unit: Unit) {
        assert_eq!(
            self.states[unit],
            State::Running,
            "ready from a unit without the token"
        );
        self.states[unit] = State::Ready;
    }

    /// `unit` may not run before `until_us`: the running unit sleeping, a stall of a unit at
    /// a point (it keeps the later of two wake-ups), or the start of an absent one (a first
    /// start at 0, or a restart; the unit it then picks is a new incarnation).
    pub fn wait_until(&mut self, unit: Unit, until_us: u64) {
        self.states[unit] = match self.states[unit] {
            State::Absent => {
                self.picker.started(unit, &mut self.rng);
                State::Waiting { until_us }
            }
            State::Waiting { until_us: t } => State::Waiting {
                until_us: t.max(until_us),
            },
            State::Ready | State::Running => State::Waiting { until_us },
        };
    }

    /// `unit` is gone (died or finished); if it held the token, the token is free.
    pub fn remove(&mut self, unit: Unit) {
        self.states[unit] = State::Absent;
    }

    /// Hands the token to the next unit, or `None` when every unit is absent. Panics if a
    /// unit still holds it.
    pub fn pick(&mut self) -> Option<Unit> {
        assert_eq!(self.running(), None, "pick while a unit holds the token");
        let mut eligible = self.eligible();
        if eligible.is_empty() {
            let wake = self
                .states
                .iter()
                .filter_map(|s| match s {
                    State::Waiting { until_us } => Some(*until_us),
                    _ => None,
                })
                .min()?;
            self.now_us = self.now_us.max(wake);
            eligible = self.eligible();
        }
        self.steps += 1;
        self.now_us += self.quantum_us;
        let unit = self.picker.pick(&eligible, self.steps, &mut self.rng);
        self.states[unit] = State::Running;
        Some(unit)
    }

    fn eligible(&self) -> Vec<Unit> {
        let now = self.now_us;
        (0..self.states.len())
            .filter(|&u| match self.states[u] {
                State::Ready => true,
                State::Waiting { until_us } => until_us <= now,
                State::Absent | State::Running => false,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(strategy: Strategy, seed: u64) -> Vec<Unit> {
        let mut s = Scheduler::new(3, seed, strategy, 10);
        for u in 0..3 {
            s.wait_until(u, 0);
        }
        (0..50)
            .map(|_| {
                let u = s.pick().unwrap();
                s.ready(u);
                u
            })
            .collect()
    }

    #[test]
    fn the_same_seed_picks_the_same_units() {
        for strategy in [
            Strategy::RandomWalk,
            Strategy::Pct {
                depth: 3,
                horizon: 50,
            },
        ] {
            assert_eq!(trace(strategy, 7), trace(strategy, 7));
            assert_ne!(trace(strategy, 7), trace(strategy, 8), "{strategy:?}");
        }
    }

    #[test]
    fn a_random_walk_runs_everyone() {
        let t = trace(Strategy::RandomWalk, 1);
        assert!((0..3).all(|u| t.contains(&u)), "{t:?}");
    }

    #[test]
    fn pct_runs_the_highest_priority_until_a_change_point() {
        // depth 1: no change points, one unit runs every step.
        let t = trace(
            Strategy::Pct {
                depth: 1,
                horizon: 50,
            },
            3,
        );
        assert!(t.iter().all(|&u| u == t[0]), "{t:?}");
        // depth 3: two change points, so at least two units run.
        let t = trace(
            Strategy::Pct {
                depth: 3,
                horizon: 20,
            },
            3,
        );
        assert!(t.iter().any(|&u| u != t[0]), "{t:?}");
    }

    #[test]
    fn sleepers_wake_by_logical_time_and_the_clock_jumps() {
        let mut s = Scheduler::new(2, 0, Strategy::RandomWalk, 10);
        s.wait_until(0, 5_000);
        s.wait_until(1, 2_000);
        assert_eq!(s.pick(), Some(1));
        assert_eq!(s.now_us(), 2_010);
        s.wait_until(1, 9_000);
        assert_eq!(s.pick(), Some(0));
        assert_eq!(s.now_us(), 5_010);
        s.remove(0);
        assert_eq!(s.pick(), Some(1));
        s.remove(1);
        assert_eq!(s.pick(), None);
    }

    #[test]
    fn a_stall_keeps_the_later_wake_up() {
        let mut s = Scheduler::new(1, 0, Strategy::RandomWalk, 1);
        s.wait_until(0, 100);
        s.wait_until(0, 50);
        assert_eq!(s.state(0), State::Waiting { until_us: 100 });
    }

    #[test]
    #[should_panic(expected = "pick while a unit holds the token")]
    fn no_second_runner() {
        let mut s = Scheduler::new(2, 0, Strategy::RandomWalk, 1);
        s.wait_until(0, 0);
        s.pick();
        s.pick();
    }
}
