//! After every seed: are the quarantine copies the store kept real copies?
//!
//! A repair that rebuilds a board keeps a copy of what it replaces first, in
//! `<db>.quarantine/`, under a name made of the copy's content hash. That copy is the only
//! record of rows the rebuild could not read, so it must be whole: a copy killed midway and
//! left under its final name (an empty file, or pages with a hot journal beside them) would
//! make every later keep of the same board answer "already kept" while nothing real is kept.
//! And a rebuild must not go ahead without one (at the cap, the old store rebuilt with no
//! copy at all). The findings are of kind `quarantine` ([`crate::scenario::KINDS`]):
//! - a content-addressed copy (`<24 hex digits>.db`, the names the store writes; a
//!   temporary name of a copy in progress is not a copy yet) that has a `-journal` beside
//!   it, does not open read-only, holds no board schema, is shorter or longer than its
//!   header's page count says, or fails `quick_check` by more than the index damage a copy
//!   of a damaged board keeps (`wrong # of entries in index`...);
//! - a board that started damaged beyond indexes ([`crate::scenario::Damage::beyond_indexes`])
//!   and ended healthy (so a rebuild replaced it) with no whole copy in the folder beyond
//!   the ones setup kept.
//!
//! It runs after every worker is dead, when nothing has a copy open; copies are standalone
//! files that no session opens, never the live board.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// The quarantine findings of the board at `db`: `setup` names the copies kept before the
/// workers started, `rebuilt` says whether a rebuild must have kept one since.
pub fn check(db: &Path, setup: &[String], rebuilt: bool) -> Vec<String> {
    let copies = content_addressed(db);
    let mut findings: Vec<String> = Vec::new();
    let mut new_whole = false;
    for copy in &copies {
        let name = copy
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match whole(copy) {
            Ok(()) => new_whole |= !setup.contains(&name),
            Err(why) => findings.push(format!("quarantine copy {name} is not whole: {why}")),
        }
    }
    if rebuilt && !new_whole {
        // No seed folder in the line: two runs of one seed must print the same findings.
        findings.push(format!(
            "the board was rebuilt but its quarantine folder holds no whole copy of it beyond \
             setup's {} ({} copies)",
            setup.len(),
            copies.len()
        ));
    }
    findings
}

/// The files of the quarantine folder named as the store names its copies, sorted.
fn content_addressed(db: &Path) -> Vec<PathBuf> {
    let mut copies: Vec<PathBuf> = std::fs::read_dir(kanban_store::quarantine::folder(db))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_copy_name)
        })
        .collect();
    copies.sort();
    copies
}

/// `<24 lowercase hex digits>.db`.
fn is_copy_name(name: &str) -> bool {
    name.strip_suffix(".db").is_some_and(|stem| {
        stem.len() == 24
            && stem
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Why the copy at `path` is not a whole board, if it is not.
fn whole(path: &Path) -> Result<(), String> {
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if Path::new(&journal).exists() {
        return Err("a hot journal beside it (a copy killed before its commit)".into());
    }
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("does not open read-only: {e}"))?;
    let one = |sql: &str| -> Result<i64, String> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| format!("{sql}: {e}"))
    };
    let tables = one(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tasks', 'task_events')",
    )?;
    if tables < 2 {
        return Err(format!("no board schema ({len} bytes)"));
    }
    let expected = one("PRAGMA page_count")? * one("PRAGMA page_size")?;
    if u64::try_from(expected).ok() != Some(len) {
        return Err(format!("{len} bytes where its pages make {expected}"));
    }
    // A copy keeps the damage of the board it copies: what `quick_check` says about an
    // index's entries is that damage (it counts them), anything else is a broken file.
    let broken: Vec<String> = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e: rusqlite::Error| format!("quick_check: {e}"))?
        .into_iter()
        .filter(|line: &String| line != "ok" && !index_entries(line))
        .collect();
    match broken.is_empty() {
        true => Ok(()),
        false => Err(format!("quick_check: {}", broken.join("; "))),
    }
}

/// Whether a `quick_check` line is about an index's entries (the damage the store calls
/// index-only), not about the file's pages.
fn index_entries(line: &str) -> bool {
    line.starts_with("wrong # of entries in index")
        || (line.starts_with("row ") && line.contains(" missing from index "))
        || line.starts_with("non-unique entry in index")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_store_writes_are_copies() {
        assert!(is_copy_name("0123456789abcdef01234567.db"));
        assert!(!is_copy_name("0123456789abcdef01234567.db-journal"));
        assert!(!is_copy_name("0123456789ABCDEF01234567.db"));
        assert!(!is_copy_name("0123456789abcdef0123456.db"));
        assert!(!is_copy_name(".tmp-0123456789abcdef01234567.db"));
        assert!(!is_copy_name("kanban.db"));
    }

    /// An empty file under a copy's name (a copy killed before its first write) is a
    /// finding, and so is a rebuild with no new whole copy; a whole copy is none.
    #[test]
    fn partial_and_missing_copies_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kanban.db");
        let folder = kanban_store::quarantine::folder(&db);
        std::fs::create_dir(&folder).unwrap();
        let empty = "000000000000000000000000.db";
        std::fs::write(folder.join(empty), b"").unwrap();
        let found = check(&db, &[], true);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("no board schema"), "{found:?}");
        assert!(found[1].contains("no whole copy"), "{found:?}");
        let whole = "111111111111111111111111.db";
        let conn = Connection::open(folder.join(whole)).unwrap();
        conn.execute_batch(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY); CREATE TABLE task_events (id INTEGER);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(check(&db, &[], true).len(), 1);
        assert_eq!(check(&db, &[whole.into()], true).len(), 2);
        assert_eq!(check(&db, &[whole.into()], false).len(), 1);
    }
}
