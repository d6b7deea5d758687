//! Work layer: a user's write as a request ([`Write`]) with its [`RequestId`], the ids a
//! board has applied, the frames they travel in, and the dashboard's side of the socket
//! ([`forward`]). Below [`crate::Board`], which submits and forwards them; the gateway's
//! side, which needs a `Board`, is `single_writer`'s (`server.rs`), above it. The protocol
//! is described in the `single_writer` module.

mod applied;
mod client;
pub(crate) mod frame;
pub(crate) mod peer;
mod request_id;

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
