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
//!
//! Layer: single-writer server (the layer order is in `store/ARCHITECTURE.md`).

mod server;

pub use crate::requests::{
    BadRequestId, KEPT_REQUEST_IDS, MAX_FRAME, RequestId, Write, deadline, socket_path,
};
pub use server::{MAX_PEERS, REQUESTS_PER_SERVE, SERVE_BUDGET_MS, WriteServer};
