//! Opening a board: the only place where connections are made (R2–R5, R7, R8).
//!
//! The sequence, for every role:
//! 1. refuse a vulnerable SQLite (R1), an unusable folder (missing, read-only) and what
//!    `stat` shows is no board (missing, empty, a folder, a file with several hard links),
//!    and a network file system (`statfs`, [`crate::filesystem`]), before anything is
//!    created beside the path ([`refuse_early`]);
//! 2. the caller holds the shared session lock on `<db>.lock` (R3), on the descriptor it
//!    keeps for the board's life ([`crate::generation`]), and passes it in;
//! 3. look at the file through `stat` and SQLite only (R2): empty, foreign, too new, not a
//!    database, truncated and corrupt files get typed errors (R8) and are left untouched;
//! 4. if the board is missing, older than this build, or in rollback-journal mode, trade the
//!    shared lock for the exclusive one, look again (another process may have done it), then
//!    create / migrate / switch to WAL once, and downgrade back to shared (R4). A session
//!    never changes the journal mode on its own;
//! 5. connect with the role's pragmas: busy timeout, `synchronous=FULL`, foreign keys, and
//!    no automatic checkpoints except by the owner's explicit call (R6).
//!
//! With the `init-only-flock` hazard (part of `naive`), steps 2 and 4 take upstream's
//! `flock` instead, on a process's first open only and dropped once the board is
//! initialised: the session holds no lock of ours (the one hook, [`upstream_init`]).
//!
//! Nothing here reads more than the header and the schema: opening is O(1) in the size of
//! the board (R7). Checks are explicit ([`crate::Board::check`]).
//!
//! Layer: sessions (the layer order is in `store/ARCHITECTURE.md`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::config::{Phase, Role, StoreConfig};
use crate::error::{Error, Result};
use crate::header;
use crate::lock::{LockFile, Mode};
use crate::schema;
use crate::version;

/// What the caller wants from the open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// A session on an existing board (created if missing when the config says so).
    Session,
    /// A brand-new board; refuse if anything is at the path.
    CreateNew,
    /// Look only: read-only connection, no maintenance, never a write to the file.
    Inspect,
}

/// An open session: its connections. The lock that keeps maintenance away is the caller's
/// (held during each operation, see [`crate::generation`]).
pub(crate) struct Session {
    /// The read-write connection (`None` only with the `connect-per-operation` hazard, or
    /// when inspecting).
    pub conn: Option<Connection>,
    /// A read-only connection for reads (dashboards and inspection; `None` with the
    /// `connect-per-operation` hazard, whose reads connect afresh too).
    pub reader: Option<Connection>,
    /// Connect afresh for every operation (the `connect-per-operation` hazard).
    pub per_operation: bool,
    /// Frames in the WAL as of this session's last commit (set by SQLite's WAL hook on the
    /// checkpoint owner's connection; always 0 for other roles).
    pub wal_frames: Arc<AtomicI64>,
}

/// Refuses what can be refused before anything is created beside the board: a vulnerable
/// SQLite (R1), an unusable folder, and what `stat` shows of the path (missing without
/// create, already there for a new board, no file, empty, hard-linked). `Board` calls it
/// before it makes its lock file; [`open`] again, for the sessions that reopen.
pub(crate) fn refuse_early(path: &Path, cfg: &StoreConfig, intent: Intent) -> Result<()> {
    version::check_linked()?;
    check_folder(path)?;
    let fs = crate::filesystem::of(&crate::place::folder_of(path))?;
    crate::filesystem::refuse_untrusted(path, fs, cfg.allow_network_fs)?;
    let present = exists(path);
    if intent == Intent::CreateNew && present {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    match present {
        true => refuse_by_stat(path, cfg),
        false if !may_create(cfg, intent) => Err(Error::NotFound {
            path: path.to_path_buf(),
        }),
        false => Ok(()),
    }
}

/// Whether this open creates a missing board.
fn may_create(cfg: &StoreConfig, intent: Intent) -> bool {
    intent == Intent::CreateNew || (intent == Intent::Session && cfg.create_if_missing)
}

/// Opens a session on the board at `path`; the caller holds the shared session range of
/// `lock` (unless upstream's `flock` replaces our locks, a hazard), which a create or migration trades
/// for the exclusive one and back.
pub(crate) fn open(
    path: &Path,
    cfg: &StoreConfig,
    intent: Intent,
    lock: &LockFile,
) -> Result<Session> {
    refuse_early(path, cfg, intent)?;
    let upstream = upstream_init(path, cfg)?;
    cfg.hooks().before_connect(path, cfg);
    let ready = make_ready(path, cfg, intent, upstream.is_none().then_some(lock))?;
    drop(upstream);
    let (mut conn, reader) = connections(path, cfg, intent, ready)?;
    let wal_frames = Arc::new(AtomicI64::new(0));
    if let Some(c) = conn.as_mut().filter(|_| cfg.role.owns_checkpoints()) {
        let seen = wal_frames.clone();
        c.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames| {
            seen.store(i64::from(frames), Ordering::Relaxed);
            Ok(())
        }))
        .map_err(|e| diagnose(path, e))?;
    }
    cfg.hooks().after_connect(
        path,
        cfg,
        conn.as_ref().or(reader.as_ref()).expect("a connection"),
    )?;
    let per_operation = intent != Intent::Inspect && cfg.hooks().connects_per_operation();
    Ok(Session {
        // Upstream connected afresh for every request and poll, reads included.
        conn: conn.filter(|_| !per_operation),
        per_operation,
        reader: reader.filter(|_| !per_operation),
        wal_frames,
    })
}

/// Steps 3 and 4: looks at the file and, if it is missing, old or in rollback mode, makes
/// it a current board in WAL mode, trading the shared session lock (`ours`: `None` when
/// upstream's init lock replaces it) for the exclusive one and back. The connection the
/// look made, when the board was ready as it was.
fn make_ready(
    path: &Path,
    cfg: &StoreConfig,
    intent: Intent,
    ours: Option<&LockFile>,
) -> Result<Option<Connection>> {
    match inspect(path, cfg, intent)? {
        Found::Ready(conn) => Ok(Some(conn)),
        Found::Missing if !may_create(cfg, intent) => Err(Error::NotFound {
            path: path.to_path_buf(),
        }),
        Found::Stale if intent == Intent::Inspect => Ok(None),
        Found::Missing | Found::Stale => {
            if let Some(lock) = ours {
                lock.unlock_session()?;
                lock.lock_session(Mode::Exclusive, cfg.lock_timeout, cfg.clock.as_ref())?;
            }
            maintain(path, cfg, intent)?;
            if let Some(lock) = ours {
                lock.lock_session(Mode::Shared, cfg.lock_timeout, cfg.clock.as_ref())?;
            }
            Ok(None)
        }
    }
}

/// Step 5: the session's read-write connection (`ready`'s, if the look made one) and, for
/// dashboards and inspection, its read-only one.
fn connections(
    path: &Path,
    cfg: &StoreConfig,
    intent: Intent,
    ready: Option<Connection>,
) -> Result<(Option<Connection>, Option<Connection>)> {
    if intent == Intent::Inspect {
        return Ok((None, Some(connect(path, cfg, Access::ReadOnly)?)));
    }
    let conn = match ready {
        Some(conn) => conn,
        None => connect(path, cfg, Access::ReadWrite)?,
    };
    let reader = match cfg.role {
        Role::Dashboard => Some(connect(path, cfg, Access::ReadOnly)?),
        _ => None,
    };
    Ok((Some(conn), reader))
}

/// Upstream's init flock, when sessions skip the store's own locks (the `init-only-flock`
/// hazard): `Some`, holding the `flock` on the process's first open of the board (nothing on
/// later ones), to drop once the board is initialised. `None`: the store's locks (R3).
fn upstream_init(path: &Path, cfg: &StoreConfig) -> Result<Option<Option<std::fs::File>>> {
    cfg.hooks().upstream_init(path, cfg)
}

/// How a connection may use the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read and write an existing file.
    ReadWrite,
    /// Read only; never checkpoints, never writes the database file.
    ReadOnly,
    /// Create the file (maintenance only).
    Create,
}

/// Makes one connection with the role's pragmas. The journal mode is never touched here.
pub(crate) fn connect(path: &Path, cfg: &StoreConfig, access: Access) -> Result<Connection> {
    let hooks = cfg.hooks();
    hooks.on_connect(path, cfg);
    let alias = hooks.connect_target(path, cfg);
    let target = alias.as_deref().unwrap_or(path);

    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
        | match access {
            Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Access::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        };
    let conn = Connection::open_with_flags(target, flags).map_err(|e| diagnose(path, e))?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(cfg.busy_timeout)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", hooks.synchronous())?;
        // R6: only the owner checkpoints, and only by an explicit call whose result it sees.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let owner = cfg.role.owns_checkpoints() && access != Access::ReadOnly;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, !owner)?;
        Ok(())
    };
    setup().map_err(|e| diagnose(path, e))?;
    hooks.configure(&conn, cfg).map_err(|e| diagnose(path, e))?;
    Ok(conn)
}

/// What [`inspect`] found at the path.
enum Found {
    /// No file.
    Missing,
    /// A current board in WAL mode, with a connection to use.
    Ready(Connection),
    /// Our board, but an older schema or a rollback journal: needs maintenance.
    Stale,
}

/// Looks at the file through `stat` and SQLite, refusing anything that is not our board.
fn inspect(path: &Path, cfg: &StoreConfig, intent: Intent) -> Result<Found> {
    if !exists(path) {
        return Ok(Found::Missing);
    }
    refuse_by_stat(path, cfg)?;
    // A refused file keeps its folder as it was, but SQLite creates `-wal`/`-shm` when it
    // reads a WAL-mode file. When neither is there, no connection of any process has the
    // board open, so this one is the last when it closes: let it checkpoint on close (of an
    // empty WAL: nothing is written to the db), and SQLite removes the two files itself. A
    // read-only connection cannot (it may not lock the db for that checkpoint), so an
    // inspection reads the identity through a read-write one then, unless a `-journal` is
    // there (a hot journal would be rolled back: a write). Once the identity is read, the
    // connection gets its role's setting back (R6).
    let tidy = !exists(&crate::place::wal_path(path)) && !exists(&crate::place::shm_path(path));
    let access = match intent {
        Intent::Inspect if !tidy || exists(&crate::place::sibling(path, "-journal")) => {
            Access::ReadOnly
        }
        _ => Access::ReadWrite,
    };
    let conn = connect(path, cfg, access)?;
    let no_ckpt = DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE;
    let role_setting = conn.db_config(no_ckpt).map_err(|e| diagnose(path, e))?;
    if tidy {
        conn.set_db_config(no_ckpt, false)
            .map_err(|e| diagnose(path, e))?;
    }
    let identity = Identity::read(&conn, path, wanted_mode(cfg))?;
    conn.set_db_config(no_ckpt, role_setting)
        .map_err(|e| diagnose(path, e))?;
    if identity.version == schema::VERSION && identity.in_mode {
        Ok(Found::Ready(conn))
    } else {
        Ok(Found::Stale)
    }
}

/// What makes a file our board, at what version, in what journal mode.
struct Identity {
    version: i32,
    /// In the journal mode the store wants ([`wanted_mode`]).
    in_mode: bool,
}

impl Identity {
    /// Reads the schema (forcing SQLite to parse it) and the header fields we rely on.
    fn read(conn: &Connection, path: &Path, wanted: &str) -> Result<Identity> {
        let read = || -> rusqlite::Result<(i32, i32, String)> {
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            let app = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
            let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let mode = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            Ok((app, version, mode))
        };
        let (application_id, version, mode) = read().map_err(|e| diagnose(path, e))?;
        if application_id != schema::APPLICATION_ID {
            return Err(Error::ForeignSchema {
                path: path.to_path_buf(),
                application_id,
            });
        }
        if version > schema::VERSION {
            return Err(Error::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: schema::VERSION,
            });
        }
        Ok(Identity {
            version,
            in_mode: mode.eq_ignore_ascii_case(wanted),
        })
    }
}

/// The journal mode a board must be in: WAL (R4), or `off` with the `journal-off` hazard.
fn wanted_mode(cfg: &StoreConfig) -> &'static str {
    cfg.hooks().journal_mode()
}

/// Create, migrate, or switch to WAL: under the exclusive lock, looking again first.
fn maintain(path: &Path, cfg: &StoreConfig, intent: Intent) -> Result<()> {
    let missing = !exists(path);
    if intent == Intent::CreateNew && !missing {
        return Err(Error::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let (mut conn, identity) = if missing {
        let conn = connect(path, cfg, Access::Create)?;
        (
            conn,
            Identity {
                version: 0,
                in_mode: false,
            },
        )
    } else {
        let conn = connect(path, cfg, Access::ReadWrite)?;
        let identity = Identity::read(&conn, path, wanted_mode(cfg))?;
        (conn, identity)
    };
    cfg.in_phase(Phase::Migration, || {
        schema::migrate(&mut conn, identity.version)
    })
    .map_err(|e| diagnose(path, e))?;
    if !identity.in_mode {
        let wanted = wanted_mode(cfg);
        let mode: String = cfg
            .in_phase(Phase::JournalMode, || {
                conn.pragma_update_and_check(None, "journal_mode", wanted, |r| r.get(0))
            })
            .map_err(|e| diagnose(path, e))?;
        if !mode.eq_ignore_ascii_case(wanted) {
            // Not damage: the file system (or the build) does not let SQLite do it.
            return Err(Error::FileSystemFailure {
                path: path.to_path_buf(),
                detail: format!("could not switch to {wanted} (journal mode stayed {mode})"),
            });
        }
    }
    Ok(())
}

/// Refuses what `stat` shows is not a board: a folder or other non-file, an empty file, a
/// file with more than one name.
fn refuse_by_stat(path: &Path, cfg: &StoreConfig) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    if meta.len() == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    refuse_hard_links(path, meta.nlink(), cfg)
}

/// Refuses a board file with `links` names: SQLite names `-wal`/`-shm` after the name it
/// opens, so each name would get a WAL of its own for one database file (a split brain; a
/// symlink, by contrast, SQLite follows). The `hard-link-alias` hazard is exactly that
/// mistake, so with it on the refusal is skipped.
fn refuse_hard_links(path: &Path, links: u64, cfg: &StoreConfig) -> Result<()> {
    if links > 1 && !cfg.hooks().allows_hard_links() {
        return Err(Error::HardLinked {
            path: path.to_path_buf(),
            links,
        });
    }
    Ok(())
}

/// Refuses a missing or read-only folder before anything is created in it.
fn check_folder(path: &Path) -> Result<()> {
    let folder = crate::place::folder_of(path);
    match std::fs::metadata(&folder) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(Error::MissingFolder {
                path: path.to_path_buf(),
            });
        }
    }
    if nix::unistd::access(&folder, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(Error::ReadOnlyLocation {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether anything is at `path` (by `stat`, never by opening it).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Turns an SQLite failure to read the file into the most precise typed error.
pub(crate) fn diagnose(path: &Path, err: rusqlite::Error) -> Error {
    let owned = || path.to_path_buf();
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            match header::read(path) {
                Some(h) if !h.has_magic() => {
                    let len = usize::try_from(size).unwrap_or(usize::MAX).min(16);
                    if size > 0 && header::MAGIC.starts_with(&h.bytes[..len]) {
                        Error::Truncated {
                            path: owned(),
                            size,
                            expected: 100,
                        }
                    } else {
                        Error::NotADatabase { path: owned() }
                    }
                }
                Some(h) => match h.expected_size() {
                    _ if size < 100 => Error::Truncated {
                        path: owned(),
                        size,
                        expected: h.expected_size().unwrap_or(100),
                    },
                    Some(expected) if size < expected => Error::Truncated {
                        path: owned(),
                        size,
                        expected,
                    },
                    _ => Error::Corrupt {
                        path: owned(),
                        detail: err.to_string(),
                    },
                },
                None => Error::sqlite(path, err),
            }
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied)
            if check_folder(path).is_err() =>
        {
            Error::ReadOnlyLocation { path: owned() }
        }
        _ => Error::sqlite(path, err),
    }
}
