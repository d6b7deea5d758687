//! The scenarios and seeds a command runs: folders expanded to their files, seed flags to
//! seed lists, `--shard` to its part.

use std::path::PathBuf;

use kanban_harness::Error;
use kanban_harness::Result;
use kanban_harness::scenario::Scenario;

use crate::SeedArgs;

pub(crate) fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![
            PathBuf::from("scenarios"),
            PathBuf::from("scenarios/regressions"),
        ]
    } else {
        paths
    }
}

/// Loads scenario files, expanding folders to their `*.toml` files (sorted).
pub(crate) fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>> {
    let files = kanban_harness::scenario::toml_files(paths)?;
    files.iter().map(|f| Scenario::load(f)).collect()
}

pub(crate) fn seed_list(args: &SeedArgs, scenario: &Scenario) -> Result<Vec<u64>> {
    if let Some(seed) = args.seed {
        return Ok(vec![seed]);
    }
    if let Some(range) = &args.seed_range {
        let bad = || Error::Usage(format!("--seed-range {range:?}: expected A..B"));
        let (a, b) = range.split_once("..").ok_or_else(bad)?;
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        return if a < b {
            Ok((a..b).collect())
        } else {
            Err(bad())
        };
    }
    let first = scenario.first_seed;
    Ok((first..first + args.seeds.unwrap_or(scenario.seeds)).collect())
}

pub(crate) fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::Usage(format!("--shard {text:?}: expected K/N with 1 <= K <= N"));
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}
