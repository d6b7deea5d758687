//! The in-memory world of the connection-generations protocol, shared by `tests/loom.rs`
//! and `tests/shuttle.rs`: OS processes are threads, the lock file is a [`LockFile`] (a
//! reader-writer lock on a mutex and a condition variable, with the non-blocking
//! `try_shared`/`try_exclusive` of the real one), and the lock file's content is a
//! mutex-protected [`Published`] word with a condition variable that wakes whoever waits
//! for it to move. The request is kept as [`Requests`] says: a bit of the word, as
//! `maintain` writes it, or a lock a maintenance holds, as the store keeps it.
//!
//! A process is a [`Pool`] over a [`Process`] backend, running the crate's own
//! [`Pool::with`]; a maintainer runs the crate's own [`maintain`] over a [`Maintainer`].
//! So the checkers explore the code the store runs, not a copy of it. The model only
//! decides *when* things happen:
//! - a process runs a few operations back to back (transactions, each a [`Pool::with`]),
//!   then goes idle, running nothing, until every maintainer is done; then it runs one
//!   more if the word moved since its last operation read it, and stops. A process whose
//!   idle session kept the shared lock (or anything a maintenance waits for) therefore
//!   blocks the maintenance for good, which the checkers report as a deadlock: the
//!   maintenances must complete while sessions sit idle;
//! - a maintainer runs its [`Step`]s: maintenances that wait for the exclusive lock, ones
//!   that give up at once when a session holds it (the store's lock timeout, at its
//!   shortest: the request is withdrawn), and waits for processes to have died.
//!
//! Waits are on condition variables (loom explores spins badly, and a wait that can never
//! end is a deadlock both checkers report), but for the processes whose [`Script::polls`]
//! opens the lock as the store does, with `try_shared` and a yield (shuttle only).
//!
//! What is checked, in every explored interleaving:
//! - (a) **no stale handle is used**: at every use (inside an operation) the shared lock is
//!   held, the handle's generation (read under the shared lock when opened) is the
//!   published one, and no maintenance `work` is running; `work` itself sees no shared holder and the exclusive
//!   lock held;
//! - (b) **one reopen per generation**: per process, a checkout gives a new handle exactly
//!   when `Pool::reopens` goes up by one, and (unless a request was withdrawn) only in a
//!   later generation than the last handle's, so at most one handle per generation;
//!   `reopens` never exceeds the maintenances requested; once the last maintenance is
//!   over, one more checkout keeps the handle (no reopen), every process ends on the last
//!   generation, and the word is "number of successful maintenances", request clear;
//! - (c) **no deadlock**: every thread ends (the checkers fail a run in which all threads
//!   wait; a livelock hits loom's branch bound or shuttle's step bound, or the backend's
//!   pause limit);
//! - (d) **release on panic**: a process that panics inside an operation (its handle
//!   in hand; unwinding, caught at the top of its thread) has released its shared lock once the
//!   unwinding is over (see [`DROPPED_WHILE_UNWINDING`]), so a maintenance that waits for
//!   its death gets the exclusive lock (else (c));
//! - (e) **nested operations**: a process whose [`Script::nests`] runs each operation's
//!   second one on a second pool of its own inside the first; it goes ahead while a
//!   maintenance is requested (else (c): the maintenance waits for the outer one), and is
//!   checked as in (a), so the maintenance's `work` comes only after the outer one ends;
//! - and at the end no lock is held.

#[cfg(loom)]
mod sync {
    pub use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub use loom::sync::{Arc, Condvar, Mutex};
    pub use loom::thread;
}

#[cfg(not(loom))]
mod sync {
    pub use shuttle::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub use shuttle::sync::{Arc, Condvar, Mutex};
    pub use shuttle::thread;
}

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use kanban_generations::{Backend, Maintenance, Pool, Word, maintain};
use sync::{Arc, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, thread};

/// Pauses a process may take in one checkout before it gives up. Each pause waits until
/// the request is clear, so a correct run pauses at most once per request; the limit only
/// turns a livelock into an error.
const PAUSE_LIMIT: u32 = 100;

/// What the model's backend can fail with.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// A process paused [`PAUSE_LIMIT`] times in one checkout.
    Timeout,
    /// A maintainer that gives up at once found a session holding the lock.
    Busy,
}

/// Who holds the lock file's session range.
#[derive(Default)]
struct Holders {
    shared: usize,
    exclusive: bool,
}

/// The session range of the lock file: shared for sessions, exclusive for maintenance.
struct LockFile {
    holders: Mutex<Holders>,
    released: Condvar,
}

impl LockFile {
    fn new() -> LockFile {
        LockFile {
            holders: Mutex::new(Holders::default()),
            released: Condvar::new(),
        }
    }

    /// Takes a shared lock if no one holds the exclusive one.
    fn try_shared(&self) -> bool {
        let mut h = self.holders.lock().unwrap();
        if h.exclusive {
            return false;
        }
        h.shared += 1;
        true
    }

    /// Takes the exclusive lock if no one holds any.
    fn try_exclusive(&self) -> bool {
        let mut h = self.holders.lock().unwrap();
        if h.exclusive || h.shared > 0 {
            return false;
        }
        h.exclusive = true;
        true
    }

    /// Takes a shared lock, waiting while a maintenance holds the exclusive one.
    fn lock_shared(&self) {
        let mut h = self.holders.lock().unwrap();
        while h.exclusive {
            h = self.released.wait(h).unwrap();
        }
        h.shared += 1;
    }

    /// Takes the exclusive lock, waiting until no one holds any.
    fn lock_exclusive(&self) {
        let mut h = self.holders.lock().unwrap();
        while h.exclusive || h.shared > 0 {
            h = self.released.wait(h).unwrap();
        }
        h.exclusive = true;
    }

    fn unlock_shared(&self) {
        let mut h = self.holders.lock().unwrap();
        assert!(h.shared > 0, "a shared lock released twice");
        h.shared -= 1;
        if h.shared == 0 {
            self.released.notify_all();
        }
    }

    fn unlock_exclusive(&self) {
        let mut h = self.holders.lock().unwrap();
        assert!(h.exclusive, "the exclusive lock released twice");
        h.exclusive = false;
        self.released.notify_all();
    }

    /// (shared holders, exclusive held).
    fn holders(&self) -> (usize, bool) {
        let h = self.holders.lock().unwrap();
        (h.shared, h.exclusive)
    }
}

/// How a maintenance's request is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// A bit of the published word, checked and set at once (a compare-and-swap).
    Bit,
    /// A lock the maintenance holds while it wants the board, as the store keeps it (an
    /// OFD lock on a byte of the lock file), waiting while another maintenance holds it. A
    /// word read by anyone says `requested` while some maintenance holds it.
    Lock,
}

/// The lock file's content, plus what the threads tell each other through it.
struct Published {
    /// The word as the processes read it.
    word: Word,
    /// With [`Requests::Lock`], the maintainer holding the request lock.
    requester: Option<usize>,
    /// Maintainer threads still running.
    maintainers: usize,
    /// Processes that died.
    dead: usize,
}

/// Everything the threads share.
pub struct World {
    lock: LockFile,
    requests: Requests,
    published: Mutex<Published>,
    /// Notified on every change of [`Published`].
    changed: Condvar,
    /// Set while a maintenance's `work` runs.
    in_maintenance: AtomicBool,
}

impl World {
    fn new(maintainers: usize, requests: Requests) -> World {
        World {
            lock: LockFile::new(),
            requests,
            published: Mutex::new(Published {
                word: Word {
                    generation: 0,
                    requested: false,
                },
                requester: None,
                maintainers,
                dead: 0,
            }),
            changed: Condvar::new(),
            in_maintenance: AtomicBool::new(false),
        }
    }

    fn word(&self) -> Word {
        self.published.lock().unwrap().word
    }

    /// Maintainer `me` takes the request, waiting while another one holds it. As a bit:
    /// checked and set under the word's mutex; as a lock: the requester slot.
    fn request(&self, me: usize) {
        let mut p = self.published.lock().unwrap();
        match self.requests {
            Requests::Bit => {
                while p.word.requested {
                    p = self.changed.wait(p).unwrap();
                }
            }
            Requests::Lock => {
                while p.requester.is_some_and(|r| r != me) {
                    p = self.changed.wait(p).unwrap();
                }
                p.requester = Some(me);
            }
        }
        p.word.requested = true;
        drop(p);
        self.changed.notify_all();
    }

    /// Maintainer `me` publishes `generation` (if any) and withdraws its request.
    fn finish(&self, me: usize, generation: Option<u64>) {
        let mut p = self.published.lock().unwrap();
        if let Some(g) = generation {
            p.word.generation = g;
        }
        if self.requests == Requests::Lock && p.requester == Some(me) {
            p.requester = None;
        }
        p.word.requested = false;
        drop(p);
        self.changed.notify_all();
    }

    /// Waits while a maintenance is requested.
    fn wait_request_clear(&self) {
        let mut p = self.published.lock().unwrap();
        while p.word.requested {
            p = self.changed.wait(p).unwrap();
        }
    }

    /// An idle process, whose last operation read `seen`: waits, holding nothing, until
    /// every maintainer is done. `true` when nothing moved since `seen`.
    fn idle(&self, seen: Word) -> bool {
        let mut p = self.published.lock().unwrap();
        while p.maintainers > 0 {
            p = self.changed.wait(p).unwrap();
        }
        p.word == seen
    }

    fn maintainer_done(&self) {
        self.published.lock().unwrap().maintainers -= 1;
        self.changed.notify_all();
    }

    fn died(&self) {
        self.published.lock().unwrap().dead += 1;
        self.changed.notify_all();
    }

    fn wait_deaths(&self, n: usize) {
        let mut p = self.published.lock().unwrap();
        while p.dead < n {
            p = self.changed.wait(p).unwrap();
        }
    }

    /// (a), at every use of a checked-out handle.
    fn check_use(&self, handle: &Handle) {
        assert!(
            self.lock.holders().0 > 0,
            "handle {:?} used without the shared lock",
            handle.id
        );
        assert!(
            !self.in_maintenance.load(Ordering::SeqCst),
            "handle {:?} used while a maintenance runs",
            handle.id
        );
        let published = self.word().generation;
        assert_eq!(
            handle.generation, published,
            "handle {:?} of generation {} used in generation {published}",
            handle.id, handle.generation
        );
    }

    /// The maintenance's `work`: (a) from the other side.
    fn work(&self) {
        let (shared, exclusive) = self.lock.holders();
        assert!(exclusive, "maintenance work without the exclusive lock");
        assert_eq!(shared, 0, "maintenance work while sessions hold the lock");
        self.in_maintenance.store(true, Ordering::SeqCst);
        self.in_maintenance.store(false, Ordering::SeqCst);
    }
}

/// A session's connections (the shared lock is taken and released around each operation).
pub struct Handle {
    /// The generation published when it was opened (under its shared lock).
    pub generation: u64,
    /// (process, how many handles that process opened before).
    pub id: (usize, u64),
}

/// One process's backend.
pub struct Process {
    world: Arc<World>,
    process: usize,
    /// Opens as the store does (non-blocking tries, a yield between two) rather than by
    /// waiting on the lock.
    polls: bool,
    opened: Cell<u64>,
    /// The word this process read last (in its last operation).
    seen: Cell<Word>,
    /// Operations of this process under way, in any of its pools ([`Backend::under_way`]).
    here: Arc<AtomicUsize>,
}

impl Process {
    /// A backend of `process`, counting its operations in `here` with its other pools'.
    fn new(world: &Arc<World>, process: usize, polls: bool, here: &Arc<AtomicUsize>) -> Process {
        Process {
            world: world.clone(),
            process,
            polls,
            opened: Cell::new(0),
            seen: Cell::new(Word {
                generation: 0,
                requested: false,
            }),
            here: here.clone(),
        }
    }
}

impl Backend for Process {
    type Handle = Handle;
    type Error = Error;

    fn word(&self) -> Result<Word, Error> {
        let word = self.world.word();
        self.seen.set(word);
        Ok(word)
    }

    fn open(&self) -> Result<Handle, Error> {
        let seq = self.opened.get();
        self.opened.set(seq + 1);
        Ok(Handle {
            generation: self.world.word().generation,
            id: (self.process, seq),
        })
    }

    fn hold(&self) -> Result<(), Error> {
        if self.polls {
            while !self.world.lock.try_shared() {
                thread::yield_now();
            }
        } else {
            self.world.lock.lock_shared();
        }
        self.here.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn let_go(&self) {
        self.here.fetch_sub(1, Ordering::SeqCst);
        self.world.lock.unlock_shared();
    }

    fn under_way(&self) -> usize {
        self.here.load(Ordering::SeqCst)
    }

    fn pause(&self, tries: u32) -> Result<(), Error> {
        if tries >= PAUSE_LIMIT {
            return Err(Error::Timeout);
        }
        self.world.wait_request_clear();
        Ok(())
    }
}

/// The exclusive lock, released on drop.
pub struct Exclusive {
    world: Arc<World>,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        self.world.lock.unlock_exclusive();
    }
}

/// One maintenance's view of the lock file.
pub struct Maintainer {
    world: Arc<World>,
    /// Which maintainer thread.
    id: usize,
    give_up: bool,
}

impl Maintenance for Maintainer {
    type Exclusive = Exclusive;
    type Error = Error;

    fn word(&self) -> Result<Word, Error> {
        Ok(self.world.word())
    }

    fn request(&self) -> Result<(), Error> {
        self.world.request(self.id);
        Ok(())
    }

    fn finish(&self, generation: Option<u64>) -> Result<(), Error> {
        self.world.finish(self.id, generation);
        Ok(())
    }

    fn lock_exclusive(&self) -> Result<Exclusive, Error> {
        if self.give_up {
            if !self.world.lock.try_exclusive() {
                return Err(Error::Busy);
            }
        } else {
            self.world.lock.lock_exclusive();
        }
        Ok(Exclusive {
            world: self.world.clone(),
        })
    }
}

/// What a process does.
#[derive(Clone, Copy, Debug)]
pub struct Script {
    /// Checkouts done back to back before the process first goes idle (at least 1).
    pub eager: usize,
    /// `Some(n)`: the process panics right after its `n`th checkout, handle in hand.
    pub dies_after: Option<usize>,
    /// Opens by polling the lock (`try_shared`, then a yield) instead of waiting on it: the
    /// store's way, but a spin, which loom explores badly.
    pub polls: bool,
    /// Each operation runs a second one inside it, on a second pool of the same process
    /// (a request handler's second connection): it must go ahead while a maintenance is
    /// requested, which waits for the outer one (else (c)).
    pub nests: bool,
}

/// One step of a maintainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A maintenance that waits for the exclusive lock.
    Maintain,
    /// A maintenance that gives up (withdrawing its request) if a session holds the lock.
    TryMaintain,
    /// Waits until this many processes have died.
    AwaitDeaths(usize),
}

/// A run: the processes, and the maintainers (one thread each).
#[derive(Clone, Debug)]
pub struct Plan {
    pub processes: Vec<Script>,
    pub maintainers: Vec<Vec<Step>>,
    pub requests: Requests,
}

/// The payload of a process's deliberate panic.
struct Died;

/// What a process that lived to the end reports.
struct Report {
    reopens: u64,
    generation: u64,
}

/// Where a dying process dies, and its pool is dropped: under loom, inside its operation
/// (the shared lock released on the way up of the unwinding, as in a real panic) and the
/// pool while unwinding too; under shuttle, right after its operation, and the pool once
/// the unwinding is caught, because shuttle's primitives stop scheduling in a thread that
/// panics (`ExecutionState::should_stop`), so a lock released while unwinding breaks its
/// runtime rather than the model.
const DROPPED_WHILE_UNWINDING: bool = cfg!(loom);

/// One process thread: its session, and its death if its script says so.
fn process_main(
    world: &Arc<World>,
    process: usize,
    script: Script,
    strict: bool,
) -> Option<Report> {
    let here = Arc::new(AtomicUsize::new(0));
    let mut kept = Some(Pool::new(Process::new(world, process, script.polls, &here)));
    let mut inner = script
        .nests
        .then(|| Pool::new(Process::new(world, process, script.polls, &here)));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut owned;
        let pool = if DROPPED_WHILE_UNWINDING {
            owned = kept.take().expect("a pool");
            &mut owned
        } else {
            kept.as_mut().expect("a pool")
        };
        session(world, process, script, strict, pool, inner.as_mut())
    }));
    drop(kept);
    match outcome {
        Ok(report) => Some(report),
        Err(payload) if payload.is::<Died>() => {
            world.died();
            None
        }
        // A failed check: let the checker see it.
        Err(payload) => resume_unwind(payload),
    }
}

/// One process's life: checkouts, each followed by a use, until it is caught up.
fn session(
    world: &World,
    process: usize,
    script: Script,
    strict: bool,
    pool: &mut Pool<Process>,
    mut inner: Option<&mut Pool<Process>>,
) -> Report {
    let mut last: Option<(u64, (usize, u64))> = None;
    let mut checkouts = 0;
    loop {
        let reopens = pool.reopens();
        checkouts += 1;
        let dies = script.dies_after == Some(checkouts);
        let now = pool
            .with(|handle| {
                world.check_use(handle);
                if let Some(inner) = inner.as_mut() {
                    inner
                        .with(|nested| world.check_use(nested))
                        .expect("a nested operation");
                }
                if dies && DROPPED_WHILE_UNWINDING {
                    // Unwinds out of the operation, shared lock held.
                    resume_unwind(Box::new(Died));
                }
                (handle.generation, handle.id)
            })
            .expect("an operation");
        if dies {
            // Unwinds without the panic hook (shuttle's would report a failure).
            resume_unwind(Box::new(Died));
        }
        // (b): a new handle exactly when `reopens` goes up, and in a later generation.
        let reopened = pool.reopens() - reopens;
        match last {
            None => assert_eq!(reopened, 0, "process {process}: a reopen with no handle"),
            Some((generation, id)) => {
                assert_eq!(
                    reopened,
                    u64::from(id != now.1),
                    "process {process}: reopens counted {reopened} for handle {:?} after {id:?}",
                    now.1
                );
                if id != now.1 {
                    let later = if strict {
                        now.0 > generation
                    } else {
                        now.0 >= generation
                    };
                    assert!(
                        later,
                        "process {process}: reopened in generation {} after a handle of {generation}",
                        now.0
                    );
                }
            }
        }
        last = Some(now);
        if checkouts >= script.eager && world.idle(pool.backend().seen.get()) {
            break;
        }
    }
    // Nothing moved since the last maintenance: the next operation keeps the handle.
    let (generation, id) = last.expect("checked out at least once");
    let reopens = pool.reopens();
    let kept = pool
        .with(|handle| {
            world.check_use(handle);
            handle.id
        })
        .expect("an operation");
    assert_eq!(kept, id, "process {process}: reopened with nothing changed");
    assert_eq!(pool.reopens(), reopens);
    Report {
        reopens: pool.reopens(),
        generation,
    }
}

/// One maintainer thread; returns (maintenances done, maintenances requested).
fn maintainer(world: &Arc<World>, id: usize, steps: &[Step]) -> (u64, u64) {
    let (mut done, mut requested) = (0, 0);
    for &step in steps {
        let give_up = match step {
            Step::AwaitDeaths(n) => {
                world.wait_deaths(n);
                continue;
            }
            Step::Maintain => false,
            Step::TryMaintain => true,
        };
        let m = Maintainer {
            world: world.clone(),
            id,
            give_up,
        };
        requested += 1;
        match maintain(&m, |_| world.work()) {
            Ok(()) => done += 1,
            Err(e) => assert!(give_up && e == Error::Busy, "maintenance failed: {e:?}"),
        }
    }
    world.maintainer_done();
    (done, requested)
}

/// One run of `plan`: spawns the threads, joins them, and checks the end state.
pub fn run(plan: &Plan) {
    assert!(
        plan.processes
            .iter()
            .all(|s| s.dies_after.is_none_or(|n| n <= s.eager)),
        "a process dies during its back-to-back checkouts (an idle one could wait forever)"
    );
    let world = Arc::new(World::new(plan.maintainers.len(), plan.requests));
    // Without withdrawn requests, every new handle is of a later generation.
    let strict = !plan
        .maintainers
        .iter()
        .flatten()
        .any(|s| *s == Step::TryMaintain);

    let processes: Vec<_> = plan
        .processes
        .iter()
        .enumerate()
        .map(|(process, &script)| {
            let world = world.clone();
            thread::spawn(move || process_main(&world, process, script, strict))
        })
        .collect();
    let maintainers: Vec<_> = plan
        .maintainers
        .iter()
        .enumerate()
        .map(|(id, steps)| {
            let world = world.clone();
            let steps = steps.clone();
            thread::spawn(move || maintainer(&world, id, &steps))
        })
        .collect();

    let (mut done, mut requested) = (0, 0);
    for m in maintainers {
        let (d, r) = m.join().expect("a maintainer panicked");
        done += d;
        requested += r;
    }
    let word = world.word();
    assert_eq!(
        word,
        Word {
            generation: done,
            requested: false
        },
        "the word after {done} maintenances"
    );
    for (process, p) in processes.into_iter().enumerate() {
        let report = p.join().expect("a process panicked");
        let dies = plan.processes[process].dies_after.is_some();
        assert_eq!(report.is_none(), dies, "process {process} died or not");
        if let Some(report) = report {
            assert_eq!(report.generation, done, "process {process} caught up");
            assert!(
                report.reopens <= requested,
                "process {process}: {} reopens for {requested} requests",
                report.reopens
            );
        }
    }
    assert_eq!(
        world.lock.holders(),
        (0, false),
        "a lock outlived its holder"
    );
}
