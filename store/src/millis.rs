//! Ground layer: a [`Duration`] in whole milliseconds, as the errors (`waited_ms`), the
//! clock's timestamps and the socket's deadlines carry it, saturating instead of wrapping.

use std::time::Duration;

/// `d` in milliseconds as a `u64` (`u64::MAX` past it).
pub(crate) fn u64_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `d` in milliseconds as an `i64` (`i64::MAX` past it).
pub(crate) fn i64_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
