//! The recorder: what the shim calls, in every worker process, before each change it passes
//! on to the file system.
//!
//! Each call appends one framed record to the journal with one `write(2)` on a descriptor
//! opened with `O_APPEND`, so records of concurrent processes never interleave (the kernel
//! positions and writes an `O_APPEND` write to a regular file under the inode's lock) and no
//! lock is held across processes. A write's old bytes are read through the very file the
//! shim is about to write through ([`Contents`]), so they are what the page cache held.
//! The recorder runs *before* the change: a process killed between the record and the change
//! leaves a record whose undo rewrites the bytes that are there anyway.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::record::{Op, Record};
use super::{Error, Result, journal_path, kept_dir};

/// Appends the page-cache journal of one board folder.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    journal: File,
    /// Numbers this process's kept links.
    kept: AtomicU64,
}

impl Recorder {
    /// Opens (creating if need be) the journal of the board folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = journal_path(dir);
        let journal = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io("opening the journal", &path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            journal,
            kept: AtomicU64::new(0),
        })
    }

    /// Before a write of `len` bytes at `offset` to `file` (read through `src`): keeps the
    /// bytes it will replace.
    pub fn write(&self, file: &str, src: &impl Contents, offset: u64, len: u64) -> Result<()> {
        let (old_size, old) = read(file, src, offset, len)?;
        let op = Op::Write {
            offset,
            old_size,
            len,
            old,
        };
        self.append(&Record::Change {
            file: file.into(),
            op,
        })
    }

    /// Before `file` (read through `src`) is truncated or extended to `new_len`: keeps the
    /// tail it will cut off.
    pub fn truncate(&self, file: &str, src: &impl Contents, new_len: u64) -> Result<()> {
        let (old_len, tail) = read(file, src, new_len, u64::MAX - new_len)?;
        let op = Op::Truncate {
            new_len,
            old_len,
            tail,
        };
        self.append(&Record::Change {
            file: file.into(),
            op,
        })
    }

    /// After a successful sync of `file` with SQLite's `flags`.
    pub fn sync(&self, file: &str, flags: u32) -> Result<()> {
        self.append(&Record::Sync {
            file: file.into(),
            flags,
        })
    }

    /// Before `file`, which does not exist, is created (recorded first, so that no other
    /// process's sync of the folder can come between the create and its record; a second
    /// create of a name the journal already holds is the same file).
    pub fn create(&self, file: &str) -> Result<()> {
        self.append(&Record::Create { file: file.into() })
    }

    /// After a successful sync of the directory `dir` (`""`: the board folder).
    pub fn dir_sync(&self, dir: &str) -> Result<()> {
        self.append(&Record::DirSync { dir: dir.into() })
    }

    /// Before `file` is deleted: keeps a hard link to it, so a cut can bring it back.
    pub fn delete(&self, file: &str) -> Result<()> {
        let kept = self.keep(file)?;
        self.append(&Record::Delete {
            file: file.into(),
            kept,
        })
    }

    /// Before `from` is renamed onto `to`: keeps a hard link to what `to` is, if it exists.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let replaced = self.keep(to)?;
        self.append(&Record::Rename {
            from: from.into(),
            to: to.into(),
            replaced,
        })
    }

    /// Before `to` is made a new name (a hard link) of `from`.
    pub fn link(&self, from: &str, to: &str) -> Result<()> {
        self.append(&Record::Link {
            from: from.into(),
            to: to.into(),
        })
    }

    /// A hard link to `file` in the kept folder, named uniquely across processes; `None`
    /// if `file` does not exist. A link opens no descriptor, so no process's POSIX locks on
    /// the file are disturbed.
    fn keep(&self, file: &str) -> Result<Option<String>> {
        let src = self.dir.join(file);
        if !src.exists() {
            return Ok(None);
        }
        let folder = kept_dir(&self.dir);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io("creating", &folder, e))?;
        let n = self.kept.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", std::process::id());
        std::fs::hard_link(&src, folder.join(&name))
            .map_err(|e| Error::io("keeping a link to", &src, e))?;
        Ok(Some(name))
    }

    fn append(&self, record: &Record) -> Result<()> {
        let frame = record.frame()?;
        // One write(2), never retried: a retry after a short write could interleave with
        // another process's record (the reader skips the torn part).
        // SAFETY: the descriptor is the journal's, open for the life of `self`.
        let wrote =
            unsafe { libc::write(self.journal.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        match usize::try_from(wrote) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(n) => Err(Error::ShortAppend {
                wrote: n,
                len: frame.len(),
            }),
            Err(_) => Err(Error::io(
                "appending to",
                &journal_path(&self.dir),
                std::io::Error::last_os_error(),
            )),
        }
    }
}

/// What the recorder reads of a file about to change: its size and bytes as the page cache
/// holds them. The shim implements it over the wrapped file's `xFileSize` and `xRead` (or
/// hands over the descriptor: [`BorrowedFd`] implements it with `fstat` and `pread`).
pub trait Contents {
    /// The file's size.
    fn size(&self) -> std::io::Result<u64>;
    /// Fills `buf` from `offset`; the file is known to hold every byte asked for.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl Contents for BorrowedFd<'_> {
    fn size(&self) -> std::io::Result<u64> {
        let st = nix::sys::stat::fstat(self)?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            let at = libc::off_t::try_from(offset + got as u64).map_err(std::io::Error::other)?;
            // SAFETY: `self` is an open descriptor; the pointer and length are within `buf`.
            let n = unsafe {
                libc::pread(
                    self.as_raw_fd(),
                    buf[got..].as_mut_ptr().cast(),
                    buf.len() - got,
                    at,
                )
            };
            match usize::try_from(n) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The file's size, and its `len` bytes from `offset` (fewer at its end).
fn read(file: &str, src: &impl Contents, offset: u64, len: u64) -> Result<(u64, Vec<u8>)> {
    let io = |e| Error::io("reading the old bytes of", Path::new(file), e);
    let size = src.size().map_err(io)?;
    let end = offset.saturating_add(len).min(size);
    let n = usize::try_from(end.saturating_sub(offset))
        .map_err(|_| Error::RecordTooLarge(format!("{len} bytes")))?;
    let mut buf = vec![0u8; n];
    src.read_exact_at(&mut buf, offset).map_err(io)?;
    Ok((size, buf))
}
