//! One step of the token protocol, over any transport.
//!
//! The supervisor's side of the protocol is this loop: pick the next unit, hand it the
//! token with the logical time, wait until it hands the token back at its next scheduling
//! point (or dies), and record where it went. The harness's transport is a socket per
//! worker process; the model tests' is a condition variable per thread. Both run this same
//! code, so what `loom` and `shuttle` check is what the harness runs.

use crate::scheduler::{Scheduler, Unit};

/// What a unit did with the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// It reached scheduling point `P`, and may go on after `sleep_us` of logical time.
    Point {
        /// Where it is (for the trace).
        at: P,
        /// How long it sleeps (0: it may go on at once).
        sleep_us: u64,
    },
    /// It is gone (exited, killed, or stuck and killed): the token is free.
    Gone,
}

/// How the supervisor reaches the units.
pub trait Transport {
    /// What a unit says at a scheduling point.
    type Point;
    /// Hands the token to `unit` (starting it first if it is absent) with the clock at
    /// `now_us`.
    fn grant(&mut self, unit: Unit, now_us: u64);
    /// Waits until `unit`, which holds the token, gives it back.
    fn wait(&mut self, unit: Unit) -> Event<Self::Point>;
}

/// One step: the next unit runs until its next point. `None` when every unit is absent.
pub fn step<T: Transport>(
    sched: &mut Scheduler,
    transport: &mut T,
) -> Option<(Unit, Event<T::Point>)> {
    let unit = sched.pick()?;
    transport.grant(unit, sched.now_us());
    let event = transport.wait(unit);
    match &event {
        Event::Point { sleep_us: 0, .. } => sched.ready(unit),
        Event::Point { sleep_us, .. } => sched.wait_until(unit, sched.now_us() + sleep_us),
        Event::Gone => sched.remove(unit),
    }
    Some((unit, event))
}
