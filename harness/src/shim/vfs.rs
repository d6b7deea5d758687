//! The FFI glue: a `sqlite3_vfs` and `sqlite3_io_methods` that forward to the wrapped VFS.
//!
//! Our file object is the wrapped VFS's file object with a small header in front: SQLite
//! allocates `szOsFile` bytes (ours = header + theirs), we hand the tail to the wrapped
//! `xOpen`, and every method finds the real file behind the header.

use std::ffi::{c_char, c_int, c_void};
use std::mem::size_of;
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi::{self, sqlite3_file, sqlite3_int64, sqlite3_io_methods, sqlite3_vfs};

use super::power::{self, RealFile};
use super::{FileKind, IoOp, Verdict, after, hook};
use crate::token;

/// The name the shim registers under.
pub(crate) const NAME: &std::ffi::CStr = c"kanban-shim";

/// Our file object: SQLite's base struct, our bookkeeping, then the real file.
#[repr(C)]
struct ShimFile {
    base: sqlite3_file,
    kind: FileKind,
    real: *mut sqlite3_file,
    /// The name the page-cache model records it under (null: not recorded); freed at close.
    recorded: *mut String,
    /// SQLite's unix VFS syncs the folder at this file's first sync (a WAL or journal opened
    /// to create): recorded with that sync.
    dir_sync_due: bool,
}

/// Bytes before the real file object, rounded up to 8.
const HEADER: usize = size_of::<ShimFile>().div_ceil(8) * 8;

/// The wrapped VFS (SQLite's default when the shim was registered).
fn real_vfs(vfs: *mut sqlite3_vfs) -> *mut sqlite3_vfs {
    // SAFETY: our VFS stores the wrapped one in pAppData at registration.
    unsafe { (*vfs).pAppData.cast() }
}

/// Set once the shim is registered in this process.
static REGISTERED: OnceLock<()> = OnceLock::new();

/// Registers the shim as the default VFS (once per process).
pub(crate) fn register() -> Result<(), c_int> {
    if REGISTERED.get().is_some() {
        return Ok(());
    }
    // SAFETY: plain SQLite VFS registration; the struct is leaked so it outlives every use.
    unsafe {
        let rc = ffi::sqlite3_initialize();
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let real = ffi::sqlite3_vfs_find(ptr::null());
        if real.is_null() {
            return Err(ffi::SQLITE_ERROR);
        }
        let vfs = Box::into_raw(Box::new(sqlite3_vfs {
            iVersion: (*real).iVersion.min(3),
            szOsFile: (HEADER + (*real).szOsFile as usize) as c_int,
            mxPathname: (*real).mxPathname,
            pNext: ptr::null_mut(),
            zName: NAME.as_ptr(),
            pAppData: real.cast(),
            xOpen: Some(x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            xDlOpen: Some(x_dl_open),
            xDlError: Some(x_dl_error),
            xDlSym: Some(x_dl_sym),
            xDlClose: Some(x_dl_close),
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: Some(x_current_time_int64),
            xSetSystemCall: Some(x_set_system_call),
            xGetSystemCall: Some(x_get_system_call),
            xNextSystemCall: Some(x_next_system_call),
        }));
        let rc = ffi::sqlite3_vfs_register(vfs, 1);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let _ = REGISTERED.set(());
    }
    Ok(())
}

fn kind_of(flags: c_int) -> FileKind {
    if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
        FileKind::Db
    } else if flags & ffi::SQLITE_OPEN_WAL != 0 {
        FileKind::Wal
    } else if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0 {
        FileKind::Journal
    } else {
        FileKind::Temp
    }
}

static IO_METHODS: sqlite3_io_methods = sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

unsafe extern "C" fn x_open(
    vfs: *mut sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite gives us szOsFile bytes at `file`; the tail is the real file object.
    unsafe {
        let shim = file.cast::<ShimFile>();
        let real_file = file.cast::<u8>().add(HEADER).cast::<sqlite3_file>();
        let kind = kind_of(flags);
        (*shim).base.pMethods = ptr::null();
        (*shim).kind = kind;
        (*shim).real = real_file;
        (*shim).recorded = ptr::null_mut();
        (*shim).dir_sync_due = false;
        (*real_file).pMethods = ptr::null();
        let real = real_vfs(vfs);
        let Some(open) = (*real).xOpen else {
            return ffi::SQLITE_ERROR;
        };
        let recorded = power::recorded_name(name, kind);
        let creating = flags & ffi::SQLITE_OPEN_CREATE != 0;
        // Recorded before the open: another process may open the new file and sync the
        // folder before this one could append a record after it, and a create recorded
        // after that sync would look unsynced (a cut took the WAL, and every commit in it,
        // away: 1 of 1000 seeds of power-cut-during-checkpoint). A create recorded for an
        // open that then fails leaves nothing for a cut to remove.
        if let Some(recorded) = &recorded
            && creating
            && !power::exists(name)
        {
            let rc = power::before_create(recorded);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let rc = open(real, name, real_file, flags, out_flags);
        if (*real_file).pMethods.is_null() {
            return rc;
        }
        if let Some(recorded) = recorded.filter(|_| rc == ffi::SQLITE_OK) {
            (*shim).dir_sync_due = creating && matches!(kind, FileKind::Wal | FileKind::Journal);
            (*shim).recorded = Box::into_raw(Box::new(recorded));
        }
        (*shim).base.pMethods = &IO_METHODS;
        rc
    }
}

/// The real file and our kind of it.
///
/// # Safety
/// `file` must be a file opened by [`x_open`].
unsafe fn parts(file: *mut sqlite3_file) -> (*mut sqlite3_file, FileKind) {
    // SAFETY: by the caller's contract.
    unsafe {
        let shim = file.cast::<ShimFile>();
        ((*shim).real, (*shim).kind)
    }
}

/// Runs one forwarded method under the hook.
///
/// # Safety
/// `file` must be a file opened by [`x_open`]; `forward` must call a method of the real file.
unsafe fn guarded(
    file: *mut sqlite3_file,
    kind_override: Option<FileKind>,
    op: IoOp,
    fcntl: Option<c_int>,
    forward: impl FnOnce(*mut sqlite3_file, &sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: by the caller's contract.
    unsafe {
        let (real, kind) = parts(file);
        let verdict = hook(kind_override.unwrap_or(kind), op, fcntl);
        match verdict {
            Verdict::Fail(code) => code,
            Verdict::Go | Verdict::GoThen(_) => {
                let methods = &*(*real).pMethods;
                let rc = forward(real, methods);
                if let Verdict::GoThen(action) = verdict {
                    after(action, rc == ffi::SQLITE_OK);
                }
                rc
            }
        }
    }
}

macro_rules! method {
    ($name:ident, $op:expr, ($($arg:ident: $ty:ty),*), $field:ident) => {
        unsafe extern "C" fn $name(file: *mut sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite calls this with a file opened by x_open.
            unsafe {
                guarded(file, None, $op, None, |real, m| match m.$field {
                    Some(f) => f(real $(, $arg)*),
                    None => ffi::SQLITE_IOERR,
                })
            }
        }
    };
}

method!(x_read, IoOp::Read, (buf: *mut c_void, amt: c_int, off: sqlite3_int64), xRead);
method!(x_file_size, IoOp::FileSize, (size: *mut sqlite3_int64), xFileSize);
method!(x_lock, IoOp::Lock, (level: c_int), xLock);
method!(x_unlock, IoOp::Unlock, (level: c_int), xUnlock);
method!(x_check_reserved_lock, IoOp::CheckReserved, (out: *mut c_int), xCheckReservedLock);
method!(x_fetch, IoOp::Fetch, (off: sqlite3_int64, amt: c_int, pp: *mut *mut c_void), xFetch);
method!(x_unfetch, IoOp::Unfetch, (off: sqlite3_int64, p: *mut c_void), xUnfetch);

/// The name the page-cache model records `file` under, if it does.
///
/// # Safety
/// `file` must be a file opened by [`x_open`] and not yet closed.
unsafe fn recorded<'a>(file: *mut sqlite3_file) -> Option<&'a str> {
    // SAFETY: by the caller's contract; the name lives until x_close.
    unsafe {
        (*file.cast::<ShimFile>())
            .recorded
            .as_ref()
            .map(String::as_str)
    }
}

unsafe extern "C" fn x_write(
    file: *mut sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(file, None, IoOp::Write, None, |real, m| {
            if let Some(name) = recorded(file) {
                let rc = power::before_write(
                    name,
                    &RealFile {
                        file: real,
                        methods: m,
                    },
                    off,
                    amt,
                );
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            match m.xWrite {
                Some(f) => f(real, buf, amt, off),
                None => ffi::SQLITE_IOERR,
            }
        })
    }
}

unsafe extern "C" fn x_truncate(file: *mut sqlite3_file, size: sqlite3_int64) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(file, None, IoOp::Truncate, None, |real, m| {
            if let Some(name) = recorded(file) {
                let rc = power::before_truncate(
                    name,
                    &RealFile {
                        file: real,
                        methods: m,
                    },
                    size,
                );
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            match m.xTruncate {
                Some(f) => f(real, size),
                None => ffi::SQLITE_IOERR,
            }
        })
    }
}

unsafe extern "C" fn x_sync(file: *mut sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(file, None, IoOp::Sync, None, |real, m| {
            let rc = match m.xSync {
                Some(f) => f(real, flags),
                None => ffi::SQLITE_IOERR,
            };
            match recorded(file) {
                Some(name) if rc == ffi::SQLITE_OK => {
                    let shim = file.cast::<ShimFile>();
                    let dir_too = std::mem::take(&mut (*shim).dir_sync_due);
                    power::after_sync(name, flags, dir_too)
                }
                _ => rc,
            }
        })
    }
}

unsafe extern "C" fn x_close(file: *mut sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        let rc = guarded(file, None, IoOp::Close, None, |real, m| match m.xClose {
            Some(f) => f(real),
            None => ffi::SQLITE_OK,
        });
        let shim = file.cast::<ShimFile>();
        if !(*shim).recorded.is_null() {
            drop(Box::from_raw((*shim).recorded));
            (*shim).recorded = ptr::null_mut();
        }
        (*file).pMethods = ptr::null();
        rc
    }
}

unsafe extern "C" fn x_file_control(file: *mut sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(file, None, IoOp::FileControl, Some(op), |real, m| {
            match m.xFileControl {
                Some(f) => f(real, op, arg),
                None => ffi::SQLITE_NOTFOUND,
            }
        })
    }
}

unsafe extern "C" fn x_sector_size(file: *mut sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(file, None, IoOp::SectorSize, None, |real, m| {
            match m.xSectorSize {
                Some(f) => f(real),
                None => 4096,
            }
        })
    }
}

unsafe extern "C" fn x_device_characteristics(file: *mut sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(
            file,
            None,
            IoOp::DeviceCharacteristics,
            None,
            |real, m| match m.xDeviceCharacteristics {
                Some(f) => f(real),
                None => 0,
            },
        )
    }
}

unsafe extern "C" fn x_shm_map(
    file: *mut sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(
            file,
            Some(FileKind::Shm),
            IoOp::ShmMap,
            None,
            |real, m| match m.xShmMap {
                Some(f) => f(real, page, size, extend, out),
                None => ffi::SQLITE_IOERR,
            },
        )
    }
}

unsafe extern "C" fn x_shm_lock(
    file: *mut sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        // Taking the WAL write lock (slot 0, exclusive) is its own operation, so that a fault
        // can act at "the Nth time this process became the WAL writer".
        let taking_write_lock = offset == 0
            && flags & ffi::SQLITE_SHM_LOCK != 0
            && flags & ffi::SQLITE_SHM_EXCLUSIVE != 0;
        let op = if taking_write_lock {
            IoOp::WalWriteLock
        } else {
            IoOp::ShmLock
        };
        guarded(file, Some(FileKind::Shm), op, None, |real, m| {
            match m.xShmLock {
                Some(f) => f(real, offset, n, flags),
                None => ffi::SQLITE_IOERR,
            }
        })
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut sqlite3_file) {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(
            file,
            Some(FileKind::Shm),
            IoOp::ShmBarrier,
            None,
            |real, m| {
                if let Some(f) = m.xShmBarrier {
                    f(real);
                }
                ffi::SQLITE_OK
            },
        );
    }
}

unsafe extern "C" fn x_shm_unmap(file: *mut sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: SQLite calls this with a file opened by x_open.
    unsafe {
        guarded(
            file,
            Some(FileKind::Shm),
            IoOp::ShmUnmap,
            None,
            |real, m| match m.xShmUnmap {
                Some(f) => f(real, delete),
                None => ffi::SQLITE_OK,
            },
        )
    }
}

// The VFS methods without a file: forwarded to the wrapped VFS as they are.

macro_rules! forward_vfs {
    ($name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $field:ident, $default:expr) => {
        unsafe extern "C" fn $name(vfs: *mut sqlite3_vfs $(, $arg: $ty)*) -> $ret {
            // SAFETY: the wrapped VFS's own method, called as SQLite would call it.
            unsafe {
                let real = real_vfs(vfs);
                match (*real).$field {
                    Some(f) => f(real $(, $arg)*),
                    None => $default,
                }
            }
        }
    };
}

forward_vfs!(x_access, (name: *const c_char, flags: c_int, out: *mut c_int) -> c_int, xAccess, ffi::SQLITE_IOERR_ACCESS);
forward_vfs!(x_full_pathname, (name: *const c_char, n: c_int, out: *mut c_char) -> c_int, xFullPathname, ffi::SQLITE_CANTOPEN);
forward_vfs!(x_dl_open, (name: *const c_char) -> *mut c_void, xDlOpen, ptr::null_mut());
forward_vfs!(x_get_last_error, (n: c_int, out: *mut c_char) -> c_int, xGetLastError, 0);
forward_vfs!(x_set_system_call, (name: *const c_char, f: ffi::sqlite3_syscall_ptr) -> c_int, xSetSystemCall, ffi::SQLITE_NOTFOUND);
forward_vfs!(x_get_system_call, (name: *const c_char) -> ffi::sqlite3_syscall_ptr, xGetSystemCall, None);
forward_vfs!(x_next_system_call, (name: *const c_char) -> *const c_char, xNextSystemCall, ptr::null());

/// Deletes a file, recorded in the page-cache model when it is one of the board's (with the
/// folder sync SQLite asks for).
unsafe extern "C" fn x_delete(
    vfs: *mut sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    // SAFETY: the wrapped VFS's own method, called as SQLite would call it; `name` is SQLite's.
    unsafe {
        let real = real_vfs(vfs);
        let Some(delete) = (*real).xDelete else {
            return ffi::SQLITE_IOERR_DELETE;
        };
        // SQLite deletes only the db's own files (journals, WALs): recorded as the db's kind.
        let recorded =
            power::recorded_name(name, FileKind::Journal).filter(|_| power::exists(name));
        if let Some(recorded) = &recorded {
            let rc = power::before_delete(recorded);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let rc = delete(real, name, sync_dir);
        match recorded {
            Some(recorded) if rc == ffi::SQLITE_OK && sync_dir != 0 => {
                power::after_delete_synced(&recorded)
            }
            _ => rc,
        }
    }
}

// Randomness, sleep and time: from the seed and the logical clock under the token,
// forwarded otherwise.

unsafe extern "C" fn x_randomness(vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    // SAFETY: SQLite hands us `n` writable bytes at `out`; else the wrapped VFS's method.
    unsafe {
        if token::connected() {
            token::fill_random(std::slice::from_raw_parts_mut(out.cast::<u8>(), n as usize));
            return n;
        }
        let real = real_vfs(vfs);
        match (*real).xRandomness {
            Some(f) => f(real, n, out),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut sqlite3_vfs, us: c_int) -> c_int {
    if token::connected() {
        token::sleep_us(us.max(0) as u64);
        return us;
    }
    // SAFETY: the wrapped VFS's own method.
    unsafe {
        let real = real_vfs(vfs);
        match (*real).xSleep {
            Some(f) => f(real, us),
            None => 0,
        }
    }
}

/// Logical now as a Julian day number in milliseconds (SQLite's `xCurrentTimeInt64`).
fn logical_julian_ms() -> sqlite3_int64 {
    /// The Unix epoch as a Julian day number, in milliseconds.
    const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;
    UNIX_EPOCH_JULIAN_MS + token::EPOCH_MS + (token::now_us() / 1000) as i64
}

unsafe extern "C" fn x_current_time(vfs: *mut sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: `out` is SQLite's; else the wrapped VFS's own method.
    unsafe {
        if token::connected() {
            *out = logical_julian_ms() as f64 / 86_400_000.0;
            return ffi::SQLITE_OK;
        }
        let real = real_vfs(vfs);
        match (*real).xCurrentTime {
            Some(f) => f(real, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_current_time_int64(vfs: *mut sqlite3_vfs, out: *mut sqlite3_int64) -> c_int {
    // SAFETY: `out` is SQLite's; else the wrapped VFS's own method.
    unsafe {
        if token::connected() {
            *out = logical_julian_ms();
            return ffi::SQLITE_OK;
        }
        let real = real_vfs(vfs);
        match (*real).xCurrentTimeInt64 {
            Some(f) => f(real, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_dl_error(vfs: *mut sqlite3_vfs, n: c_int, out: *mut c_char) {
    // SAFETY: the wrapped VFS's own method.
    unsafe {
        let real = real_vfs(vfs);
        if let Some(f) = (*real).xDlError {
            f(real, n, out);
        }
    }
}

type DlSym = Option<unsafe extern "C" fn(*mut sqlite3_vfs, *mut c_void, *const c_char)>;

unsafe extern "C" fn x_dl_sym(
    vfs: *mut sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> DlSym {
    // SAFETY: the wrapped VFS's own method.
    unsafe {
        let real = real_vfs(vfs);
        match (*real).xDlSym {
            Some(f) => f(real, handle, symbol),
            None => None,
        }
    }
}

unsafe extern "C" fn x_dl_close(vfs: *mut sqlite3_vfs, handle: *mut c_void) {
    // SAFETY: the wrapped VFS's own method.
    unsafe {
        let real = real_vfs(vfs);
        if let Some(f) = (*real).xDlClose {
            f(real, handle);
        }
    }
}
