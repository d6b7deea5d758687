//! The dashboard's end: one request, one answer, within one deadline.

use std::io::{ErrorKind as IoKind, Read, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use serde::Serialize;

use super::frame::{self, Answer, Partial};
use super::peer::Trust;
use super::{RequestId, Write, socket_path};
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::millis::i64_ms;

/// The longest the client waits at once (the real clock wakes it as soon as the answer
/// arrives; a simulated one lets others run this long).
const PAUSE: Duration = Duration::from_micros(200);

/// The client's one deadline for connect, send and answer together: half the busy timeout.
/// A forwarded write then never keeps its caller longer than a local write would wait for
/// SQLite's lock, with room for one retry under the same id within that time; and the
/// gateway (configured alike) may itself wait up to its busy timeout for a lock, so a
/// request that meets contention there ends in [`Error::Unavailable`] here, which a retry
/// with the same id makes safe.
pub fn deadline(busy_timeout: Duration) -> Duration {
    busy_timeout / 2
}

/// The request as sent (borrowing the write).
#[derive(Serialize)]
struct Outgoing<'a> {
    id: RequestId,
    write: &'a Write,
}

/// Sends `write` under `id` to the gateway of the board at `db` and waits for its answer.
pub(crate) fn forward(db: &Path, cfg: &StoreConfig, id: RequestId, write: &Write) -> Result<i64> {
    let bytes = frame::encode(db, &Outgoing { id, write })?;
    let mut call = Call {
        db,
        cfg,
        until_ms: cfg.clock.now_ms() + i64_ms(deadline(cfg.busy_timeout)),
    };
    let stream = call.connect()?;
    Trust::here(cfg.socket_group).check(db, &stream)?;
    call.send(&stream, &bytes)?;
    call.answer(&stream)?.into_result(db)
}

/// One exchange, and when its deadline passes (on the configured clock: a pause may last
/// longer than asked, a real `poll` at least a millisecond, so pauses are not counted).
struct Call<'a> {
    db: &'a Path,
    cfg: &'a StoreConfig,
    until_ms: i64,
}

impl Call<'_> {
    fn unavailable(&self, why: String) -> Error {
        Error::Unavailable {
            path: self.db.to_path_buf(),
            why,
        }
    }

    /// Waits `PAUSE` (for the socket to be readable, if given) out of the deadline, or
    /// says the deadline has passed.
    fn pause(&mut self, readable: Option<&UnixStream>, doing: &str) -> Result<()> {
        if self.cfg.clock.now_ms() >= self.until_ms {
            return Err(self.unavailable(format!(
                "no answer from the gateway within the deadline of {} ms while {doing}: \
                 the write may or may not have happened; a retry with the same request id is safe",
                deadline(self.cfg.busy_timeout).as_millis()
            )));
        }
        match readable {
            Some(s) => self.cfg.clock.wait_readable(s.as_raw_fd(), PAUSE),
            None => self.cfg.clock.sleep(PAUSE),
        }
        Ok(())
    }

    /// Connects without blocking: nobody listening is [`Error::Unavailable`] at once; a
    /// full backlog (a stalled gateway) is waited out within the deadline.
    fn connect(&mut self) -> Result<UnixStream> {
        let path = socket_path(self.db);
        let absent = |e: Errno| format!("no gateway listens on {}: {e}", path.display());
        let fd: OwnedFd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| self.unavailable(absent(e)))?;
        let addr = UnixAddr::new(&path).map_err(|e| self.unavailable(absent(e)))?;
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(UnixStream::from(fd)),
                Err(Errno::EAGAIN | Errno::EINTR) => self.pause(None, "connecting")?,
                Err(e) => return Err(self.unavailable(absent(e))),
            }
        }
    }

    /// Sends the whole request.
    fn send(&mut self, stream: &UnixStream, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            match (&*stream).write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == IoKind::WouldBlock => self.pause(None, "sending")?,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.unavailable(format!("sending the write: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads the answer.
    fn answer(&mut self, stream: &UnixStream) -> Result<Answer> {
        let mut partial = Partial::default();
        let mut buf = [0u8; 4096];
        loop {
            match (&*stream).read(&mut buf) {
                Ok(0) => {
                    return Err(self.unavailable(
                        "the gateway closed the connection without an answer: the write may \
                         or may not have happened; a retry with the same request id is safe"
                            .into(),
                    ));
                }
                Ok(n) => {
                    if let Some(line) = partial.push(self.db, &buf[..n])? {
                        return serde_json::from_slice(&line).map_err(|e| Error::BadRequest {
                            path: self.db.to_path_buf(),
                            detail: format!("the gateway's answer: {e}"),
                        });
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    self.pause(Some(stream), "waiting for the answer")?
                }
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.unavailable(format!("reading the answer: {e}"))),
            }
        }
    }
}
