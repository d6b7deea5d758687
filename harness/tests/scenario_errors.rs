//! Guards what a bad scenario file is told: every kind of mistake in a scenario (unknown
//! key at any level, wrong type, syntax, missing or impossible values, unknown phase or
//! variant) is an error that names the file and the key, snapshotted in one list; every
//! shipped scenario parses; and variant names parse, are refused with the hazard list, and
//! round-trip through `Display`.

use std::fmt::Write as _;
use std::path::Path;

use kanban_harness::scenario::{Scenario, Variant};
use kanban_store::hazards::Hazard;

/// The path every bad scenario is parsed as (it appears in the messages).
const BAD: &str = "scenarios/bad.toml";

/// A valid scenario; each case below breaks one thing of it.
const GOOD: &str = r#"description = "a good scenario"

[[workers]]
kind = "gateway"

[expect.hardened]
max_failure_rate = 0.0
"#;

/// The message of parsing `text` as [`BAD`]; panics if it parses.
fn error_of(text: &str) -> String {
    match Scenario::parse(text, Path::new(BAD)) {
        Ok(s) => panic!("parsed, but should not have:\n{text}\n{s:#?}"),
        Err(e) => e.to_string(),
    }
}

/// One bad scenario per kind of mistake: (case, text).
fn cases() -> Vec<(&'static str, String)> {
    let with_worker = |extra: &str| GOOD.replace("kind = \"gateway\"\n", extra);
    let with_faults = |faults: &str| format!("{GOOD}\n{faults}");
    vec![
        ("unknown top-level key", format!("sedes = 3\n{GOOD}")),
        (
            "unknown power-cut mode",
            with_faults("[power]\ncuts = 1\nmodes = [\"torn\", \"shredded\"]\n"),
        ),
        (
            "empty power-cut window",
            with_faults("[power]\ncuts = 1\ncut_at_ms = [50, 10]\n"),
        ),
        (
            "a power cut with a command worker",
            with_worker("kind = \"command\"\ncommand = [\"true\"]\n[power]\ncuts = 1\n").replace(
                "[[workers]]",
                "[[workers]]\nkind = \"gateway\"\n[[workers]]",
            ),
        ),
        (
            "unknown key in [[workers]]",
            with_worker("kind = \"gateway\"\ntick_msec = 20\n"),
        ),
        (
            "unknown key in [faults]",
            with_faults("[faults]\nkils = 3\n"),
        ),
        ("wrong type", format!("seeds = \"many\"\n{GOOD}")),
        ("no seeds", format!("seeds = 0\n{GOOD}")),
        (
            "an error planned on an operation that cannot fail",
            with_faults(
                "[[faults.io]]\nphase = \"commit\"\nfile = \"db\"\nop = \"close\"\naction = \"ioerr-write\"\n",
            ),
        ),
        ("no time", format!("budget_ms = 0\n{GOOD}")),
        (
            "every worker counted out",
            with_worker("kind = \"gateway\"\ncount = 0\n"),
        ),
        (
            "a rate above 1",
            GOOD.replace("max_failure_rate = 0.0", "max_failure_rate = 1.5"),
        ),
        (
            "TOML syntax error",
            format!("{GOOD}\n[[workers]\nkind = \"agent\"\n"),
        ),
        (
            "no workers",
            "description = \"x\"\nworkers = []\n\n[expect.hardened]\n".to_string(),
        ),
        (
            "a phase kill aimed at an absent kind",
            with_faults("[[faults.phase_kills]]\nphase = \"repair\"\nworker = \"repairer\"\n"),
        ),
        (
            "an I/O fault aimed at an absent kind",
            with_faults(
                "[[faults.io]]\nphase = \"commit\"\nfile = \"wal\"\nop = \"write\"\naction = \"kill-before\"\nworker = \"agent\"\n",
            ),
        ),
        (
            "a phase kill with only command workers to carry it",
            with_worker("kind = \"command\"\ncommand = [\"true\"]\n")
                + "\n[[faults.phase_kills]]\nphase = \"commit\"\n",
        ),
        (
            "command worker without command",
            with_worker("kind = \"command\"\n"),
        ),
        (
            "non-command worker with command",
            with_worker("kind = \"agent\"\ncommand = [\"python3\", \"client.py\"]\n"),
        ),
        (
            "overlap above 1",
            with_worker("kind = \"gateway\"\noverlap = 2.0\n"),
        ),
        (
            "no connections",
            with_worker("kind = \"gateway\"\nconnections = 0\n"),
        ),
        (
            "unknown phase",
            with_faults("[[faults.phase_kills]]\nphase = \"comit\"\n"),
        ),
        (
            "empty delay range",
            with_faults("[[faults.phase_kills]]\nphase = \"commit\"\ndelay_us = [300, 0]\n"),
        ),
        (
            "empty nth range",
            with_faults("[[faults.phase_kills]]\nphase = \"commit\"\nmax_nth = 0\n"),
        ),
        (
            "empty stall range",
            with_faults("[faults]\nstalls = 1\nstall_ms = [50, 5]\n"),
        ),
        (
            "unknown variant",
            format!("{GOOD}\n[expect.\"hazard:nope\"]\nmax_failure_rate = 0.1\n"),
        ),
        (
            "the dropped min_failure_rate (expectations name their kinds)",
            format!("{GOOD}min_failure_rate = 1.0\n"),
        ),
        (
            "an unknown finding kind in min_rate",
            format!("{GOOD}min_rate = {{ lost = 0.5 }}\n"),
        ),
        (
            "a kind rate out of range",
            format!("{GOOD}max_rate = {{ corrupt = 2.0 }}\n"),
        ),
        (
            "a work floor for an unknown worker kind",
            format!("{GOOD}min_acked = {{ robot = 5 }}\n"),
        ),
        (
            "a work floor for a worker kind the scenario does not run",
            format!("{GOOD}min_acked = {{ dashboard = 5 }}\n"),
        ),
        (
            "an unknown expected error",
            format!("{GOOD}allow_errors = [\"Bussy\"]\n"),
        ),
        (
            "no [expect]",
            "description = \"x\"\n\n[[workers]]\nkind = \"gateway\"\n".to_string(),
        ),
        (
            "empty [expect]",
            "description = \"x\"\n\n[[workers]]\nkind = \"gateway\"\n\n[expect]\n".to_string(),
        ),
    ]
}

#[test]
fn the_good_scenario_parses() {
    let s = Scenario::parse(GOOD, Path::new(BAD)).expect("the base of every case is valid");
    assert_eq!(s.variants(), vec![Variant::Hardened]);
    assert_eq!(s.name(), "bad");
}

#[test]
fn bad_scenarios_are_refused_naming_the_file_and_the_key() {
    let mut out = String::new();
    for (case, text) in cases() {
        let message = error_of(&text);
        assert!(
            message.starts_with(&format!("{BAD}: ")),
            "{case}: the message does not start with the file: {message}"
        );
        writeln!(out, "== {case}\n{message}\n").unwrap();
    }
    insta::assert_snapshot!(out);
}

#[test]
fn every_shipped_scenario_parses_and_declares_a_variant() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scenarios in {}", dir.display());
    for path in paths {
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let variants = scenario.variants();
        assert!(!variants.is_empty(), "{}: no variant", path.display());
        assert_eq!(
            variants.len(),
            scenario.expect.len(),
            "{}: every `expect` key is a variant",
            path.display()
        );
        assert!(!scenario.processes().is_empty(), "{}", path.display());
    }
}

#[test]
fn variant_names_parse() {
    assert_eq!(Variant::parse("hardened").unwrap(), Variant::Hardened);
    assert_eq!(Variant::parse("naive").unwrap(), Variant::Naive);
    let peek = Variant::parse("hazard:raw-header-peek").unwrap();
    assert!(matches!(peek, Variant::Hazard(k) if k.hazard() == Hazard::RawHeaderPeek));
    assert_eq!(
        peek.hazards().iter().collect::<Vec<_>>(),
        vec![Hazard::RawHeaderPeek]
    );
}

#[test]
fn unknown_variants_are_refused_listing_the_hazards() {
    for name in [
        "hazard:nope",
        "fast",
        "hazard:",
        "Hardened",
        "raw-header-peek",
    ] {
        let message = Variant::parse(name).expect_err(name).to_string();
        assert!(
            message.contains(&format!("{name:?}")),
            "{name}: the message does not name it: {message}"
        );
        for h in Hazard::ALL {
            assert!(
                message.contains(h.name()),
                "{name}: the message does not list {}: {message}",
                h.name()
            );
        }
    }
    assert_eq!(
        Variant::parse("fast").unwrap_err().to_string(),
        "unknown variant \"fast\" (hardened, naive, or hazard:<name> with one of: \
         raw-header-peek, copy-sidecars-on-check, integrity-on-connect, \
         journal-toggle-on-error, replace-while-open, delete-sidecars-after-crash, \
         unbounded-backups, autocheckpoint-everywhere, hard-link-alias, \
         connection-across-fork, journal-off, sync-off, connect-per-operation, \
         init-only-flock, page-count-peek-after-commit, integrity-once-per-process, \
         raw-path-siblings, forget-request-ids, sync-normal, no-dir-fsync, \
         nosync-checkpoint)"
    );
}

#[test]
fn variants_round_trip_through_display() {
    let all = [Variant::Hardened, Variant::Naive]
        .into_iter()
        .chain(Hazard::ALL.iter().map(|h| {
            Variant::parse(&format!("hazard:{}", h.name())).expect("every hazard is a variant")
        }));
    let mut seen = Vec::new();
    for v in all {
        let name = v.to_string();
        assert_eq!(Variant::parse(&name).unwrap(), v, "{name}");
        seen.push(name);
    }
    assert_eq!(seen[..2], ["hardened", "naive"]);
    assert_eq!(seen[2], "hazard:raw-header-peek");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 2 + Hazard::ALL.len(), "names are distinct");
}
