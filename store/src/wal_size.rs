//! The WAL's size as `stat` sees it: how the checkpoint owner learns that others filled
//! the WAL while it wrote nothing itself.
//!
//! SQLite's WAL hook only reports the commits of the connection it is set on. A gateway
//! whose dispatcher has nothing to do while dashboards and agents commit would never see
//! the WAL grow, and with automatic checkpoints off in every other role (R6), nobody would
//! checkpoint it: the WAL would grow without bound. So on every tick the gateway also looks
//! at the `-wal` file's size: a `stat`, which R2 allows (it opens nothing). The file is
//! never truncated by a PASSIVE checkpoint (the next writer starts it over from the top,
//! overwriting), so its size is what the WAL has grown to since the last truncation, an
//! upper bound of the frames in it; a size that has not changed since a complete
//! checkpoint, with the same modification time, holds nothing new.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;
use std::time::SystemTime;

/// The WAL header's size, in bytes.
const HEADER: u64 = 32;
/// A frame's header, before its page.
const FRAME_HEADER: u64 = 24;

/// What `stat` says of a board's `-wal` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalStat {
    /// Its length in bytes.
    len: u64,
    /// Its modification time.
    modified: Option<SystemTime>,
}

impl WalStat {
    /// The `-wal` file of the board at `db`, if there is one.
    pub(crate) fn of(db: &Path) -> Option<WalStat> {
        let meta = std::fs::metadata(crate::place::wal_path(db)).ok()?;
        Some(WalStat {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// How many frames of `page_size` pages the file has room for.
    pub(crate) fn frames(&self, page_size: u64) -> i64 {
        let frames = self.len.saturating_sub(HEADER) / (page_size + FRAME_HEADER);
        i64::try_from(frames).unwrap_or(i64::MAX)
    }
}
