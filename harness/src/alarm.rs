//! Phase kills, delivered by the worker itself: armed at the Nth entry into a store phase,
//! cancelled if the phase ends first, fired by a timer (a one-shot SIGALRM, or under the
//! token a kill at a logical time, checked at every grant).
//!
//! The report's figures come from here, so each is noted when its event happens, in the
//! worker's landed file: `a<id>` when a kill is armed, and `p<id>` in the path that sends
//! the signal, right before kill(2). A kill armed and then cancelled (the phase ended
//! before its delay) is armed but not landed, and the supervisor gives it again to the
//! next incarnation. A worker may carry several phase kills, each with its own count of
//! entries and its own deadline; one timer serves them all (set for the earliest).
//!
//! The SIGALRM handler may only do async-signal-safe things: it reads atomics, and calls
//! clock_gettime, setitimer, write (on the raw fd kept in [`LANDED_FD`]) and kill.

use std::fs::File;
use std::os::fd::IntoRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use kanban_store::Phase;

use crate::plan::PhaseKillPlan;
use crate::token;

/// The landed file, append-only (one `write` per line: never half a line).
static LANDED_FD: AtomicI32 = AtomicI32::new(-1);
/// The process the kills belong to (a worker's own forked children do not deliver them).
static OWNER: AtomicI32 = AtomicI32::new(0);
/// This worker's phase kills.
static KILLS: OnceLock<Vec<Kill>> = OnceLock::new();

/// One planned phase kill and where it stands in this incarnation.
struct Kill {
    plan: PhaseKillPlan,
    /// Entries into its phase so far.
    entries: AtomicU32,
    /// When it fires (microseconds of [`now_us`]); 0 while not armed.
    deadline: AtomicU64,
}

/// Takes this worker's phase kills and its landed file. Call once, before any connection
/// is opened.
pub(crate) fn install(kills: &[PhaseKillPlan], landed: File) {
    let kills = kills
        .iter()
        .map(|&plan| Kill {
            plan,
            entries: AtomicU32::new(0),
            deadline: AtomicU64::new(0),
        })
        .collect();
    assert!(KILLS.set(kills).is_ok(), "phase kills installed twice");
    LANDED_FD.store(landed.into_raw_fd(), Ordering::Relaxed);
    // SAFETY: getpid(2) cannot fail.
    OWNER.store(unsafe { libc::getpid() }, Ordering::Relaxed);
}

/// The store entered (`true`) or left `phase`: arms the kills due at this entry, or
/// cancels the armed kills of the phase that ends.
pub(crate) fn phase(phase: Phase, entering: bool) {
    if !owner() {
        return;
    }
    let mut changed = false;
    for kill in kills().iter().filter(|k| k.plan.phase == phase) {
        if !entering {
            changed |= kill.deadline.swap(0, Ordering::Relaxed) != 0;
        } else if kill.entries.fetch_add(1, Ordering::Relaxed) + 1 == kill.plan.nth {
            note(b'a', kill.plan.id);
            if kill.plan.delay_us == 0 {
                fire(kill);
            }
            kill.deadline
                .store(now_us() + kill.plan.delay_us, Ordering::Relaxed);
            changed = true;
        }
    }
    if changed {
        reschedule();
    }
}

/// Deterministic mode: fires the first armed kill whose logical deadline is `now` or
/// earlier (called by [`token`] at each grant).
pub(crate) fn fire_due(now: u64) {
    if let Some(kill) = kills().iter().find(|k| is_due(k, now)) {
        fire(kill);
    }
}

/// The SIGALRM handler: fires the kill that is due, or sets the timer again if none is
/// yet (its deadline moved, or it was cancelled, while the timer ran).
pub(crate) extern "C" fn on_alarm(_: libc::c_int) {
    let now = monotonic_us();
    if let Some(kill) = kills().iter().find(|k| is_due(k, now)) {
        fire(kill);
    }
    reschedule();
}

fn kills() -> &'static [Kill] {
    KILLS.get().map_or(&[], Vec::as_slice)
}

fn is_due(kill: &Kill, now: u64) -> bool {
    let at = kill.deadline.load(Ordering::Relaxed);
    at != 0 && at <= now
}

/// Notes the kill as landed, then sends it (only in the worker that carries it).
fn fire(kill: &Kill) {
    if !owner() {
        return;
    }
    note(b'p', kill.plan.id);
    // SAFETY: kill(2) and getpid(2) are async-signal-safe.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Whether this is the worker process the kills were installed in (getpid(2) is
/// async-signal-safe).
fn owner() -> bool {
    // SAFETY: getpid(2) cannot fail.
    unsafe { libc::getpid() == OWNER.load(Ordering::Relaxed) }
}

/// Writes `<tag><id>\n` to the landed file in one write(2), without allocating.
fn note(tag: u8, id: usize) {
    let mut line = [0u8; 24];
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = id;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    line[0] = tag;
    for i in 0..n {
        line[1 + i] = digits[n - 1 - i];
    }
    line[1 + n] = b'\n';
    // SAFETY: write(2) of an initialised buffer to our own descriptor (or -1: EBADF).
    unsafe {
        libc::write(
            LANDED_FD.load(Ordering::Relaxed),
            line.as_ptr().cast(),
            n + 2,
        );
    }
}

/// Free-running: sets the one-shot timer for the earliest armed kill (or disarms it).
/// Under the token the grants check the deadlines instead.
fn reschedule() {
    if token::connected() {
        return;
    }
    let earliest = kills()
        .iter()
        .map(|k| k.deadline.load(Ordering::Relaxed))
        .filter(|&at| at != 0)
        .min();
    let us = earliest.map_or(0, |at| at.saturating_sub(monotonic_us()).max(1));
    let timer = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: (us / 1_000_000) as libc::time_t,
            tv_usec: (us % 1_000_000) as libc::suseconds_t,
        },
    };
    // SAFETY: a plain setitimer call with a valid, initialised struct.
    unsafe {
        libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut());
    }
}

/// The clock of deadlines: logical under the token, else the monotonic clock.
fn now_us() -> u64 {
    if token::connected() {
        token::now_us()
    } else {
        monotonic_us()
    }
}

/// CLOCK_MONOTONIC in microseconds (clock_gettime is async-signal-safe).
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}
