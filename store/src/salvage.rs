//! Salvage: what can be read of one table of a damaged board, copied into the rebuilt
//! board (see [`crate::repair`]), and what could not, counted.
//!
//! A scan stops at the first page it cannot read. So each table is scanned forward until
//! it breaks, then backward from the end until it breaks: for one damaged page, that reads
//! every other row. What lies between the two scans (the gap) is read row by row, and the
//! table's indexes say which rows existed there: they are read on their own (`INDEXED
//! BY`, covering: the key is in every index), and the rows they list that no read gave are
//! the lost ones. The gap is bounded twice, because it is read with the board locked:
//! - by the rowids the indexes list: a lost table tail (its last leaf damaged, so neither
//!   scan gets past it) ends at the last rowid an index lists, not at the last row read;
//! - by the size of the file: a garbage rowid read off a damaged page (or a real, huge
//!   one) may open a gap of ~2^62 rowids, while no table of a file of `P` pages of `S`
//!   bytes holds more than `P * (S - 8) / 6` rows ([`max_rows`]). Past that many lookups
//!   the gap is read only where the indexes list rows, and rows no index lists are
//!   uncounted (unless an index was read whole, then it lists them all).
//!
//! A table without rowids is read through its indexes instead (they hold every column
//! here), forward and backward.
//!
//! Layer: maintenance (the layer order is in `store/ARCHITECTURE.md`).

use std::collections::BTreeSet;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, Statement};

use crate::repair::Salvaged;

/// No table of a file of `pages` pages of `page_size` bytes holds more rows than this: a
/// row takes at least one cell on a leaf page, and a cell at least 4 bytes (SQLite's
/// smallest) plus its 2-byte pointer, past the leaf's 8-byte header; at most every page
/// of the file is such a leaf.
pub(crate) fn max_rows(pages: u64, page_size: u64) -> u64 {
    pages.saturating_mul(page_size.saturating_sub(8) / 6)
}

/// Copies one table of `old` into `fresh` (see the module docs). `max_rows` bounds the
/// rowids looked up one by one ([`max_rows`]).
pub(crate) fn salvage(
    old: &Connection,
    fresh: &Connection,
    table: &str,
    without_rowid: bool,
    max_rows: u64,
) -> rusqlite::Result<Salvaged> {
    let mut copy = TableCopy::new(old, fresh, table, without_rowid)?;
    let key = key_of(fresh, table, without_rowid)?;
    let desc_key = key
        .split(", ")
        .map(|k| format!("{k} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let (forward, broke) = copy.scan(&format!("{} ORDER BY {key}", copy.from));
    let indexes = indexes_of(fresh, table, without_rowid)?;
    if without_rowid {
        if broke {
            copy.scan(&format!("{} ORDER BY {desc_key}", copy.from));
            through_indexes(&mut copy, &indexes, &desc_key);
        } else {
            // Rows an index lists that the whole table lacks; an unreadable index, none.
            copy.out.lost += vanished(old, table, &key, &indexes).unwrap_or(0);
        }
        return Ok(copy.out);
    }
    let backward = if broke {
        copy.scan(&format!("{} ORDER BY {desc_key}", copy.from)).0
    } else {
        None
    };
    let (listed, complete) = listed_rowids(old, table, &indexes);
    let budget = max_rows.saturating_sub(copy.read.len() as u64);
    if broke {
        probe_gap(&mut copy, (forward, backward), &listed, complete, budget);
    } else {
        // The table read whole: rows an index lists that it lacks are lost.
        for &rowid in &listed {
            copy.probe(rowid, true, complete);
        }
    }
    Ok(copy.out)
}

/// Looks up, one by one, the rowids between the last row each scan read (`ends`: forward,
/// backward) and those the indexes list (`listed`, the whole list if `complete`), at most
/// `budget` of the unlisted ones.
fn probe_gap(
    copy: &mut TableCopy<'_>,
    (forward, backward): (Option<i64>, Option<i64>),
    listed: &BTreeSet<i64>,
    complete: bool,
    budget: u64,
) {
    // The gap, past the last row each scan read (or the rowids the indexes list
    // beyond it, for an end lost with its last page).
    let low = forward
        .or(listed.first().map(|id| id.saturating_sub(1)))
        .unwrap_or(0);
    let high = backward
        .or(listed.last().map(|id| id.saturating_add(1)))
        .unwrap_or(low);
    let (dense, whole) = gap_ranges(low, high, budget);
    // Rows no index lists may be left unread: past the budget, or past an end that
    // only the indexes tell.
    copy.out.uncounted = !complete && (!whole || forward.is_none() || backward.is_none());
    for range in &dense {
        for rowid in range.clone() {
            copy.probe(rowid, listed.contains(&rowid), complete);
        }
    }
    let in_dense = |id: &i64| dense.iter().any(|r| r.contains(id));
    for &rowid in listed.iter().filter(|id| !in_dense(id)) {
        copy.probe(rowid, true, complete);
    }
}

/// The rowids of the gap `(low, high)` (both ends excluded) to look up one by one: all of
/// them when there are no more than `budget`, and whether that is so; else `budget / 2`
/// from each end.
fn gap_ranges(low: i64, high: i64, budget: u64) -> (Vec<std::ops::RangeInclusive<i64>>, bool) {
    let width = (i128::from(high) - i128::from(low) - 1).max(0);
    if width == 0 {
        return (Vec::new(), true);
    }
    if width <= i128::from(budget) {
        return (vec![low + 1..=high - 1], true);
    }
    let half = i64::try_from(budget / 2).unwrap_or(i64::MAX);
    (
        vec![
            low + 1..=low.saturating_add(half),
            high.saturating_sub(half)..=high - 1,
        ],
        false,
    )
}

/// A table without rowids, read through each index both ways. The rows lost are those a
/// complete index lists that no read gave; none is complete: uncounted.
fn through_indexes(copy: &mut TableCopy<'_>, indexes: &[String], desc_key: &str) {
    let mut listed = None;
    for index in indexes {
        let via = format!("{} INDEXED BY {index}", copy.from);
        let (_, broke) = copy.scan(&via);
        copy.scan(&format!("{via} ORDER BY {desc_key}"));
        if !broke {
            let n: i64 = copy
                .old
                .query_row(
                    &format!("SELECT count(*) FROM \"{}\" INDEXED BY {index}", copy.table),
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            listed = Some(n as u64);
        }
    }
    copy.out.lost = listed.map_or(0, |n| n.saturating_sub(copy.out.copied));
    copy.out.uncounted = listed.is_none();
}

/// Every rowid the indexes of `table` list, each index read forward and backward as far
/// as it can be; and whether one was read whole.
fn listed_rowids(old: &Connection, table: &str, indexes: &[String]) -> (BTreeSet<i64>, bool) {
    let mut listed = BTreeSet::new();
    let mut complete = false;
    for index in indexes {
        let mut read = |order: &str| -> bool {
            (|| -> rusqlite::Result<()> {
                let mut stmt = old.prepare(&format!(
                    "SELECT rowid FROM \"{table}\" INDEXED BY {index} ORDER BY rowid {order}"
                ))?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    listed.insert(row.get::<_, i64>(0)?);
                }
                Ok(())
            })()
            .is_ok()
        };
        complete |= read("ASC");
        read("DESC");
    }
    (listed, complete)
}

/// How many rows `indexes` of `table` list that the table does not hold, by `key` (the
/// rowid, or the primary key of a table without rowids): each index read alone (`INDEXED
/// BY`: the key is in every index, so the table is not looked at), the table alone (`NOT
/// INDEXED`).
pub(crate) fn vanished(
    conn: &Connection,
    table: &str,
    key: &str,
    indexes: &[String],
) -> rusqlite::Result<u64> {
    if indexes.is_empty() {
        return Ok(0);
    }
    let listed = indexes
        .iter()
        .map(|index| format!("SELECT {key} FROM \"{table}\" INDEXED BY {index}"))
        .collect::<Vec<_>>()
        .join(" UNION ");
    let n: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM ({listed} EXCEPT SELECT {key} FROM \"{table}\" NOT INDEXED)"
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// The indexes of `table` that list its rows (the primary key of a table without rowids is
/// the table itself), quoted.
pub(crate) fn indexes_of(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
) -> rusqlite::Result<Vec<String>> {
    names(
        conn,
        &format!(
            "SELECT name FROM pragma_index_list('{table}') WHERE NOT (origin = 'pk' AND {})",
            i32::from(without_rowid)
        ),
    )
}

/// The key of `table`'s rows, quoted: `rowid`, or the primary key's columns of a table
/// without rowids.
pub(crate) fn key_of(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
) -> rusqlite::Result<String> {
    if !without_rowid {
        return Ok("rowid".to_string());
    }
    Ok(names(
        conn,
        &format!("SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk"),
    )?
    .join(", "))
}

/// The first column of `sql`'s rows (names from a `pragma`), quoted.
fn names(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare(sql)?
        .query_map([], |r| r.get::<_, String>(0))?
        .map(|n| n.map(|n| format!("\"{n}\"")))
        .collect()
}

/// One table's copy in progress: the reads from the old board, the inserts into the new.
struct TableCopy<'a> {
    old: &'a Connection,
    table: &'a str,
    /// `SELECT <columns>, <rowid or NULL> FROM <table>`.
    from: String,
    /// The number of columns.
    width: usize,
    /// `INSERT OR IGNORE` of one row into the new board.
    ins: Statement<'a>,
    /// Rowids read so far (a rowid table's).
    read: BTreeSet<i64>,
    out: Salvaged,
}

impl<'a> TableCopy<'a> {
    fn new(
        old: &'a Connection,
        fresh: &'a Connection,
        table: &'a str,
        without_rowid: bool,
    ) -> rusqlite::Result<TableCopy<'a>> {
        let columns = names(
            fresh,
            &format!("SELECT name FROM pragma_table_info('{table}')"),
        )?;
        let list = columns.join(", ");
        let (rowid, into) = if without_rowid {
            ("NULL", list.clone())
        } else {
            ("rowid", format!("{list}, rowid"))
        };
        let marks = vec!["?"; columns.len() + usize::from(!without_rowid)].join(", ");
        Ok(TableCopy {
            old,
            table,
            from: format!("SELECT {list}, {rowid} FROM \"{table}\""),
            width: columns.len(),
            ins: fresh.prepare(&format!(
                "INSERT OR IGNORE INTO \"{table}\" ({into}) VALUES ({marks})"
            ))?,
            read: BTreeSet::new(),
            out: Salvaged {
                table: table.to_string(),
                copied: 0,
                lost: 0,
                changed: 0,
                added: 0,
                uncounted: false,
                probed: 0,
            },
        })
    }

    /// Copies the rows `sql` yields until it ends or breaks: the last rowid read, and
    /// whether it broke.
    fn scan(&mut self, sql: &str) -> (Option<i64>, bool) {
        let mut last = None;
        let old = self.old;
        let broke = (|| -> rusqlite::Result<()> {
            let mut stmt = old.prepare(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                last = self.row(row)?.or(last);
            }
            Ok(())
        })()
        .is_err();
        (last, broke)
    }

    /// Copies one row read from the old board; its rowid, for a rowid table. A row the new
    /// board ignores although its rowid was not read before is a second row with the key
    /// of a kept one under a UNIQUE index (the first read is kept): it counts as lost.
    fn row(&mut self, row: &Row<'_>) -> rusqlite::Result<Option<i64>> {
        let mut values: Vec<Value> = (0..self.width)
            .map(|i| row.get(i))
            .collect::<rusqlite::Result<_>>()?;
        let rowid: Option<i64> = row.get(self.width)?;
        values.extend(rowid.map(Value::Integer));
        let n = self
            .ins
            .execute(rusqlite::params_from_iter(values.iter()))? as u64;
        self.out.copied += n;
        let first_read = rowid.is_some_and(|id| self.read.insert(id));
        if n == 0 && first_read {
            self.out.lost += 1;
        }
        Ok(rowid)
    }

    /// Looks up one rowid not read yet, and copies its row. A rowid that cannot be read
    /// is a lost row if an index lists it, or, when no index could be read whole, in any
    /// case (an estimate from above); a rowid the table lacks is a lost row if an index
    /// lists it (the entry a row gone left behind).
    fn probe(&mut self, rowid: i64, listed: bool, complete: bool) {
        if self.read.contains(&rowid) {
            return;
        }
        self.out.probed += 1;
        let one = format!("{} WHERE rowid = ?1", self.from);
        let old = self.old;
        let got = old.prepare_cached(&one).and_then(|mut s| {
            let mut rows = s.query([rowid])?;
            match rows.next()? {
                None => Ok(false),
                Some(row) => self.row(row).map(|_| true),
            }
        });
        let lost = match got {
            Ok(found) => !found && listed,
            Err(_) => listed || !complete,
        };
        self.out.lost += u64::from(lost);
    }
}
