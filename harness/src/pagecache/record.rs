//! The journal's records and their framing.
//!
//! A frame is `MAGIC | len | crc32(payload) | payload` (little-endian `u32`s), written with
//! one `write(2)`. The magic lets the reader resynchronise after a record torn by a SIGKILL
//! mid-append (a partial `write(2)`): other processes may have appended whole records after
//! it, and they must not be lost with it. The crc makes a torn or foreign frame detectable;
//! a magic found inside a payload is only taken when its frame's crc also holds.

use super::{Error, Result};

/// The first four bytes of every frame: "PCJ1".
const MAGIC: u32 = u32::from_le_bytes(*b"PCJ1");
/// Magic, length and crc.
const HEADER: usize = 12;

/// One event of the page cache, as the shim saw it, in the order the journal holds them.
///
/// Files are named by their path relative to the board folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A write or truncation of `file`, recorded just before it was made.
    Change {
        /// The file.
        file: String,
        /// What was done, with what undoing it needs.
        op: Op,
    },
    /// A successful sync of the file, with SQLite's `SQLITE_SYNC_*` flags.
    Sync {
        /// The file.
        file: String,
        /// `SQLITE_SYNC_NORMAL`, `FULL`, possibly with `DATAONLY`.
        flags: u32,
    },
    /// A file that did not exist was created.
    Create {
        /// The file.
        file: String,
    },
    /// A file was deleted; `kept` names the hard link that keeps its content (in the kept
    /// folder), so that a cut can bring it back.
    Delete {
        /// The file.
        file: String,
        /// The link's name in the kept folder, if one could be made.
        kept: Option<String>,
    },
    /// `from` was renamed onto `to`; `replaced` names the kept link to what `to` was, if
    /// `to` existed.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
        /// The kept link to the file `to` replaced.
        replaced: Option<String>,
    },
    /// `to` is about to be made a new name (a hard link) of the file named `from`.
    Link {
        /// The existing name.
        from: String,
        /// The new name (which does not exist: a link never replaces).
        to: String,
    },
    /// A successful sync of a directory (relative to the board folder; `""` is the board
    /// folder itself): every create, delete and rename in it so far is durable.
    DirSync {
        /// The directory.
        dir: String,
    },
}

/// A write or truncation, with what undoing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A write of `len` bytes at `offset`.
    Write {
        /// Where the write starts.
        offset: u64,
        /// The file's size just before the write.
        old_size: u64,
        /// How many bytes were written.
        len: u64,
        /// The bytes the write replaced: `min(len, old_size - offset)` of them (none past
        /// the old end of the file: undoing the write truncates back to `old_size`).
        old: Vec<u8>,
    },
    /// A truncation (or extension) of the file to `new_len`.
    Truncate {
        /// The size it was set to.
        new_len: u64,
        /// Its size before.
        old_len: u64,
        /// The bytes cut off, `old_len - new_len` of them (none for an extension).
        tail: Vec<u8>,
    },
}

impl Record {
    /// The record as one frame, ready for one `write(2)`.
    pub fn frame(&self) -> Result<Vec<u8>> {
        let mut out = vec![0; HEADER];
        let mut p = Payload(&mut out);
        match self {
            Record::Change {
                file,
                op:
                    Op::Write {
                        offset,
                        old_size,
                        len,
                        old,
                    },
            } => {
                p.tag(1)
                    .name(file)?
                    .u64(*offset)
                    .u64(*old_size)
                    .u64(*len)
                    .bytes(old)?;
            }
            Record::Change {
                file,
                op:
                    Op::Truncate {
                        new_len,
                        old_len,
                        tail,
                    },
            } => {
                p.tag(2)
                    .name(file)?
                    .u64(*new_len)
                    .u64(*old_len)
                    .bytes(tail)?;
            }
            Record::Sync { file, flags } => {
                p.tag(3).name(file)?.u64(u64::from(*flags));
            }
            Record::Create { file } => {
                p.tag(4).name(file)?;
            }
            Record::Delete { file, kept } => {
                p.tag(5).name(file)?.opt(kept.as_deref())?;
            }
            Record::Rename { from, to, replaced } => {
                p.tag(6).name(from)?.name(to)?.opt(replaced.as_deref())?;
            }
            Record::DirSync { dir } => {
                p.tag(7).name(dir)?;
            }
            Record::Link { from, to } => {
                p.tag(8).name(from)?.name(to)?;
            }
        }
        let len = u32::try_from(out.len() - HEADER)
            .map_err(|_| Error::RecordTooLarge(format!("{} bytes", out.len())))?;
        let crc = crc32fast::hash(&out[HEADER..]);
        out[..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&len.to_le_bytes());
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

/// What [`read_journal`](super::read_journal) found in a journal.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The whole records, in journal order.
    pub records: Vec<Record>,
    /// Bytes skipped: torn records (and anything else that is no valid frame).
    pub skipped_bytes: u64,
}

/// Every valid frame of `bytes`, skipping torn ones (resynchronising at the next magic).
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0;
    while at < bytes.len() {
        match frame_at(&bytes[at..]) {
            Some((record, used)) => {
                parsed.records.push(record);
                at += used;
            }
            None => {
                let next = find_magic(&bytes[at + 1..]).map_or(bytes.len(), |i| at + 1 + i);
                parsed.skipped_bytes += (next - at) as u64;
                at = next;
            }
        }
    }
    parsed
}

fn find_magic(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == MAGIC.to_le_bytes())
}

/// The record framed at the start of `b` and the frame's length, if it is whole and sound.
fn frame_at(b: &[u8]) -> Option<(Record, usize)> {
    let word = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    if word(0)? != MAGIC {
        return None;
    }
    let len = usize::try_from(word(4)?).ok()?;
    let payload = b.get(HEADER..HEADER.checked_add(len)?)?;
    if crc32fast::hash(payload) != word(8)? {
        return None;
    }
    let record = Reader(payload).record()?;
    Some((record, HEADER + len))
}

/// Appends a payload's fields.
struct Payload<'a>(&'a mut Vec<u8>);

impl Payload<'_> {
    fn tag(&mut self, t: u8) -> &mut Self {
        self.0.push(t);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn name(&mut self, s: &str) -> Result<&mut Self> {
        let n = u16::try_from(s.len()).map_err(|_| Error::RecordTooLarge(format!("name {s:?}")))?;
        self.0.extend_from_slice(&n.to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        Ok(self)
    }
    fn opt(&mut self, s: Option<&str>) -> Result<&mut Self> {
        match s {
            None => Ok(self.tag(0)),
            Some(s) => self.tag(1).name(s),
        }
    }
    fn bytes(&mut self, b: &[u8]) -> Result<&mut Self> {
        let n = u32::try_from(b.len())
            .map_err(|_| Error::RecordTooLarge(format!("{} bytes", b.len())))?;
        self.0.extend_from_slice(&n.to_le_bytes());
        self.0.extend_from_slice(b);
        Ok(self)
    }
}

/// Reads a payload's fields; `None` at the first malformed one.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn name(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        String::from_utf8(self.take(usize::from(n))?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.name()?)),
            _ => None,
        }
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        Some(self.take(usize::try_from(n).ok()?)?.to_vec())
    }
    fn record(mut self) -> Option<Record> {
        let record = match self.u8()? {
            1 => {
                let file = self.name()?;
                let (offset, old_size, len) = (self.u64()?, self.u64()?, self.u64()?);
                Record::Change {
                    file,
                    op: Op::Write {
                        offset,
                        old_size,
                        len,
                        old: self.bytes()?,
                    },
                }
            }
            2 => {
                let file = self.name()?;
                let (new_len, old_len) = (self.u64()?, self.u64()?);
                Record::Change {
                    file,
                    op: Op::Truncate {
                        new_len,
                        old_len,
                        tail: self.bytes()?,
                    },
                }
            }
            3 => Record::Sync {
                file: self.name()?,
                flags: u32::try_from(self.u64()?).ok()?,
            },
            4 => Record::Create { file: self.name()? },
            5 => Record::Delete {
                file: self.name()?,
                kept: self.opt()?,
            },
            6 => Record::Rename {
                from: self.name()?,
                to: self.name()?,
                replaced: self.opt()?,
            },
            7 => Record::DirSync { dir: self.name()? },
            8 => Record::Link {
                from: self.name()?,
                to: self.name()?,
            },
            _ => return None,
        };
        self.0.is_empty().then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Change {
                file: "db".into(),
                op: Op::Write {
                    offset: 4096,
                    old_size: 8192,
                    len: 10,
                    old: vec![7; 10],
                },
            },
            Record::Change {
                file: "db-wal".into(),
                op: Op::Truncate {
                    new_len: 0,
                    old_len: 3,
                    tail: vec![1, 2, 3],
                },
            },
            Record::Sync {
                file: "db".into(),
                flags: 0x13,
            },
            Record::Create {
                file: "db-journal".into(),
            },
            Record::Delete {
                file: "db-journal".into(),
                kept: Some("1-2".into()),
            },
            Record::Rename {
                from: "a".into(),
                to: "q/b".into(),
                replaced: None,
            },
            Record::DirSync { dir: String::new() },
            Record::Link {
                from: "q/.p".into(),
                to: "q/c".into(),
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        let mut bytes = Vec::new();
        for r in samples() {
            bytes.extend(r.frame().unwrap());
        }
        let parsed = parse(&bytes);
        assert_eq!(parsed.records, samples());
        assert_eq!(parsed.skipped_bytes, 0);
    }

    #[test]
    fn a_torn_frame_in_the_middle_is_skipped_and_the_rest_is_kept() {
        let frames: Vec<Vec<u8>> = samples().iter().map(|r| r.frame().unwrap()).collect();
        let mut bytes = frames[0].clone();
        bytes.extend(&frames[1][..frames[1].len() / 2]);
        bytes.extend(&frames[2]);
        let parsed = parse(&bytes);
        assert_eq!(
            parsed.records,
            vec![samples()[0].clone(), samples()[2].clone()]
        );
        assert_eq!(parsed.skipped_bytes, (frames[1].len() / 2) as u64);
    }
}
