//! The in-memory model of the harness's token protocol, shared by `tests/shuttle.rs` and
//! `tests/loom.rs`.
//!
//! A *unit* is a thread instead of a worker process, and its socket is a [`Mailbox`]: a
//! mutex-protected slot per direction (the grant with the logical time; the point reached,
//! then the end of the stream once the unit is gone) and a condition variable per
//! direction. [`Model`] is the supervisor's [`Transport`] over those mailboxes; the
//! supervisor loop ([`run`]) drives it with the crate's own [`step`], so the model
//! checkers explore the code the harness runs, not a copy.
//!
//! What a unit does is a [`Script`]: a few scheduling points (some with a sleep), then an
//! exit, or a death, either while it holds the token or while it waits for it (killed at a
//! point). A death is an early return: the unit says nothing; its [`Port`] closes the
//! mailbox when dropped, as the kernel closes a dead process's socket, and the supervisor
//! reads the close as `Gone` (after any point sent before it). A unit that died waiting is
//! found out at its next grant, as a dead worker's socket is. While a unit runs it holds a
//! [`Turn`], which checks that the shared running-counter goes 0 → 1: two units holding
//! the token at once is a failure.
//!
//! The synchronisation primitives come from the `sync` facade below: `loom`'s under
//! `--cfg loom`, `shuttle`'s otherwise. Both mirror `std::sync`, so the rest of this file
//! is the same code for both checkers.

#[cfg(loom)]
mod sync {
    pub use loom::sync::atomic::{AtomicUsize, Ordering};
    pub use loom::sync::{Arc, Condvar, Mutex};
    pub use loom::thread;
}

#[cfg(not(loom))]
mod sync {
    pub use shuttle::sync::atomic::{AtomicUsize, Ordering};
    pub use shuttle::sync::{Arc, Condvar, Mutex};
    pub use shuttle::thread;
}

use kanban_sched::{Event, Scheduler, Strategy, Transport, Unit, step};
use sync::{Arc, AtomicUsize, Condvar, Mutex, Ordering, thread};

/// Where a unit stopped: its incarnation (0 for the first start, 1 after a restart, ...)
/// and the index of the point in its script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub incarnation: usize,
    pub index: usize,
}

/// One `(unit, event)` per step, as the supervisor saw them.
pub type Trace = Vec<(Unit, Event<At>)>;

/// What one incarnation of a unit does.
#[derive(Clone, Debug)]
pub struct Script {
    /// One scheduling point per entry, with the logical time it sleeps there (0: none).
    pub sleeps: Vec<u64>,
    /// How it ends.
    pub end: End,
}

/// How an incarnation of a unit ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// It says it is gone after its last point.
    Exit,
    /// Granted the token after its `n`th point, it dies holding it, without a word.
    DiesRunning(usize),
    /// It dies after its `n`th point (0: before its first grant), while it waits for the
    /// token, without a word.
    DiesWaiting(usize),
}

impl Script {
    /// The points it reports before it is gone.
    fn points(&self) -> usize {
        match self.end {
            End::Exit => self.sleeps.len(),
            End::DiesRunning(n) | End::DiesWaiting(n) => n.min(self.sleeps.len()),
        }
    }
}

/// One unit (worker slot) of the supervisor: its incarnations, in order. After each one but
/// the last is gone, the supervisor starts the next one `restart_delay_us` later.
#[derive(Clone, Debug)]
pub struct Plan {
    pub incarnations: Vec<Script>,
    pub restart_delay_us: u64,
}

impl Plan {
    /// The events the supervisor must see from this unit, in order, whatever the
    /// interleaving with the other units.
    fn expected(&self) -> Vec<Event<At>> {
        let mut events = Vec::new();
        for (incarnation, script) in self.incarnations.iter().enumerate() {
            for index in 0..script.points() {
                let at = At { incarnation, index };
                let sleep_us = script.sleeps[index];
                events.push(Event::Point { at, sleep_us });
            }
            events.push(Event::Gone);
        }
        events
    }
}

/// What the units share: the running-counter, and the work each unit did.
struct Shared {
    /// Units between taking the token and handing it back: never more than one.
    running: AtomicUsize,
    /// Points each unit reached (over all its incarnations).
    done: Vec<AtomicUsize>,
}

/// A unit's running stretch: from the grant until it hands the token back (or dies).
struct Turn<'a>(&'a AtomicUsize);

impl<'a> Turn<'a> {
    fn begin(running: &'a AtomicUsize) -> Turn<'a> {
        let before = running.fetch_add(1, Ordering::SeqCst);
        assert_eq!(before, 0, "a unit runs while another holds the token");
        Turn(running)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The socket between the supervisor and one incarnation of a unit.
#[derive(Default)]
struct Mailbox {
    slot: Mutex<Slot>,
    granted: Condvar,
    replied: Condvar,
}

#[derive(Default)]
struct Slot {
    /// The token, with the logical time, on its way to the unit.
    grant: Option<u64>,
    /// The token on its way back, with the point reached and the sleep there.
    point: Option<(At, u64)>,
    /// The unit is gone: read after `point`, as the end of a socket after its last message.
    closed: bool,
}

/// The unit's end of its mailbox. Dropping it without [`Port::exit`] closes it: a dead
/// unit releases the token.
struct Port {
    mailbox: Arc<Mailbox>,
    closed: bool,
}

impl Port {
    /// Blocks until the unit holds the token; returns the logical time.
    fn wait_grant(&self) -> u64 {
        let mut slot = self.mailbox.slot.lock().unwrap();
        loop {
            if let Some(now_us) = slot.grant.take() {
                return now_us;
            }
            slot = self.mailbox.granted.wait(slot).unwrap();
        }
    }

    /// Hands the token back at a point.
    fn report(&self, at: At, sleep_us: u64) {
        let mut slot = self.mailbox.slot.lock().unwrap();
        assert!(slot.point.is_none(), "a unit replied twice to one grant");
        slot.point = Some((at, sleep_us));
        self.mailbox.replied.notify_one();
    }

    /// Closes the mailbox: the supervisor will read `Gone`.
    fn close(&mut self) {
        self.closed = true;
        let mut slot = self.mailbox.slot.lock().unwrap();
        slot.closed = true;
        self.mailbox.replied.notify_one();
    }

    /// A normal exit: the unit closes its end itself.
    fn exit(mut self) {
        self.close();
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // A panicking unit has already failed the test; closing would only take a lock in
        // the middle of an unwind.
        if !self.closed && !std::thread::panicking() {
            self.close();
        }
    }
}

/// The body of one incarnation of `unit`.
fn unit_main(unit: Unit, incarnation: usize, script: Script, port: Port, shared: Arc<Shared>) {
    // The grant time and the sleep of the last point.
    let mut last: Option<(u64, u64)> = None;
    for index in 0.. {
        if script.end == End::DiesWaiting(index) {
            // `port` closes; the supervisor finds out after its next grant.
            return;
        }
        let now_us = port.wait_grant();
        if let Some((then_us, sleep_us)) = last {
            assert!(
                now_us >= then_us + sleep_us,
                "unit {unit} woke at {now_us}, before the end of its sleep ({then_us} + {sleep_us})"
            );
        }
        let turn = Turn::begin(&shared.running);
        if script.end == End::DiesRunning(index) {
            // Dies holding the token: `turn` ends, then `port` closes.
            return;
        }
        let Some(&sleep_us) = script.sleeps.get(index) else {
            drop(turn);
            return port.exit();
        };
        shared.done[unit].fetch_add(1, Ordering::SeqCst);
        drop(turn);
        let at = At { incarnation, index };
        port.report(at, sleep_us);
        last = Some((now_us, sleep_us));
    }
}

/// A running incarnation.
struct Live {
    mailbox: Arc<Mailbox>,
    thread: thread::JoinHandle<()>,
}

/// The supervisor's transport: one thread and one mailbox per live unit.
pub struct Model {
    plans: Vec<Plan>,
    shared: Arc<Shared>,
    live: Vec<Option<Live>>,
    /// Incarnations started, per unit.
    started: Vec<usize>,
}

impl Model {
    fn new(plans: &[Plan]) -> Model {
        let shared = Shared {
            running: AtomicUsize::new(0),
            done: plans.iter().map(|_| AtomicUsize::new(0)).collect(),
        };
        Model {
            plans: plans.to_vec(),
            shared: Arc::new(shared),
            live: plans.iter().map(|_| None).collect(),
            started: vec![0; plans.len()],
        }
    }

    /// Starts the next incarnation of `unit`, blocked until its first grant.
    fn start(&mut self, unit: Unit) -> Live {
        let incarnation = self.started[unit];
        self.started[unit] += 1;
        let script = self.plans[unit].incarnations[incarnation].clone();
        let mailbox = Arc::new(Mailbox::default());
        let port = Port {
            mailbox: mailbox.clone(),
            closed: false,
        };
        let shared = self.shared.clone();
        let thread = thread::spawn(move || unit_main(unit, incarnation, script, port, shared));
        Live { mailbox, thread }
    }
}

impl Transport for Model {
    type Point = At;

    fn grant(&mut self, unit: Unit, now_us: u64) {
        if self.live[unit].is_none() {
            let live = self.start(unit);
            self.live[unit] = Some(live);
        }
        let mailbox = &self.live[unit].as_ref().expect("just started").mailbox;
        let mut slot = mailbox.slot.lock().unwrap();
        assert!(slot.grant.is_none(), "unit {unit} granted twice");
        // Its mailbox may be closed already: a unit that died waiting for the token.
        assert!(
            slot.point.is_none(),
            "a point of unit {unit} was never read"
        );
        slot.grant = Some(now_us);
        mailbox.granted.notify_one();
    }

    fn wait(&mut self, unit: Unit) -> Event<At> {
        let live = self.live[unit]
            .as_ref()
            .expect("wait on a unit with no thread");
        let mut slot = live.mailbox.slot.lock().unwrap();
        let event = loop {
            if let Some((at, sleep_us)) = slot.point.take() {
                break Event::Point { at, sleep_us };
            }
            if slot.closed {
                break Event::Gone;
            }
            slot = live.mailbox.replied.wait(slot).unwrap();
        };
        drop(slot);
        if event == Event::Gone {
            // Reap it, as the harness reaps a dead worker.
            let live = self.live[unit].take().expect("checked above");
            live.thread.join().expect("a unit thread panicked");
        }
        event
    }
}

/// One run: starts every unit at time 0, drives them with [`step`] until all are gone
/// (restarting each per its [`Plan`]), checks the run and returns its trace.
///
/// Checks: the loop ends (a lost wake-up would leave it blocked: the checkers report a
/// deadlock); each unit's events are its script's, in order (every point ran, a death
/// released the token); the scheduler took one step per event; every unit thread was
/// reaped and no unit still counts as running.
pub fn run(plans: &[Plan], seed: u64, strategy: Strategy, quantum_us: u64) -> Trace {
    let expected: Vec<Vec<Event<At>>> = plans.iter().map(Plan::expected).collect();
    let total: usize = expected.iter().map(Vec::len).sum();

    let mut model = Model::new(plans);
    let mut sched = Scheduler::new(plans.len(), seed, strategy, quantum_us);
    for unit in 0..plans.len() {
        sched.wait_until(unit, 0);
    }
    let mut ended = vec![0; plans.len()];
    let mut trace = Trace::new();
    while let Some((unit, event)) = step(&mut sched, &mut model) {
        if event == Event::Gone {
            ended[unit] += 1;
            let plan = &plans[unit];
            if ended[unit] < plan.incarnations.len() {
                sched.wait_until(unit, sched.now_us() + plan.restart_delay_us);
            }
        }
        trace.push((unit, event));
        assert!(
            trace.len() <= total,
            "more events than the scripts hold: {trace:?}"
        );
    }

    assert_eq!(sched.steps(), trace.len() as u64, "one step per event");
    for (unit, expected) in expected.iter().enumerate() {
        let seen: Vec<Event<At>> = trace
            .iter()
            .filter(|(u, _)| *u == unit)
            .map(|(_, e)| e.clone())
            .collect();
        assert_eq!(&seen, expected, "events of unit {unit}");
        let points = plans[unit].incarnations.iter().map(Script::points).sum();
        let done = model.shared.done[unit].load(Ordering::SeqCst);
        assert_eq!(done, points, "points unit {unit} ran");
    }
    assert!(
        model.live.iter().all(Option::is_none),
        "a unit thread outlived its Gone"
    );
    assert_eq!(model.shared.running.load(Ordering::SeqCst), 0);
    trace
}
