//! The frames on the board's socket: one JSON line each way, bounded.
//!
//! A request is `{"id": "<32 hex digits>", "write": {...}}` and a newline; the answer is
//! `{"Done": value}` or `{"Failed": {"kind": "<ErrorKind::as_str>", "message": "..."}}` and
//! a newline. Neither may be longer than [`MAX_FRAME`] bytes, newline included, so a
//! reader never holds more than that for one peer.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RequestId, Write};
use crate::error::{Error, ErrorKind};

/// The longest frame, newline included: 64 KiB, room for a task with a long body while a
/// flood of peers costs the gateway at most this much memory each.
pub const MAX_FRAME: usize = 64 * 1024;

/// What a dashboard sends.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub id: RequestId,
    pub write: Write,
}

/// The gateway's answer: the write's value (the new task's or comment's id, else the
/// event's), or its error.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Answer {
    Done(i64),
    Failed { kind: String, message: String },
}

impl Answer {
    /// The answer that tells the client `e`.
    pub fn failed(e: &Error) -> Answer {
        Answer::Failed {
            kind: e.kind().as_str().into(),
            message: e.to_string(),
        }
    }

    /// What the client returns for this answer (about the board at `db`).
    pub fn into_result(self, db: &Path) -> Result<i64, Error> {
        match self {
            Answer::Done(value) => Ok(value),
            Answer::Failed { kind, message } => match kind.parse::<ErrorKind>() {
                Ok(kind) => Err(Error::Remote {
                    path: db.to_path_buf(),
                    kind,
                    message,
                }),
                Err(e) => Err(Error::BadRequest {
                    path: db.to_path_buf(),
                    detail: format!("the gateway's answer: {e}: {message}"),
                }),
            },
        }
    }
}

/// `value` as one frame, or [`Error::FrameTooLarge`].
pub(crate) fn encode(db: &Path, value: &impl Serialize) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec(value).expect("frames serialise");
    bytes.push(b'\n');
    if bytes.len() > MAX_FRAME {
        return Err(too_large(db, bytes.len()));
    }
    Ok(bytes)
}

/// A frame of `size` bytes (or more) is too large.
pub(crate) fn too_large(db: &Path, size: usize) -> Error {
    Error::FrameTooLarge {
        path: db.to_path_buf(),
        size,
        max: MAX_FRAME,
    }
}

/// The bytes read so far from one peer, until its frame is complete.
#[derive(Debug, Default)]
pub(crate) struct Partial(Vec<u8>);

impl Partial {
    /// Adds `bytes`; returns the complete frame (without its newline) once there is one,
    /// or [`Error::FrameTooLarge`] as soon as more than [`MAX_FRAME`] bytes came without one.
    pub fn push(&mut self, db: &Path, bytes: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.0.extend_from_slice(bytes);
        if let Some(end) = self.0.iter().position(|&b| b == b'\n') {
            if end >= MAX_FRAME {
                return Err(too_large(db, end + 1));
            }
            self.0.truncate(end);
            return Ok(Some(std::mem::take(&mut self.0)));
        }
        if self.0.len() >= MAX_FRAME {
            return Err(too_large(db, self.0.len()));
        }
        Ok(None)
    }
}
