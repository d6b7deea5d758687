//! Which file system holds a board, and whether the store can trust it.
//!
//! WAL mode keeps its index in `-shm`, a file every process maps into memory, and the store
//! keeps its sessions apart with OFD locks on `<db>.lock`. On a network file system (NFS,
//! SMB/CIFS, AFS, Ceph, 9p, ...) or a user-space one (FUSE) neither can be trusted between
//! hosts: memory maps are not coherent across clients and byte-range locks are emulated,
//! advisory per client, or silently local. SQLite's own documentation says WAL does not
//! work over a network file system. So the store refuses a board whose folder is on one
//! ([`Error::UnsupportedFileSystem`]) unless [`crate::StoreConfig::allow_network_fs`] says
//! that every process using the board runs on one host (where the kernel's page cache and
//! locks are shared, as on a FUSE mount used by a single machine).
//!
//! The verdict comes from `statfs`'s file system magic number ([`classify`], a pure
//! function so that it can be tested without mounting anything).
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use std::path::Path;

use crate::error::{Error, Result};

/// A file system, as `statfs` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSystem {
    /// Its name (`ext4`, `nfs`, ...), or `unknown` for a magic number not listed here.
    pub name: &'static str,
    /// The magic number (`f_type`).
    pub magic: i64,
    /// Whether it is shared between hosts or served from user space, where WAL's shared
    /// memory and OFD locks cannot be trusted.
    pub remote: bool,
}

impl std::fmt::Display for FileSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (magic {:#x})", self.name, self.magic)
    }
}

/// Network, cluster and user-space file systems (from `linux/magic.h` and the file systems'
/// own sources).
const REMOTE: [(i64, &str); 16] = [
    (0x6969, "nfs"),
    (0x517b, "smb"),
    (0xff53_4d42, "cifs"),
    (0xfe53_4d42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x0102_1997, "9p"),
    (0x00c3_6400, "ceph"),
    (0x5346_414f, "afs"),
    (0x6b41_4653, "kafs"),
    (0x7375_7245, "coda"),
    (0x564c, "ncp"),
    (0x0bd0_0bd0, "lustre"),
    (0x4750_4653, "gpfs"),
    (0x0116_1970, "gfs2"),
    (0x7461_636f, "ocfs2"),
    (0x786f_4256, "vboxsf"),
];

/// Local file systems worth naming in `selftest`'s report.
const LOCAL: [(i64, &str); 8] = [
    (0xef53, "ext4"),
    (0x0102_1994, "tmpfs"),
    (0x5846_5342, "xfs"),
    (0x9123_683e, "btrfs"),
    (0x794c_7630, "overlayfs"),
    (0x2fc1_2fc1, "zfs"),
    (0xf2f5_2010, "f2fs"),
    (0x0000_4d44, "vfat"),
];

/// What the file system with magic number `magic` is.
pub fn classify(magic: i64) -> FileSystem {
    let known = |list: &[(i64, &'static str)]| {
        list.iter()
            .find(|(m, _)| *m == magic)
            .map(|(_, name)| *name)
    };
    match known(&REMOTE) {
        Some(name) => FileSystem {
            name,
            magic,
            remote: true,
        },
        None => FileSystem {
            name: known(&LOCAL).unwrap_or("unknown"),
            magic,
            remote: false,
        },
    }
}

/// The file system holding `folder`.
pub fn of(folder: &Path) -> Result<FileSystem> {
    let stat = nix::sys::statfs::statfs(folder).map_err(|e| Error::Io {
        path: folder.to_path_buf(),
        source: e.into(),
    })?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // its width varies by target
    let magic = i64::from(stat.filesystem_type().0 as i64);
    Ok(classify(magic))
}

/// Refuses `fs`, holding the board at `path`, if it is remote and not `allowed`.
pub fn refuse_untrusted(path: &Path, fs: FileSystem, allowed: bool) -> Result<()> {
    if fs.remote && !allowed {
        return Err(Error::UnsupportedFileSystem {
            path: path.to_path_buf(),
            fs: fs.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // No network file system is mounted here: the verdicts are tested on magic numbers.
    #[test]
    fn network_and_user_space_file_systems_are_refused_unless_allowed() {
        let board = Path::new("/mnt/share/kanban.db");
        for (magic, name) in [
            (0x6969, "nfs"),
            (0xff53_4d42, "cifs"),
            (0x6573_5546, "fuse"),
        ] {
            let fs = classify(magic);
            assert_eq!((fs.name, fs.remote), (name, true));
            let err = refuse_untrusted(board, fs, false).unwrap_err();
            assert!(
                matches!(&err, Error::UnsupportedFileSystem { path, .. } if path == board),
                "{err:?}"
            );
            assert!(err.to_string().contains(name), "{err}");
            refuse_untrusted(board, fs, true).expect("the opt-in lets it through");
        }
    }

    #[test]
    fn local_file_systems_pass() {
        for (magic, name) in [
            (0xef53, "ext4"),
            (0x0102_1994, "tmpfs"),
            (0x1234, "unknown"),
        ] {
            let fs = classify(magic);
            assert_eq!((fs.name, fs.remote), (name, false));
            refuse_untrusted(Path::new("kanban.db"), fs, false).unwrap();
        }
    }

    #[test]
    fn the_folder_of_these_tests_is_local() {
        let fs = of(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(!fs.remote, "{fs}");
    }
}
