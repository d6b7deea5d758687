//! Single-writer mode: the gateway owns every write; dashboards send theirs over a socket.
//!
//! The upstream report's first suggestion. With `StoreConfig::single_writer`, a dashboard
//! session's write methods ([`Write`]) do not touch the board: each becomes one request to
//! the gateway over the Unix socket beside the board (`<db>.sock`), which runs it on its own
//! session and answers. Dashboards still read through their read-only connection. The
//! callers' API does not change.
//!
//! The protocol:
//!
//! - **Who listens.** Only the session that holds the gateway lock binds the socket
//!   ([`WriteServer::bind`] takes the [`Board`](crate::Board) and checks), so a refused
//!   second gateway cannot replace the live socket. The file gets the board's owner and
//!   mode 0600 (0660 and [`StoreConfig::socket_group`](crate::StoreConfig::socket_group)
//!   when a group is configured).
//! - **Who talks.** Both ends check the other with `SO_PEERCRED`: the same user, or the
//!   configured group (`peer.rs`); anyone else gets [`Error::PeerRefused`](crate::Error::PeerRefused).
//! - **Frames** (`frame.rs`): one JSON line each way, at most [`MAX_FRAME`] bytes. A longer
//!   request is [`Error::FrameTooLarge`](crate::Error::FrameTooLarge): the client refuses to
//!   send it, the server answers so and closes that connection, and serves the others.
//! - **Request ids.** Every request carries a [`RequestId`] chosen by the caller; the board
//!   records the ids it applied in the write's own transaction, and answers an id it has
//!   seen with the first answer instead of applying it again ([`crate::Board::submit`]).
//!   So a request that timed out, stayed in the socket and ran later is not run twice when
//!   its caller retries: a retry of an `Unavailable` with the same id is always safe.
//! - **The server's budget.** [`WriteServer::serve`] never waits: it reads each connection
//!   without blocking into a buffer of its own, answers at most [`REQUESTS_PER_SERVE`]
//!   requests and takes new ones for at most [`SERVE_BUDGET_MS`], and holds at most
//!   [`MAX_PEERS`] connections; the rest wait for the next call. A flood or a silent
//!   client cannot stall the gateway's tick.
//! - **The client's deadline** ([`deadline`]): one for connect, send and answer together,
//!   half the busy timeout. It waits through the configured clock
//!   (`Clock::wait_readable`: a `poll` of the socket for real, a logical sleep under the
//!   deterministic scheduler, which sees every wait). A gateway that is down gives
//!   [`Error::Unavailable`](crate::Error::Unavailable) at once (nobody listens); one that
//!   does not answer in time gives it too, and the write may or may not have happened
//!   (like a commit whose process died before it returned): retry it with the same id.

mod applied;
mod client;
mod frame;
mod peer;
mod request_id;
mod server;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::txn::Txn;
use crate::types::{EventId, NewTask, TaskId, TaskStatus};

pub use applied::KEEP as KEPT_REQUEST_IDS;
pub(crate) use applied::{digest, record, recorded};
pub use client::deadline;
pub(crate) use client::forward;
pub use frame::MAX_FRAME;
pub use request_id::{BadRequestId, RequestId};
pub use server::{MAX_PEERS, REQUESTS_PER_SERVE, SERVE_BUDGET_MS, WriteServer};

/// The socket of the board at `db`, beside its canonical path (see [`Board::path`](crate::Board::path)), so a
/// gateway and a dashboard that name the board differently meet at one socket.
pub fn socket_path(db: &Path) -> PathBuf {
    crate::place::sock(&crate::place::canonical_or_given(db))
}

/// A write a dashboard sends to the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// [`crate::Board::create_task`].
    CreateTask(NewTask),
    /// [`crate::Board::update_task`].
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
    /// [`crate::Board::move_task`].
    MoveTask {
        /// The task.
        id: TaskId,
        /// Where to.
        to: TaskStatus,
    },
    /// [`crate::Board::link`].
    Link {
        /// The parent.
        parent: TaskId,
        /// The child.
        child: TaskId,
    },
    /// [`crate::Board::comment`].
    Comment {
        /// The task.
        task: TaskId,
        /// Who.
        author: String,
        /// What.
        body: String,
    },
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
