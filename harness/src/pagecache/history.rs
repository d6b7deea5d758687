//! The journal replayed: per file, what is not durable at the cut.
//!
//! Files are followed as inodes, not names, because a name may be deleted and made again
//! (SQLite's rollback journal is, at every commit) and renames move an inode's writes to a
//! new name. A file's *pending* operations are its writes and truncations since its last
//! sync; a directory's pending namespace operations are its creates, deletes and renames
//! since its last directory sync. Every file is durable at the start of the journal's epoch.

use std::collections::BTreeMap;
use std::path::Path;

use super::record::{Op, Record};

/// A namespace change not yet made durable by a directory sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsOp {
    /// `name` was created as inode `ino`.
    Create {
        /// The name.
        name: String,
        /// The inode.
        ino: usize,
    },
    /// `name` was deleted; `kept` is the link that holds it.
    Delete {
        /// The name.
        name: String,
        /// The kept link.
        kept: Option<String>,
    },
    /// `name` was made a new name of an existing inode (a hard link).
    Link {
        /// The new name.
        name: String,
    },
    /// `from` was renamed onto `to`, replacing the file kept as `replaced`.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
        /// The kept link to what `to` was.
        replaced: Option<String>,
    },
}

/// Where an inode is at the cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Under this name in the board folder.
    Named(String),
    /// Deleted or replaced, held by this link in the kept folder.
    Kept(String),
    /// Deleted with no link kept: its content cannot be rewritten or restored.
    Gone,
}

/// One inode's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// The last name it had.
    pub name: String,
    /// Where it is now.
    pub place: Place,
    /// Its writes and truncations since its last sync, oldest first.
    pub pending: Vec<Op>,
}

/// The journal replayed.
#[derive(Debug, Default)]
pub struct History {
    /// Every inode the journal touches, in order of first mention.
    pub inodes: Vec<Inode>,
    /// Per directory, its namespace changes since its last sync, oldest first.
    pub namespace: BTreeMap<String, Vec<NsOp>>,
    names: BTreeMap<String, usize>,
}

impl History {
    /// Replays `records`.
    pub fn replay(records: &[Record]) -> Self {
        let mut h = Self::default();
        for r in records {
            h.apply(r);
        }
        h
    }

    fn apply(&mut self, r: &Record) {
        match r {
            Record::Change { file, op } => {
                let ino = self.ino(file);
                self.inodes[ino].pending.push(op.clone());
            }
            Record::Sync { file, .. } => {
                let ino = self.ino(file);
                self.inodes[ino].pending.clear();
            }
            // Two processes may both see no file and record its create; the second open
            // finds the first's file (`O_CREAT` makes no second inode): one create.
            Record::Create { file } if self.names.contains_key(file) => {}
            Record::Create { file } => {
                let ino = self.fresh(file);
                self.names.insert(file.clone(), ino);
                self.ns(file).push(NsOp::Create {
                    name: file.clone(),
                    ino,
                });
            }
            Record::Delete { file, kept } => {
                self.unname(file, kept);
                self.ns(file).push(NsOp::Delete {
                    name: file.clone(),
                    kept: kept.clone(),
                });
            }
            Record::Rename { from, to, replaced } => {
                let ino = self.ino(from);
                self.names.remove(from);
                self.unname(to, replaced);
                self.names.insert(to.clone(), ino);
                self.inodes[ino].name.clone_from(to);
                self.inodes[ino].place = Place::Named(to.clone());
                let op = NsOp::Rename {
                    from: from.clone(),
                    to: to.clone(),
                    replaced: replaced.clone(),
                };
                self.ns(to).push(op);
            }
            Record::Link { from, to } => {
                let ino = self.ino(from);
                self.names.insert(to.clone(), ino);
                self.ns(to).push(NsOp::Link { name: to.clone() });
            }
            Record::DirSync { dir } => {
                self.namespace.remove(dir);
            }
        }
    }

    /// The inode named `file`, a pre-existing one if the journal has not seen it.
    fn ino(&mut self, file: &str) -> usize {
        match self.names.get(file) {
            Some(&ino) => ino,
            None => {
                let ino = self.fresh(file);
                self.names.insert(file.into(), ino);
                ino
            }
        }
    }

    fn fresh(&mut self, file: &str) -> usize {
        let place = Place::Named(file.into());
        self.inodes.push(Inode {
            name: file.into(),
            place,
            pending: Vec::new(),
        });
        self.inodes.len() - 1
    }

    /// `file` loses its name; its inode is now under its other name if it has one (a hard
    /// link), else held by `kept`, if any.
    fn unname(&mut self, file: &str, kept: &Option<String>) {
        let Some(ino) = self.names.remove(file) else {
            return;
        };
        let other = self.names.iter().find(|(_, i)| **i == ino).map(|(n, _)| n);
        let inode = &mut self.inodes[ino];
        match other {
            Some(name) => {
                inode.name.clone_from(name);
                inode.place = Place::Named(name.clone());
            }
            None => inode.place = kept.clone().map_or(Place::Gone, Place::Kept),
        }
    }

    fn ns(&mut self, file: &str) -> &mut Vec<NsOp> {
        let dir = Path::new(file)
            .parent()
            .and_then(Path::to_str)
            .unwrap_or("")
            .to_string();
        self.namespace.entry(dir).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: &str) -> Record {
        let op = Op::Write {
            offset: 0,
            old_size: 0,
            len: 1,
            old: vec![],
        };
        Record::Change {
            file: file.into(),
            op,
        }
    }

    #[test]
    fn a_sync_clears_only_its_file_and_a_dir_sync_only_its_folder() {
        let h = History::replay(&[
            write("a"),
            write("b"),
            Record::Sync {
                file: "a".into(),
                flags: 2,
            },
            Record::Create { file: "c".into() },
            Record::Create { file: "q/d".into() },
            Record::DirSync { dir: "q".into() },
        ]);
        let pending: Vec<usize> = h.inodes.iter().map(|i| i.pending.len()).collect();
        assert_eq!(pending, [0, 1, 0, 0]);
        assert_eq!(h.namespace.keys().collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn a_name_deleted_and_made_again_is_a_new_inode_and_renames_carry_writes() {
        let kept = Some("1-0".to_string());
        let h = History::replay(&[
            write("j"),
            Record::Delete {
                file: "j".into(),
                kept: kept.clone(),
            },
            Record::Create { file: "j".into() },
            write("j"),
            Record::Rename {
                from: "j".into(),
                to: "k".into(),
                replaced: None,
            },
        ]);
        assert_eq!(h.inodes.len(), 2);
        assert_eq!(h.inodes[0].place, Place::Kept("1-0".into()));
        assert_eq!(h.inodes[1].place, Place::Named("k".into()));
        assert_eq!(h.inodes[1].pending.len(), 1);
    }

    /// Two processes that both saw no WAL record its create; the second open found the
    /// first's file. One inode, with every write on it.
    ///
    /// Failed before: the second create made a second inode, and the first's writes were
    /// left on a nameless one.
    #[test]
    fn a_create_recorded_twice_is_one_file() {
        let h = History::replay(&[
            Record::Create { file: "w".into() },
            write("w"),
            Record::Create { file: "w".into() },
            write("w"),
        ]);
        assert_eq!(h.inodes.len(), 1);
        assert_eq!(h.inodes[0].pending.len(), 2);
        assert_eq!(h.namespace[""].len(), 1);
    }

    #[test]
    fn a_linked_file_whose_first_name_is_deleted_lives_on_under_the_link() {
        let h = History::replay(&[
            Record::Create {
                file: "q/.p".into(),
            },
            write("q/.p"),
            Record::Link {
                from: "q/.p".into(),
                to: "q/c".into(),
            },
            Record::Delete {
                file: "q/.p".into(),
                kept: Some("1-0".into()),
            },
        ]);
        assert_eq!(h.inodes.len(), 1);
        assert_eq!(h.inodes[0].place, Place::Named("q/c".into()));
        assert_eq!(h.inodes[0].name, "q/c");
        assert_eq!(h.inodes[0].pending.len(), 1);
        assert_eq!(h.namespace["q"].len(), 3);
    }
}
