//! What `kanban-db info` shows: read from SQLite pragmas and `stat`, never from the files.
//!
//! Layer: work (the layer order is in `store/ARCHITECTURE.md`).

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::{Result, SqlResultExt};
use crate::schema;

/// A board's vital statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardInfo {
    /// The board path.
    pub path: PathBuf,
    /// The SQLite library version in use.
    pub sqlite_version: String,
    /// `wal` for a healthy board; `delete` for one left in rollback mode.
    pub journal_mode: String,
    /// The board's `user_version`.
    pub schema_version: i32,
    /// The newest schema this build knows.
    pub supported_schema: i32,
    /// Page size in bytes.
    pub page_size: i64,
    /// Pages in the database (as of the latest commit, WAL included).
    pub page_count: i64,
    /// Unused pages.
    pub freelist_count: i64,
    /// Size of the `-wal` file in bytes (0 when absent).
    pub wal_bytes: u64,
}

impl fmt::Display for BoardInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "board:          {}", self.path.display())?;
        writeln!(f, "sqlite:         {}", self.sqlite_version)?;
        writeln!(f, "journal mode:   {}", self.journal_mode)?;
        writeln!(
            f,
            "schema version: {} (this build: {})",
            self.schema_version, self.supported_schema
        )?;
        writeln!(
            f,
            "pages:          {} x {} bytes ({} free)",
            self.page_count, self.page_size, self.freelist_count
        )?;
        write!(f, "wal size:       {} bytes", self.wal_bytes)
    }
}

/// Reads the info through `conn`.
pub(crate) fn read(conn: &Connection, path: &Path) -> Result<BoardInfo> {
    let int = |name: &str| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    Ok(BoardInfo {
        path: path.to_path_buf(),
        sqlite_version: rusqlite::version().to_string(),
        journal_mode: conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .at(path)?,
        schema_version: conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .at(path)?,
        supported_schema: schema::VERSION,
        page_size: int("page_size").at(path)?,
        page_count: int("page_count").at(path)?,
        freelist_count: int("freelist_count").at(path)?,
        wal_bytes: std::fs::metadata(crate::place::wal_path(path))
            .map(|m| m.len())
            .unwrap_or(0),
    })
}
