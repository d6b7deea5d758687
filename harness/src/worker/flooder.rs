//! The flooder: a hostile or broken client of the gateway's socket (single-writer mode).
//!
//! It speaks to the socket over raw `UnixStream`s, not through the store's client, which
//! never misbehaves. Each turn it starts one of three things, drawn from its seed:
//! - a flood: `connections` connections at once, each with one valid request (a task
//!   created under a ledger token, with a request id of its own), ledgered like a
//!   dashboard's write: acked when its answer comes. Valid writes rather than reads, since
//!   the socket carries only writes, and a write is what costs the gateway a commit;
//! - a frame larger than the largest request ([`MAX_FRAME`] bytes and one more, no
//!   newline);
//! - a connection that sends nothing.
//!
//! Nothing here blocks: every connection is non-blocking and looked at again at each turn,
//! so a stalled gateway stalls none of it. The gateway must answer the flood and close the
//! other two while it goes on with its own work (its ticks and commits keep their floor);
//! each answer and each close is tallied ([`Tally`]) when the flooder sees it. A gateway
//! killed while a connection is open closes it too (the kernel does): a close is counted
//! as the server's whoever caused it, so the tallies show that closes happen, not why.

use std::io::{ErrorKind, Read, Write as _};
use std::os::unix::net::UnixStream;

use kanban_store::single_writer::{MAX_FRAME, socket_path};
use kanban_store::{Error as StoreError, NewTask, Write};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Ledgered, Pace, Sessions, request_id};
use crate::ledger::{Op, Record, Tally};
use crate::scenario::WorkerSpec;

/// One open connection and what the flooder waits for on it.
struct Probe {
    stream: UnixStream,
    /// Bytes still to send.
    unsent: Vec<u8>,
    /// What came back so far.
    answer: Vec<u8>,
    what: Sent,
}

/// What a connection sent.
enum Sent {
    /// One valid request, of this intent.
    Request(Record),
    /// More than the largest frame.
    Oversize,
    /// Nothing.
    Silence,
}

/// Where a connection stands after a look.
enum State {
    Open,
    /// Closed by the other end (after the answer, if any).
    Closed,
}

pub(super) fn run(
    sessions: &Sessions,
    spec: &WorkerSpec,
    ctx: &mut Ledgered,
    rng: &mut ChaCha8Rng,
) -> Result<(), StoreError> {
    let socket = socket_path(sessions.parts().0);
    let mut probes: Vec<Probe> = Vec::new();
    let mut pace = Pace::new(&[spec.edit_ms], rng);
    while pace.next().is_some() {
        probes.retain_mut(|p| match p.look() {
            State::Open => true,
            State::Closed => {
                p.finish(ctx);
                false
            }
        });
        let sends: Vec<Sent> = match rng.random_range(0..4) {
            0 => vec![Sent::Oversize],
            1 => vec![Sent::Silence],
            _ => (0..spec.connections)
                .map(|_| Sent::Request(ctx.intent(Op::CreateTask, (0, 0))))
                .collect(),
        };
        for what in sends {
            // A gateway that is down (or whose backlog is full) refuses: nothing to wait for.
            if let Ok(stream) = UnixStream::connect(&socket)
                && stream.set_nonblocking(true).is_ok()
            {
                let unsent = what.bytes();
                probes.push(Probe {
                    stream,
                    unsent,
                    answer: Vec::new(),
                    what,
                });
            }
        }
    }
    Ok(())
}

impl Sent {
    /// The bytes this connection sends.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Sent::Request(intent) => {
                let write = Write::CreateTask(NewTask {
                    title: intent.token(),
                    body: "from the flooder".into(),
                    priority: 0,
                    parents: Vec::new(),
                });
                let frame = serde_json::json!({
                    "id": request_id(intent).to_string(),
                    "write": write,
                });
                let mut bytes = frame.to_string().into_bytes();
                bytes.push(b'\n');
                bytes
            }
            Sent::Oversize => vec![b'x'; MAX_FRAME + 1],
            Sent::Silence => Vec::new(),
        }
    }
}

impl Probe {
    /// Sends what is left to send, reads what came: is the connection still open?
    fn look(&mut self) -> State {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(n) => drop(self.unsent.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EPIPE, ECONNRESET: the other end closed it.
                Err(_) => return State::Closed,
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return State::Closed,
                Ok(n) => self.answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return State::Open,
                Err(_) => return State::Closed,
            }
        }
    }

    /// Ledgers and tallies what a closed connection came to.
    fn finish(&self, ctx: &mut Ledgered) {
        match &self.what {
            Sent::Request(intent) => {
                let answer: Option<serde_json::Value> = serde_json::from_slice(&self.answer).ok();
                if let Some(id) = answer.as_ref().and_then(|a| a.get("Done")?.as_i64()) {
                    ctx.ack(*intent, (id, 0));
                    ctx.tally(Tally::FloodAnswered);
                }
            }
            Sent::Oversize => ctx.tally(Tally::OversizeClosed),
            Sent::Silence => ctx.tally(Tally::SilentClosed),
        }
    }
}
