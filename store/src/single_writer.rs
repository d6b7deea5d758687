//! Single-writer mode: the gateway owns every write; dashboards send theirs over a socket.
//!
//! The upstream report's first suggestion. With `StoreConfig::single_writer`, a dashboard
//! session's write methods ([`Write`]) do not touch the board: each becomes one request to
//! the gateway over the Unix socket beside the board (`<db>.sock`), which runs it on its own
//! session and answers. Dashboards still read through their read-only connection. The
//! callers' API does not change.
//!
//! No process blocks in the kernel waiting for another: the server is polled between the
//! gateway's other work ([`WriteServer::serve`], non-blocking), and the client waits for
//! its answer through the configured clock (`Clock::wait_readable`: a `poll` of the socket
//! for real, a logical sleep under the deterministic scheduler, which sees every wait). A gateway that is down gives [`Error::Unavailable`] at once (nobody
//! listens); one that does not answer within the busy timeout gives it too, and the write
//! may or may not have happened (like a commit whose process died before it returned).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::board::Board;
use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::txn::Txn;
use crate::types::{EventId, NewTask, TaskId, TaskStatus};

/// The longest the client waits at once for its answer (the real clock wakes it as soon
/// as the answer arrives; a simulated one lets others run this long).
const PAUSE: Duration = Duration::from_micros(200);

/// The socket of the board at `db`, beside its canonical path (see [`Board::path`](crate::Board::path)), so a
/// gateway and a dashboard that name the board differently meet at one socket.
pub fn socket_path(db: &Path) -> PathBuf {
    crate::place::sock(&crate::place::canonical_or_given(db))
}

/// A write a dashboard sends to the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// [`Board::create_task`].
    CreateTask(NewTask),
    /// [`Board::update_task`].
    UpdateTask {
        /// The task.
        id: TaskId,
        /// Its new title.
        title: String,
        /// Its new body.
        body: String,
        /// Its new priority.
        priority: i64,
    },
    /// [`Board::move_task`].
    MoveTask {
        /// The task.
        id: TaskId,
        /// Where to.
        to: TaskStatus,
    },
    /// [`Board::link`].
    Link {
        /// The parent.
        parent: TaskId,
        /// The child.
        child: TaskId,
    },
    /// [`Board::comment`].
    Comment {
        /// The task.
        task: TaskId,
        /// Who.
        author: String,
        /// What.
        body: String,
    },
}

/// The gateway's answer: the write's value (the new task's or comment's id, else the
/// event's), or its error.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Done(i64),
    Failed { kind: String, message: String },
}

impl Write {
    /// Runs the write in `t` (the dashboard's own transaction, or the gateway's for it).
    pub(crate) fn apply(&self, t: &Txn<'_>) -> Result<i64> {
        match self {
            Write::CreateTask(task) => t.create_task(task).map(TaskId::get),
            Write::UpdateTask {
                id,
                title,
                body,
                priority,
            } => t.update_task(*id, title, body, *priority).map(EventId::get),
            Write::MoveTask { id, to } => t.move_task(*id, *to).map(EventId::get),
            Write::Link { parent, child } => t.link(*parent, *child).map(EventId::get),
            Write::Comment { task, author, body } => t.comment(*task, author, body),
        }
    }
}

/// The gateway's end: a listening socket, served between the gateway's other work.
#[derive(Debug)]
pub struct WriteServer {
    listener: UnixListener,
    path: PathBuf,
}

impl WriteServer {
    /// Listens on the board's socket. Call it in the gateway (which holds the gateway lock,
    /// so a socket file already there is a dead gateway's, and is replaced).
    pub fn bind(db: &Path) -> Result<WriteServer> {
        let path = socket_path(db);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        #[allow(clippy::disallowed_methods)] // the socket, never the database
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        Ok(WriteServer { listener, path })
    }

    /// Answers every request waiting now (never waits for one); returns how many.
    pub fn serve(&self, board: &mut Board) -> Result<usize> {
        let mut served = 0;
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(served),
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            served += 1;
            // A client that died mid-request is dropped; the others are served.
            let _ = answer(stream, board);
        }
    }
}

/// Reads one request from `stream` (written whole before the client waits), runs it, and
/// writes the answer.
fn answer(stream: UnixStream, board: &mut Board) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let answer = match serde_json::from_str::<Write>(&line) {
        Ok(write) => match board.write(write) {
            Ok(value) => Answer::Done(value),
            Err(e) => Answer::Failed {
                kind: kind_of(&e),
                message: e.to_string(),
            },
        },
        Err(e) => Answer::Failed {
            kind: "BadRequest".into(),
            message: e.to_string(),
        },
    };
    let mut text = serde_json::to_string(&answer).expect("serialisable");
    text.push('\n');
    (&stream).write_all(text.as_bytes())
}

/// The variant name of `e` (`NoSuchTask`, `Busy`, ...), for the client's typed error.
fn kind_of(e: &Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("Other")
        .to_string()
}

/// Sends `write` to the gateway of the board at `db` and waits for its answer.
pub(crate) fn forward(db: &Path, cfg: &StoreConfig, write: &Write) -> Result<i64> {
    let unavailable = |why: String| Error::Unavailable {
        path: db.to_path_buf(),
        why,
    };
    let path = socket_path(db);
    let mut stream = UnixStream::connect(&path)
        .map_err(|e| unavailable(format!("no gateway listens on {}: {e}", path.display())))?;
    let mut text = serde_json::to_string(write).expect("serialisable");
    text.push('\n');
    stream
        .write_all(text.as_bytes())
        .map_err(|e| unavailable(format!("sending the write: {e}")))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| unavailable(e.to_string()))?;
    let mut reply = Vec::new();
    let mut waited = Duration::ZERO;
    loop {
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if waited >= cfg.busy_timeout {
                    return Err(unavailable(format!(
                        "no answer from the gateway within {} ms (the write may have happened)",
                        waited.as_millis()
                    )));
                }
                cfg.clock.wait_readable(stream.as_raw_fd(), PAUSE);
                waited += PAUSE;
            }
            Err(e) => return Err(unavailable(format!("reading the answer: {e}"))),
        }
        if reply.ends_with(b"\n") {
            break;
        }
    }
    match serde_json::from_slice::<Answer>(&reply) {
        Ok(Answer::Done(value)) => Ok(value),
        Ok(Answer::Failed { kind, message }) => Err(Error::Remote {
            path: db.to_path_buf(),
            kind,
            message,
        }),
        Err(_) => Err(unavailable(
            "the gateway closed the connection without an answer (the write may have happened)"
                .into(),
        )),
    }
}
