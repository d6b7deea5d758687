//! Connection generations: how a repair gets every process off the board, and back on.
//!
//! A repair needs the board to itself (the exclusive maintenance lock), but gateways and
//! dashboards keep sessions open for their whole life. So the board has a *generation*,
//! kept with its lock file (never in the database files), and a *request* bit:
//! 1. the repair sets the request (the store makes it a lock range, so that a repair that
//!    dies withdraws it), then waits for the exclusive lock;
//! 2. every process, at its next checkout of a connection ([`Pool::checkout`]), sees the
//!    request, drops its handle (its connections and its shared lock: the transaction it
//!    was in has finished, since checkouts happen between transactions), and waits;
//! 3. the repair runs, then publishes generation + 1 with the request bit clear, and
//!    releases the lock;
//! 4. each process opens a new handle once and tags it with the new generation.
//!
//! A handle of an older generation is never used again: a checkout compares the handle's
//! generation with the published one first. The protocol is generic over a [`Backend`]
//! (the real one is the store's lock file and SQLite connections) so that it can be model
//! checked in-process: `loom` (`RUSTFLAGS="--cfg loom" cargo test -p kanban-generations
//! --test loom`) and `shuttle` (`tests/shuttle.rs`).

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
    /// An open handle: connections plus the shared lock that keeps maintenance away.
    type Handle;
    /// The backend's error.
    type Error;
    /// Reads the published word.
    fn word(&self) -> Result<Word, Self::Error>;
    /// Opens a handle (taking the shared lock; waiting for a running maintenance).
    fn open(&self) -> Result<Self::Handle, Self::Error>;
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

    /// The handle of the current generation: the one held when nothing changed; else the
    /// old one is dropped first (releasing the shared lock), the request waited out, and a
    /// new one opened.
    pub fn checkout(&mut self) -> Result<&mut B::Handle, B::Error> {
        let mut word = self.backend.word()?;
        let current =
            matches!(self.handle, Some((g, _)) if g == word.generation && !word.requested);
        if !current {
            let had = self.handle.take().is_some();
            let mut tries = 0;
            loop {
                while word.requested {
                    self.backend.pause(tries)?;
                    tries += 1;
                    word = self.backend.word()?;
                }
                let handle = self.backend.open()?;
                // A maintenance may have been requested (and even run) while we opened:
                // a handle is only good if the word did not move under it.
                let after = self.backend.word()?;
                if after == word {
                    self.handle = Some((word.generation, handle));
                    break;
                }
                drop(handle);
                word = after;
            }
            self.reopens += u64::from(had);
        }
        Ok(&mut self.handle.as_mut().expect("just set").1)
    }

    /// Drops the handle (its connections and shared lock).
    pub fn release(&mut self) {
        self.handle = None;
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
