//! Connection generations: how a repair gets every process off the board, and back on.
//!
//! A repair needs the board to itself (the exclusive maintenance lock), but gateways and
//! dashboards keep their connections open for their whole life, and may sit idle for
//! minutes. So a process holds the *shared* lock only while it runs an operation
//! ([`Pool::with`]), never while idle, and the board has a *generation*, kept with its lock
//! file (never in the database files), and a *request* bit:
//! 1. the repair sets the request (the store makes it a lock range, so that a repair that
//!    dies withdraws it), then waits for the exclusive lock: only the operations under way
//!    hold it back, idle processes hold nothing;
//! 2. an operation that starts while a request is up waits for it to clear before it takes
//!    the shared lock (so a stream of operations cannot starve the repair);
//! 3. the repair runs, then publishes generation + 1 with the request bit clear, and
//!    releases the lock;
//! 4. each process, at its next operation, takes the shared lock, reads the generation
//!    (which cannot move while it holds the lock), sees that its handle (its connections)
//!    is of an older one, drops it and opens a new one once.
//!
//! A handle of an older generation is never used again, and no handle is used while a
//! maintenance runs: every use is under the shared lock, after comparing the handle's
//! generation with the one published. The cost, per operation: two lock calls (take and
//! release the shared lock) and two reads of the word. Idle sessions notice nothing (no
//! thread, no signal): they need not, since they hold nothing.
//!
//! An operation may run inside another operation of the same process on the same board,
//! through a second pool (a request handler's second connection). That one must not wait
//! for a requested maintenance: the maintenance waits for the outer operation, which waits
//! for the inner one. So the backend counts the operations of its process under way on its
//! board, in every pool ([`Backend::under_way`]), and an operation entered while another is
//! under way goes ahead whatever the request says; the maintenance still gets the board
//! only once the outermost one has let go. Pools of one process are separate values (one per
//! open board), so the count is the backend's: the store keeps it in a process-wide
//! registry keyed by the board's path.
//!
//! The protocol is generic over a [`Backend`] (the real one is the store's lock file and
//! SQLite connections) so that it can be model checked in-process: `loom` (`RUSTFLAGS="--cfg
//! loom" cargo test -p kanban-generations --test loom`) and `shuttle` (`tests/shuttle.rs`).

#![deny(missing_docs)]

/// The published state: a generation number and whether a maintenance wants the board.
/// How it is kept is the backend's business (the store: the number in its lock file, the
/// request as a lock on one of its bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word {
    /// Bumped by every maintenance that changed the board under the sessions.
    pub generation: u64,
    /// A maintenance is waiting for every session to let go.
    pub requested: bool,
}

/// What the protocol needs from the outside world.
pub trait Backend {
    /// An open handle: the connections, of one generation.
    type Handle;
    /// The backend's error.
    type Error;
    /// Reads the published word.
    fn word(&self) -> Result<Word, Self::Error>;
    /// Opens a handle; the caller holds the shared lock.
    fn open(&self) -> Result<Self::Handle, Self::Error>;
    /// Takes the shared lock that keeps maintenance away (waiting, up to a timeout, while a
    /// maintenance holds the exclusive one), and counts the operation in
    /// ([`Backend::under_way`]).
    fn hold(&self) -> Result<(), Self::Error>;
    /// Releases the shared lock ([`Backend::hold`]) and counts the operation out.
    fn let_go(&self);
    /// How many operations of this process are under way on this board, in any of its
    /// pools: those between a [`Backend::hold`] and its [`Backend::let_go`].
    fn under_way(&self) -> usize;
    /// Waits a little while a maintenance is requested; `tries` counts earlier waits, so
    /// the backend can give up with an error after its timeout.
    fn pause(&self, tries: u32) -> Result<(), Self::Error>;
}

/// One process's handle on the board, tied to the generation it was opened in.
pub struct Pool<B: Backend> {
    backend: B,
    handle: Option<(u64, B::Handle)>,
    reopens: u64,
}

impl<B: Backend> Pool<B> {
    /// A pool with no handle yet.
    pub fn new(backend: B) -> Pool<B> {
        Pool {
            backend,
            handle: None,
            reopens: 0,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Handles opened after the first (one per generation change seen).
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    /// Runs `f` on the handle of the current generation, under the shared lock: the
    /// handle held when nothing changed; else (a maintenance ran since) the old one is
    /// dropped and a new one opened first. A requested maintenance is waited out before the
    /// lock is taken, unless another operation of this process is under way on the board
    /// (then this one is nested in it, and the maintenance waits for both). The lock is released when `f` returns (or unwinds).
    pub fn with<T>(&mut self, f: impl FnOnce(&mut B::Handle) -> T) -> Result<T, B::Error> {
        let mut tries = 0;
        loop {
            if self.may_enter(self.backend.word()?, 0) {
                self.backend.hold()?;
                let held = Held(&self.backend);
                // Under the shared lock: no maintenance runs, the generation stays put.
                let word = self.backend.word()?;
                if self.may_enter(word, 1) {
                    let current = matches!(self.handle, Some((g, _)) if g == word.generation);
                    if !current {
                        let had = self.handle.take().is_some();
                        self.handle = Some((word.generation, self.backend.open()?));
                        self.reopens += u64::from(had);
                    }
                    let out = f(&mut self.handle.as_mut().expect("just set").1);
                    drop(held);
                    return Ok(out);
                }
                // Requested between our two looks: let it have the board first.
                drop(held);
            }
            self.backend.pause(tries)?;
            tries += 1;
        }
    }

    /// Whether an operation may go ahead: no maintenance is requested, or another operation
    /// of this process is under way on the board (besides `mine`, this one's own count once
    /// it holds the lock), which the maintenance waits for anyway: this one is part of it.
    fn may_enter(&self, word: Word, mine: usize) -> bool {
        !word.requested || self.backend.under_way() > mine
    }

    /// Drops the handle (its connections).
    pub fn release(&mut self) {
        self.handle = None;
    }
}

/// The shared lock, released on drop (also while unwinding out of an operation).
struct Held<'a, B: Backend>(&'a B);

impl<B: Backend> Drop for Held<'_, B> {
    fn drop(&mut self) {
        self.0.let_go();
    }
}

/// What a maintenance needs: take and withdraw the request, take the exclusive lock,
/// publish the next generation.
pub trait Maintenance {
    /// The exclusive lock, held while the value lives.
    type Exclusive;
    /// The backend's error.
    type Error;
    /// Reads the published word.
    fn word(&self) -> Result<Word, Self::Error>;
    /// Takes the request (sessions see it and let go), waiting while another maintenance
    /// holds it: maintenances run one after the other.
    fn request(&self) -> Result<(), Self::Error>;
    /// Takes the exclusive lock (waiting for every session to let go, up to a timeout).
    fn lock_exclusive(&self) -> Result<Self::Exclusive, Self::Error>;
    /// Publishes `generation` (when there is one) and withdraws the request.
    fn finish(&self, generation: Option<u64>) -> Result<(), Self::Error>;
}

/// Runs `work` with the board to itself: request, exclusive lock, `work`, then publish the
/// next generation (whether `work` succeeded or not: sessions must not wait forever) and
/// release the lock. A failure to get the lock withdraws the request.
///
/// The generation is read only once the request is held: only the request's holder
/// changes it, so two maintenances at once never publish the same number, nor an older one.
pub fn maintain<M: Maintenance, T>(
    m: &M,
    work: impl FnOnce(&M::Exclusive) -> T,
) -> Result<T, M::Error> {
    m.request()?;
    let exclusive = match m.lock_exclusive() {
        Ok(x) => x,
        Err(e) => {
            m.finish(None)?;
            return Err(e);
        }
    };
    let out = work(&exclusive);
    let now = m.word()?;
    m.finish(Some(now.generation + 1))?;
    drop(exclusive);
    Ok(out)
}
