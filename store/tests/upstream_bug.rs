//! The upstream bug (#33169), reproduced with the `raw-header-peek` hazard and shown fixed.
//!
//! Two processes share one board, as the upstream gateway and dashboard did. Each, like the
//! upstream services, overlaps two connections: connection A is inside a write transaction
//! while connection B connects. With the hazard, B's connect peeks at the header with a
//! plain `open`/`read`/`close` of the db and `-shm`, and that `close` drops every POSIX lock
//! the process holds on those files: A's WAL write lock and read marks included. The other
//! process can then write into the WAL at the same time. The test runs rounds of seeded
//! transactions and checks, after each round, `integrity_check` and that every row whose
//! commit was acknowledged is still there.
//!
//! With the hazard the board breaks within a bounded number of rounds, and so does `naive`
//! (the upstream code as a whole, the peek one of its switches); without it (the hardened
//! store, same workload) it never does.

use crate::child;

use std::collections::BTreeSet;
use std::path::Path;

use kanban_store::hazards::{Hazard, HazardSet};
use kanban_store::{Board, NewTask, Role, StoreConfig};

const ENTRY: &str = "upstream_bug::writer_child";

/// The stores a round can run: the hardened one, the header peek alone, or `naive` (the
/// upstream code at bug time, the peek among its switches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Hardened,
    Peek,
    Naive,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Hardened => "hardened",
            Variant::Peek => "peek",
            Variant::Naive => "naive",
        }
    }

    fn from_env() -> Variant {
        let name = std::env::var("KANBAN_VARIANT").unwrap();
        [Variant::Hardened, Variant::Peek, Variant::Naive]
            .into_iter()
            .find(|v| v.name() == name)
            .unwrap_or_else(|| panic!("no variant {name}"))
    }

    fn hazards(self) -> HazardSet {
        match self {
            Variant::Hardened => HazardSet::default(),
            Variant::Peek => HazardSet::default().with(Hazard::RawHeaderPeek),
            Variant::Naive => HazardSet::naive(),
        }
    }
}

/// The config a child uses for role `role` in `variant`.
fn config(role: Role, variant: Variant) -> StoreConfig {
    let mut cfg = StoreConfig::new(role);
    cfg = cfg.busy_timeout(std::time::Duration::from_secs(1));
    cfg = cfg.hazards(variant.hazards());
    cfg
}

/// One writer process: `n` transactions, each overlapping a second connection's connect.
#[test]
#[ignore = "child process entry"]
fn writer_child() {
    let Some(role) = child::role() else { return };
    let db = std::env::var("KANBAN_DB").unwrap();
    let n: usize = std::env::var("KANBAN_TXNS").unwrap().parse().unwrap();
    let variant = Variant::from_env();
    let (main_role, side_role) = match role.as_str() {
        "gateway" => (Role::Gateway, Role::Worker),
        _ => (Role::Dashboard, Role::Dashboard),
    };
    let mut a = Board::open_with(&db, config(main_role, variant)).unwrap();
    for i in 0..n {
        let title = format!("{role}-{i}");
        let committed = a.transaction(|t| {
            let id = t.create_task(&NewTask {
                title: title.clone(),
                ..Default::default()
            })?;
            // The overlap: another connection of this process connects (and, with the
            // hazard, peeks) while this one is inside its write transaction.
            let mut b = Board::open_with(&db, config(side_role, variant))?;
            b.events_since(0.into(), 20)?;
            drop(b);
            t.comment(id, &role, "written while another connection opened")?;
            Ok(id)
        });
        match committed {
            Ok(_) => println!("ack {title}"),
            Err(e) => println!("error {e}"),
        }
        if main_role == Role::Gateway && i % 10 == 9 {
            let _ = a.checkpoint();
        }
    }
}

/// What one round found.
#[derive(Debug, Default)]
struct Round {
    integrity: Vec<String>,
    lost: usize,
    acked: usize,
}

/// Runs one round of two writer processes on `db`, then checks.
fn round(db: &Path, txns: usize, variant: Variant) -> Round {
    let env = [
        ("KANBAN_DB", db.display().to_string()),
        ("KANBAN_TXNS", txns.to_string()),
        ("KANBAN_VARIANT", variant.name().to_string()),
    ];
    let children: Vec<_> = ["gateway", "dashboard"]
        .iter()
        .map(|role| child::spawn(ENTRY, role, &env))
        .collect();
    let mut acked = BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        acked.extend(
            stdout
                .lines()
                // `--nocapture` may put the harness's "test ... " before the first line.
                .filter_map(|l| l.split_once("ack ").map(|(_, t)| t.to_string())),
        );
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_else(|e| vec![format!("error: {e}")]);
    let present: BTreeSet<String> = conn
        .prepare("SELECT title FROM tasks")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    Round {
        integrity: integrity.into_iter().filter(|l| l != "ok").collect(),
        lost: acked.difference(&present).count(),
        acked: acked.len(),
    }
}

/// Transactions per process in one round (`KANBAN_ROUND_TXNS` overrides it).
fn round_txns() -> usize {
    std::env::var("KANBAN_ROUND_TXNS").map_or(10, |n| n.parse().expect("a number"))
}

/// Rounds of both writers on one board until it is damaged, at most `rounds`; returns the
/// number of transactions per process until damage was seen, and the findings. With
/// `KANBAN_KEEP_DAMAGED=DIR` a copy of the damaged board (made with the backup API) is kept
/// as `DIR/damaged.db`.
fn first_damage(variant: Variant, rounds: usize) -> Option<(usize, Round)> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kanban.db");
    drop(Board::create(&db, StoreConfig::new(Role::Worker)).unwrap());
    let txns = round_txns();
    for r in 1..=rounds {
        let found = round(&db, txns, variant);
        if variant == Variant::Hardened {
            assert_eq!(found.acked, 2 * txns, "a hardened write failed: {found:?}");
        }
        if !found.integrity.is_empty() || found.lost > 0 {
            if let Ok(keep) = std::env::var("KANBAN_KEEP_DAMAGED") {
                let dest = Path::new(&keep).join("damaged.db");
                let conn = rusqlite::Connection::open(&db).unwrap();
                conn.backup(
                    rusqlite::MAIN_DB,
                    &dest,
                    None::<fn(rusqlite::backup::Progress)>,
                )
                .unwrap();
            }
            return Some((r * txns, found));
        }
    }
    None
}

#[test]
fn the_peek_inside_a_write_transaction_breaks_the_board() {
    let (txns, found) = first_damage(Variant::Peek, 100)
        .expect("the hazard must damage the board within 1000 transactions");
    eprintln!("damaged within {txns} transactions per process: {found:?}");
}

#[test]
fn naive_breaks_the_board_under_the_same_workload() {
    // Upstream's code as a whole: no lock of its own, the peek on every connect and after
    // every commit, a connection per operation.
    let (txns, found) = first_damage(Variant::Naive, 100)
        .expect("naive must damage the board within 1000 transactions");
    eprintln!("naive: damaged within {txns} transactions per process: {found:?}");
}

#[test]
fn the_hardened_store_survives_the_same_workload() {
    assert!(first_damage(Variant::Hardened, 8).is_none());
}
