//! [`RequestId`]: the name a caller gives one write, so that its retries are the same write.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A client-chosen, unique name for one write ([`crate::Board::submit`]): the board
/// records the ids it applied, so a write sent again under its id is answered, not
/// applied twice. Written as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u128);

impl RequestId {
    /// The id `n` (for callers that number their writes themselves; they must never reuse
    /// a number for another write on the same board).
    pub fn new(n: u128) -> RequestId {
        RequestId(n)
    }

    /// A fresh random id, from the kernel's random source (`getrandom`): 128 bits, so two
    /// ids never meet by chance.
    pub fn random() -> RequestId {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        while filled < bytes.len() {
            // SAFETY: the pointer and length name the unfilled part of `bytes`.
            let n = unsafe {
                libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
            };
            // Only EINTR can fail a getrandom of 16 bytes without flags: try again.
            if let Ok(n) = usize::try_from(n) {
                filled += n;
            }
        }
        RequestId(u128::from_le_bytes(bytes))
    }

    /// The id as a number.
    pub fn get(self) -> u128 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Text that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequestId(pub String);

impl fmt::Display for BadRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a request id (32 hex digits)", self.0)
    }
}

impl std::error::Error for BadRequestId {}

impl FromStr for RequestId {
    type Err = BadRequestId;

    fn from_str(s: &str) -> Result<RequestId, BadRequestId> {
        let bad = || BadRequestId(s.to_string());
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u128::from_str_radix(s, 16)
            .map(RequestId)
            .map_err(|_| bad())
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RequestId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_from_its_text() {
        let id = RequestId::new(0xabc);
        assert_eq!(id.to_string(), "00000000000000000000000000000abc");
        assert_eq!(id.to_string().parse(), Ok(id));
        assert!("abc".parse::<RequestId>().is_err());
        assert!(
            "+0000000000000000000000000000abc"
                .parse::<RequestId>()
                .is_err()
        );
        assert_ne!(RequestId::random(), RequestId::random());
    }
}
