//! Reading a board's 100-byte header *through SQLite*, to say why an open failed.
//!
//! When SQLite refuses a file we want a precise, typed reason: not SQLite at all, or an
//! SQLite file cut short. That needs the header (magic string, page size, page count). The
//! upstream code read it with a plain `open`/`read`/`close` of the database file, and the
//! `close` dropped every POSIX lock the process held on it (R2). We read it through SQLite's
//! own default VFS instead: its `xClose` knows about the other connections of this process
//! and keeps the descriptor open while they hold locks, so no lock is ever lost.
//!
//! This runs only after SQLite has already reported an error; it is not on the open path.
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use std::ffi::{CString, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use rusqlite::ffi;

/// The fixed prefix of every SQLite database file.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The fields of a database header that diagnosis needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The first 100 bytes (zero-filled past the end of a shorter file).
    pub bytes: [u8; 100],
}

impl Header {
    /// Whether the file starts with the SQLite magic string.
    pub fn has_magic(&self) -> bool {
        &self.bytes[..16] == MAGIC
    }

    /// The page size in bytes, if the header's value is a valid one.
    pub fn page_size(&self) -> Option<u64> {
        let raw = u16::from_be_bytes([self.bytes[16], self.bytes[17]]);
        let size = if raw == 1 { 65_536 } else { u64::from(raw) };
        (size.is_power_of_two() && (512..=65_536).contains(&size)).then_some(size)
    }

    /// The database size in pages, when the header's copy of it is valid (its change
    /// counter matches its version-valid-for number, as SQLite itself requires).
    pub fn page_count(&self) -> Option<u64> {
        let count = u32::from_be_bytes(self.bytes[28..32].try_into().ok()?);
        let valid = self.bytes[24..28] == self.bytes[92..96] && count > 0;
        valid.then_some(u64::from(count))
    }

    /// The file size the header implies, in bytes.
    pub fn expected_size(&self) -> Option<u64> {
        Some(self.page_size()? * self.page_count()?)
    }
}

/// Reads the header of the database at `path` through SQLite's default VFS.
///
/// Returns `None` when the VFS cannot open the file.
pub fn read(path: &Path) -> Option<Header> {
    let name = CString::new(path.as_os_str().as_bytes()).ok()?;
    let empty = c"";
    // SAFETY: plain calls into SQLite's VFS, as the pager makes them. The file object is a
    // buffer of `szOsFile` bytes, 8-byte aligned; it is closed on every path after a
    // successful xOpen; the filename made by sqlite3_create_filename outlives it.
    unsafe {
        let vfs = ffi::sqlite3_vfs_find(ptr::null());
        if vfs.is_null() {
            return None;
        }
        let words = usize::try_from((*vfs).szOsFile).ok()?.div_ceil(8);
        let mut storage = vec![0u64; words.max(1)];
        let file = storage.as_mut_ptr().cast::<ffi::sqlite3_file>();
        let zname = ffi::sqlite3_create_filename(
            name.as_ptr(),
            empty.as_ptr(),
            empty.as_ptr(),
            0,
            ptr::null_mut(),
        );
        if zname.is_null() {
            return None;
        }
        let mut out_flags = 0;
        let open = (*vfs).xOpen?;
        let flags = ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_READONLY;
        let rc = open(vfs, zname, file, flags, &mut out_flags);
        let mut header = None;
        if rc == ffi::SQLITE_OK {
            let methods = (*file).pMethods;
            if !methods.is_null() {
                let mut bytes = [0u8; 100];
                if let Some(xread) = (*methods).xRead {
                    // A short read zero-fills and reports SQLITE_IOERR_SHORT_READ: fine here.
                    let rc = xread(file, bytes.as_mut_ptr().cast::<c_void>(), 100, 0);
                    if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_IOERR_SHORT_READ {
                        header = Some(Header { bytes });
                    }
                }
                if let Some(xclose) = (*methods).xClose {
                    xclose(file);
                }
            }
        }
        ffi::sqlite3_free_filename(zname);
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_header() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        let h = read(&db).unwrap();
        assert!(h.has_magic());
        assert_eq!(h.page_size(), Some(4096));
        assert_eq!(h.expected_size(), Some(2 * 4096));
    }

    #[test]
    fn a_missing_file_has_no_header() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("nope.db")), None);
    }
}
