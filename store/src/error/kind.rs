//! [`ErrorKind`]: what went wrong, without the details, as a stable name.
//!
//! A gateway in single-writer mode sends its errors to the dashboard that asked, and the
//! dashboard must give its caller the same kind as a local write would (a `Busy` it may
//! retry, a `NoSuchTask` it must not). The kind crosses the socket as [`ErrorKind::as_str`],
//! a name that never changes once released (new kinds may be added: the enum is
//! `#[non_exhaustive]`), and is read back with [`str::parse`].

use std::fmt;
use std::str::FromStr;

use super::Error;

/// Declares [`ErrorKind`] (one variant per [`Error`] variant but `Remote`, which reports
/// the gateway's kind), its names, and [`Error::kind`].
macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// The kind of an [`Error`]: which variant it is (for [`Error::Remote`], the kind
        /// the gateway reported).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $(
                #[doc = concat!("[`Error::", stringify!($variant), "`] (`", $name, "`).")]
                $variant,
            )*
        }

        impl ErrorKind {
            /// Every kind.
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The kind's stable name (kebab-case: `busy`, `no-such-task`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $name,)*
                }
            }
        }

        impl Error {
            /// The kind of this error; for [`Error::Remote`], the kind of the gateway's error.
            pub fn kind(&self) -> ErrorKind {
                match self {
                    Error::Remote { kind, .. } => *kind,
                    $(Error::$variant { .. } => ErrorKind::$variant,)*
                }
            }
        }
    };
}

kinds! {
    VulnerableSqlite => "vulnerable-sqlite",
    MissingFolder => "missing-folder",
    ReadOnlyLocation => "read-only-location",
    NotFound => "not-found",
    AlreadyExists => "already-exists",
    EmptyFile => "empty-file",
    NotADatabase => "not-a-database",
    Truncated => "truncated",
    Corrupt => "corrupt",
    ForeignSchema => "foreign-schema",
    SchemaTooNew => "schema-too-new",
    Busy => "busy",
    MaintenanceBusy => "maintenance-busy",
    Unavailable => "unavailable",
    GatewayRunning => "gateway-running",
    WrongRole => "wrong-role",
    UsedAcrossFork => "used-across-fork",
    DiskFull => "disk-full",
    IoFailure => "io-failure",
    NoSuchTask => "no-such-task",
    RunNotRunning => "run-not-running",
    InvalidMove => "invalid-move",
    UnsafeQuarantine => "unsafe-quarantine",
    NoQuarantineRoom => "no-quarantine-room",
    Io => "io",
    Sqlite => "sqlite",
    HardLinked => "hard-linked",
    UnsafeLockFile => "unsafe-lock-file",
    UnsupportedFileSystem => "unsupported-file-system",
    FileSystemFailure => "file-system-failure",
    UnknownSqliteVersion => "unknown-sqlite-version",
    RequestIdReused => "request-id-reused",
    FrameTooLarge => "frame-too-large",
    BadRequest => "bad-request",
    NotGatewayHolder => "not-gateway-holder",
    PeerRefused => "peer-refused",
    CopyIncomplete => "copy-incomplete",
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no [`ErrorKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownErrorKind(pub String);

impl fmt::Display for UnknownErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no error kind is named {:?}", self.0)
    }
}

impl std::error::Error for UnknownErrorKind {}

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<ErrorKind, UnknownErrorKind> {
        ErrorKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_kind() {
        for &kind in ErrorKind::ALL {
            assert_eq!(kind.as_str().parse::<ErrorKind>(), Ok(kind));
        }
        assert!("Busy".parse::<ErrorKind>().is_err());
    }
}
