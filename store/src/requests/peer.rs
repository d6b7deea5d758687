//! Who may be at the other end of the board's socket, checked with `SO_PEERCRED`.
//!
//! The socket file's mode keeps other users out of the folder's listing and `connect`, but a
//! mode can be loosened or the file replaced; the kernel's record of the peer cannot be
//! forged. Both ends trust a peer whose user is their own effective user, or whose primary
//! group is [`crate::StoreConfig::socket_group`] when one is configured.

use std::os::fd::AsFd;
use std::path::Path;

use nix::sys::socket::{UnixCredentials, getsockopt, sockopt::PeerCredentials};

use crate::error::{Error, Result};

/// The peers one end trusts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trust {
    uid: u32,
    group: Option<u32>,
}

impl Trust {
    /// This process's effective user, and `group` if configured.
    pub fn here(group: Option<u32>) -> Trust {
        Trust {
            uid: nix::unistd::geteuid().as_raw(),
            group,
        }
    }

    /// Refuses the peer of `socket` (a connection to the board at `db`) unless trusted.
    pub fn check(self, db: &Path, socket: &impl AsFd) -> Result<()> {
        let cred: UnixCredentials = getsockopt(socket, PeerCredentials).map_err(|e| Error::Io {
            path: db.to_path_buf(),
            source: e.into(),
        })?;
        if cred.uid() == self.uid || self.group.is_some_and(|g| g == cred.gid()) {
            return Ok(());
        }
        Err(Error::PeerRefused {
            path: db.to_path_buf(),
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            why: match self.group {
                Some(g) => format!("only uid {} or gid {g} is trusted", self.uid),
                None => format!("only uid {} is trusted", self.uid),
            },
        })
    }
}
