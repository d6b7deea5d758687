//! The worker's side of deterministic mode: wait for the token at every scheduling point.
//!
//! In deterministic mode each worker process has one end of a socket pair to the
//! supervisor. At a scheduling point the worker writes where it is (a [`Point`], 16 bytes)
//! and blocks reading the supervisor's grant (16 bytes: the logical time, and whether to
//! stop). Only the worker holding the token runs; the others sit in that `read`. The first
//! grant is read before the worker does anything at all ([`connect`]).
//!
//! Everything a worker could learn from the real world comes from here instead: the time
//! (SQLite's `xCurrentTime`, the store's [`kanban_store::Clock`], the workers' pacing),
//! SQLite's sleeps (the busy handler's `xSleep` becomes a logical sleep), and SQLite's
//! randomness (seeded). Free-running workers never call [`connect`], and every function
//! here then falls back to the real thing.
//!
//! Control: with [`CONTROL_IGNORE_STOP`] set in the environment, a connected worker never
//! sees the stop flag ([`stop_requested`] stays false): it runs on after the budget, as a
//! livelocked worker would, so a test can check that the supervisor's budget of logical
//! steps reports it as `stuck`.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fault::{FileKind, IoAction, IoOp, IoPhase};

/// The logical epoch: 2026-01-01T00:00:00Z, in milliseconds since the Unix epoch (so
/// timestamps in deterministic boards look like times, and are the same every run).
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// Grant flag: the run's budget is spent; finish the current operation and exit.
const FLAG_STOP: u64 = 1;

/// Control (test-only): the environment variable that makes workers ignore the stop flag.
pub const CONTROL_IGNORE_STOP: &str = "KANBAN_HARNESS_CONTROL_IGNORE_STOP";

/// Where a worker is when it hands the token back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Before a file operation of SQLite (through the I/O shim), with the fault that acts
    /// on it, if any.
    Io {
        /// The operation.
        op: IoOp,
        /// The kind of file.
        file: FileKind,
        /// The phase it falls in.
        phase: IoPhase,
        /// The fault acting on it.
        fault: Option<IoAction>,
    },
    /// A sleep of this many microseconds (SQLite's busy handler, the store's retry pauses,
    /// the worker's pacing).
    Sleep(u64),
    /// Before an attempt to take one of the store's own locks.
    Lock,
    /// Stopped by a `stop` fault (the supervisor holds it for the fault's `stop_ms`).
    Stop,
    /// Right after the operation a `power-cut` fault acts on: the supervisor cuts the power
    /// at this step, with every other worker held at its own point, and never hands this
    /// worker the token again.
    PowerCut,
}

impl Point {
    /// The 16 bytes on the wire.
    pub fn encode(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        match self {
            Point::Io {
                op,
                file,
                phase,
                fault,
            } => {
                b[0] = 1;
                b[1] = op as u8;
                b[2] = file as u8;
                b[3] = phase as u8;
                b[4] = fault.map_or(0, |a| a as u8 + 1);
            }
            Point::Sleep(us) => {
                b[0] = 2;
                b[8..].copy_from_slice(&us.to_le_bytes());
            }
            Point::Lock => b[0] = 3,
            Point::Stop => b[0] = 4,
            Point::PowerCut => b[0] = 5,
        }
        b
    }

    /// Reads the 16 bytes back; `None` for bytes no worker writes.
    pub fn decode(b: &[u8; 16]) -> Option<Point> {
        let arg = u64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
        Some(match b[0] {
            1 => Point::Io {
                op: *IoOp::ALL.get(usize::from(b[1]))?,
                file: *FileKind::ALL.get(usize::from(b[2]))?,
                phase: *IoPhase::ALL.get(usize::from(b[3]))?,
                fault: match b[4] {
                    0 => None,
                    n => Some(*IoAction::ALL.get(usize::from(n - 1))?),
                },
            },
            2 => Point::Sleep(arg),
            3 => Point::Lock,
            4 => Point::Stop,
            5 => Point::PowerCut,
            _ => return None,
        })
    }
}

/// A grant: the 16 bytes the supervisor sends to hand a worker the token.
pub fn grant(now_us: u64, stop: bool) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&now_us.to_le_bytes());
    b[8..].copy_from_slice(&u64::from(stop).to_le_bytes());
    b
}

struct Client {
    socket: UnixStream,
    rng: ChaCha8Rng,
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);
static CONNECTED: AtomicBool = AtomicBool::new(false);
static NOW_US: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static IGNORE_STOP: AtomicBool = AtomicBool::new(false);

/// Takes the worker's end of the socket pair (`fd`, now owned here), seeds SQLite's
/// randomness with `seed`, and waits for the first grant. Call once, first thing in the
/// forked worker.
pub fn connect(fd: RawFd, seed: u64) {
    // SAFETY: the supervisor made `fd` for this worker and hands its ownership over.
    let socket = unsafe { UnixStream::from_raw_fd(fd) };
    *CLIENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Client {
        socket,
        rng: ChaCha8Rng::seed_from_u64(seed),
    });
    CONNECTED.store(true, Ordering::Relaxed);
    IGNORE_STOP.store(
        std::env::var_os(CONTROL_IGNORE_STOP).is_some(),
        Ordering::Relaxed,
    );
    wait_for_grant();
}

/// Whether this process runs under the token.
pub fn connected() -> bool {
    CONNECTED.load(Ordering::Relaxed)
}

/// Whether the supervisor asked this worker to stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed) && !IGNORE_STOP.load(Ordering::Relaxed)
}

/// Hands the token back at `point` and waits for it again. Does nothing when not connected.
pub fn point(point: Point) {
    if !connected() {
        return;
    }
    {
        let mut guard = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
        let client = guard.as_mut().expect("connected");
        if client.socket.write_all(&point.encode()).is_err() {
            // The supervisor is gone: nothing may run without it.
            // SAFETY: leave at once, without unwinding into anything.
            unsafe { libc::_exit(crate::exit::EXIT_SETUP) }
        }
    }
    wait_for_grant();
}

fn wait_for_grant() {
    let mut buf = [0u8; 16];
    {
        let mut guard = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
        let client = guard.as_mut().expect("connected");
        if client.socket.read_exact(&mut buf).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(crate::exit::EXIT_SETUP) }
        }
    }
    let now = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    NOW_US.store(now, Ordering::Relaxed);
    if u64::from_le_bytes(buf[8..].try_into().expect("8 bytes")) & FLAG_STOP != 0 {
        STOP.store(true, Ordering::Relaxed);
    }
    // A phase kill armed for a logical time fires here, when that time has come.
    crate::alarm::fire_due(now);
}

/// Microseconds on this worker's clock: logical when connected, else since the first call.
pub fn now_us() -> u64 {
    if connected() {
        return NOW_US.load(Ordering::Relaxed);
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Sleeps `us` microseconds: a logical sleep (a scheduling point) when connected. A real
/// sleep ends early when a signal arrives (SIGTERM: the worker is asked to stop), unlike
/// `std::thread::sleep`, which sleeps on after it.
pub fn sleep_us(us: u64) {
    if connected() {
        point(Point::Sleep(us));
        return;
    }
    let ts = libc::timespec {
        tv_sec: (us / 1_000_000) as libc::time_t,
        tv_nsec: ((us % 1_000_000) * 1000) as libc::c_long,
    };
    // SAFETY: a plain nanosleep with a valid timespec; an early return (EINTR) is wanted.
    unsafe {
        libc::nanosleep(&ts, std::ptr::null_mut());
    }
}

/// Fills `out` from the seeded stream (SQLite's `xRandomness`). Connected only.
pub fn fill_random(out: &mut [u8]) {
    let mut guard = CLIENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(client) = guard.as_mut() {
        client.rng.fill_bytes(out);
    }
}

/// The store's clock in deterministic mode: logical time, logical sleeps, and a scheduling
/// point before each attempt at one of the store's locks.
#[derive(Debug)]
pub struct LogicalClock;

impl kanban_store::Clock for LogicalClock {
    fn now_ms(&self) -> i64 {
        EPOCH_MS + (now_us() / 1000) as i64
    }

    fn sleep(&self, d: Duration) {
        sleep_us(d.as_micros() as u64);
    }

    fn yield_now(&self) {
        point(Point::Lock);
    }

    fn wait_readable(&self, _fd: std::os::fd::RawFd, max: Duration) {
        sleep_us(max.as_micros() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_survive_the_wire() {
        let points = [
            Point::Io {
                op: IoOp::WalWriteLock,
                file: FileKind::Shm,
                phase: IoPhase::CheckpointTail,
                fault: Some(IoAction::Stop),
            },
            Point::Io {
                op: IoOp::Read,
                file: FileKind::Db,
                phase: IoPhase::None,
                fault: None,
            },
            Point::Sleep(123_456),
            Point::Lock,
            Point::Stop,
            Point::PowerCut,
        ];
        for p in points {
            assert_eq!(Point::decode(&p.encode()), Some(p));
        }
        assert_eq!(Point::decode(&[9; 16]), None);
    }
}
