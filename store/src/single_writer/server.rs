//! [`WriteServer`]: the gateway's end of the board's socket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{ErrorKind as IoKind, Read, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::board::Board;
use crate::error::{Error, Result};
use crate::requests::frame::{self, Answer, Partial, Request};
use crate::requests::peer::Trust;
use crate::requests::socket_path;

/// The most requests one [`WriteServer::serve`] answers: the rest wait for the next call,
/// so the gateway's tick goes on (its checkpoints, its dispatching) under a flood.
pub const REQUESTS_PER_SERVE: usize = 32;

/// The longest one [`WriteServer::serve`] goes on taking new requests, in the board's
/// clock's milliseconds (a request already started is finished: at most one write's time
/// more; and one request is always answered if one is complete, so every call progresses).
pub const SERVE_BUDGET_MS: i64 = 10;

/// The most connections the server holds at once (each with up to a frame of bytes); more
/// wait in the listen backlog, and then the kernel refuses them (the client's deadline
/// covers that).
pub const MAX_PEERS: usize = 64;

/// The gateway's end: a listening socket, served between the gateway's other work.
#[derive(Debug)]
pub struct WriteServer {
    listener: UnixListener,
    /// The board, as its errors name it.
    db: PathBuf,
    /// The socket file.
    path: PathBuf,
    trust: Trust,
    /// Connections whose request is not complete yet, oldest first.
    peers: RefCell<VecDeque<Peer>>,
}

/// One connection and what it has sent so far.
#[derive(Debug)]
struct Peer {
    stream: UnixStream,
    frame: Partial,
    /// When it was accepted (the board's clock): one that has not sent its request within
    /// the board's busy timeout is dropped.
    since_ms: i64,
}

/// What one look at a peer came to.
enum Step {
    /// Its request is not complete: keep it.
    Pending,
    /// Done with it (answered, or dropped); `true` if a request was answered.
    Finished(bool),
}

impl WriteServer {
    /// Listens on the board's socket, for the session `board`, which must hold the gateway
    /// lock ([`Error::NotGatewayHolder`] otherwise): so a socket file already there is a
    /// dead gateway's, and is replaced, and nobody else can take the live one over. The
    /// socket gets the board's owner (and [`crate::StoreConfig::socket_group`] as its
    /// group, if set) and mode 0600 (0660 with a group).
    pub fn bind(board: &mut Board) -> Result<WriteServer> {
        if !board.holds_gateway()? {
            return Err(Error::NotGatewayHolder {
                path: board.path().to_path_buf(),
            });
        }
        let db = board.path().to_path_buf();
        let path = socket_path(&db);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        #[allow(clippy::disallowed_methods)] // the socket, never the database
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != IoKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let listener = UnixListener::bind(&path).map_err(io)?;
        let group = board.config().socket_group;
        own_like_board(&db, &path, group).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        Ok(WriteServer {
            listener,
            db,
            path,
            trust: Trust::here(group),
            peers: RefCell::default(),
        })
    }

    /// Answers the requests waiting now, within its budget ([`REQUESTS_PER_SERVE`],
    /// [`SERVE_BUDGET_MS`]); never waits for one. A connection that has sent only part of
    /// its request (or nothing) is kept for the next call and costs no wait. Returns how
    /// many requests it answered.
    pub fn serve(&self, board: &mut Board) -> Result<usize> {
        let clock = board.config().clock.clone();
        let start = clock.now_ms();
        let idle_ms = crate::millis::i64_ms(board.config().busy_timeout);
        self.accept(start)?;
        let mut peers = self.peers.borrow_mut();
        let mut answered = 0;
        let mut i = 0;
        while i < peers.len()
            && answered < REQUESTS_PER_SERVE
            && (answered == 0 || clock.now_ms() - start < SERVE_BUDGET_MS)
        {
            match self.step(&mut peers[i], board) {
                Step::Pending if clock.now_ms() - peers[i].since_ms <= idle_ms => i += 1,
                Step::Pending => drop(peers.remove(i)),
                Step::Finished(done) => {
                    peers.remove(i);
                    answered += usize::from(done);
                }
            }
        }
        Ok(answered)
    }

    /// Takes the waiting connections, up to [`MAX_PEERS`] held; a peer of an untrusted
    /// user is told so and dropped.
    fn accept(&self, now_ms: i64) -> Result<()> {
        let mut peers = self.peers.borrow_mut();
        while peers.len() < MAX_PEERS {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            if let Err(e) = self.trust.check(&self.db, &stream) {
                send(&self.db, &stream, &Answer::failed(&e));
                continue;
            }
            if stream.set_nonblocking(true).is_ok() {
                peers.push_back(Peer {
                    stream,
                    frame: Partial::default(),
                    since_ms: now_ms,
                });
            }
        }
        Ok(())
    }

    /// Reads what `peer` has sent (without waiting); once its request is complete, runs it
    /// and answers.
    fn step(&self, peer: &mut Peer, board: &mut Board) -> Step {
        let mut buf = [0u8; 4096];
        loop {
            let n = match (&peer.stream).read(&mut buf) {
                Ok(0) => return Step::Finished(false),
                Ok(n) => n,
                Err(e) if e.kind() == IoKind::WouldBlock => return Step::Pending,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(_) => return Step::Finished(false),
            };
            let line = match peer.frame.push(&self.db, &buf[..n]) {
                Ok(None) => continue,
                Ok(Some(line)) => line,
                Err(e) => {
                    send(&self.db, &peer.stream, &Answer::failed(&e));
                    return Step::Finished(false);
                }
            };
            let answer = match serde_json::from_slice::<Request>(&line) {
                Ok(request) => match board.submit(request.id, &request.write) {
                    Ok(value) => Answer::Done(value),
                    Err(e) => Answer::failed(&e),
                },
                Err(e) => Answer::failed(&Error::BadRequest {
                    path: self.db.clone(),
                    detail: e.to_string(),
                }),
            };
            send(&self.db, &peer.stream, &answer);
            return Step::Finished(true);
        }
    }
}

/// Writes `answer` to a peer, best effort: one that went away, or does not read, is
/// dropped all the same (an answer is far smaller than a socket's buffer).
fn send(db: &Path, stream: &UnixStream, answer: &Answer) {
    if let Ok(bytes) = frame::encode(db, answer) {
        let _ = (&*stream).write_all(&bytes);
    }
}

/// Gives the socket file at `sock` the owner of the board `db` (the group `group`, if set,
/// else the board's) and mode 0600 (0660 with a group).
fn own_like_board(db: &Path, sock: &Path, group: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(db)?;
    let gid = group.unwrap_or(meta.gid());
    std::os::unix::fs::chown(sock, Some(meta.uid()), Some(gid))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(mode))
}
