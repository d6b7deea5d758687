//! R1: refuse SQLite builds that have the WAL-reset bug.
//!
//! SQLite 3.7.0 up to 3.51.2 can corrupt a WAL database that two connections write when one
//! of them resets the WAL while the other is between reading the WAL index and taking its
//! read lock. It was fixed in 3.51.3, with backports in 3.50.7 and 3.44.6. The upstream
//! reporter ran 3.50.4. We bundle a fixed SQLite, but a build that links the system library
//! (or a future downgrade) must fail loudly instead of corrupting boards quietly.
//!
//! Layer: files (the layer order is in `store/ARCHITECTURE.md`).

use crate::error::{Error, Result};

/// SQLite's version number encoding: `major * 1_000_000 + minor * 1_000 + patch`.
pub fn encode(major: u32, minor: u32, patch: u32) -> u32 {
    major * 1_000_000 + minor * 1_000 + patch
}

/// Whether SQLite `version` (as [`encode`]d) has the WAL-reset bug.
pub fn has_wal_reset_bug(version: u32) -> bool {
    let (minor_line, patch) = (version / 1_000, version % 1_000);
    let affected = (encode(3, 7, 0)..encode(3, 51, 3)).contains(&version);
    let backported = (minor_line == 3_050 && patch >= 7) || (minor_line == 3_044 && patch >= 6);
    affected && !backported
}

/// Checks `version` and returns [`Error::VulnerableSqlite`] if it has the bug.
pub fn check(version: u32) -> Result<()> {
    if has_wal_reset_bug(version) {
        return Err(Error::VulnerableSqlite {
            version: format!(
                "{}.{}.{}",
                version / 1_000_000,
                version / 1_000 % 1_000,
                version % 1_000
            ),
        });
    }
    Ok(())
}

/// Checks the SQLite this process is linked with.
pub fn check_linked() -> Result<()> {
    check(linked()?)
}

/// The version number of the SQLite this process is linked with; an error if it cannot be
/// read (see [`parse`]).
pub fn linked() -> Result<u32> {
    parse(rusqlite::version_number(), rusqlite::version())
}

/// The version `number` (`sqlite3_libversion_number`), checked against its `text`
/// (`sqlite3_libversion`, `major.minor.patch`). Fails closed: a number that is negative,
/// older than 3.0.0, or disagrees with the text is [`Error::UnknownSqliteVersion`], never a
/// 0 that would pass [`check`].
pub fn parse(number: i32, text: &str) -> Result<u32> {
    let unknown = || Error::UnknownSqliteVersion {
        version: format!("{number} ({text:?})"),
    };
    let parsed = u32::try_from(number)
        .ok()
        .filter(|&n| n >= encode(3, 0, 0))
        .ok_or_else(unknown)?;
    let parts: Vec<u32> = text
        .split('.')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| unknown())?;
    match parts[..] {
        [major, minor, patch] if encode(major, minor, patch) == parsed => Ok(parsed),
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_with_the_bug_are_refused() {
        for (v, bad) in [
            ((3, 6, 23), false),
            ((3, 7, 0), true),
            ((3, 44, 5), true),
            ((3, 44, 6), false),
            ((3, 45, 0), true),
            ((3, 50, 4), true),
            ((3, 50, 6), true),
            ((3, 50, 7), false),
            ((3, 51, 2), true),
            ((3, 51, 3), false),
            ((3, 54, 1), false),
        ] {
            let n = encode(v.0, v.1, v.2);
            assert_eq!(has_wal_reset_bug(n), bad, "{v:?}");
            assert_eq!(check(n).is_err(), bad, "{v:?}");
        }
    }

    #[test]
    fn the_error_names_the_version() {
        let err = check(encode(3, 50, 4)).unwrap_err();
        assert!(err.to_string().starts_with("SQLite 3.50.4 "), "{err}");
    }

    #[test]
    fn an_unreadable_version_fails_closed() {
        for (number, text) in [
            (-1, "3.54.1"),
            (0, "0.0.0"),
            (2_008_017, "2.8.17"),
            (3_054_001, "3.54"),
            (3_054_001, "3.54.x"),
            (3_054_001, "3.50.4"),
        ] {
            let err = parse(number, text).unwrap_err();
            assert!(
                matches!(err, Error::UnknownSqliteVersion { .. }),
                "{number} {text}: {err:?}"
            );
        }
        assert_eq!(parse(3_054_001, "3.54.1").unwrap(), encode(3, 54, 1));
    }

    #[test]
    fn the_bundled_sqlite_is_accepted() {
        check_linked().expect("the bundled SQLite must be a fixed one");
    }
}
