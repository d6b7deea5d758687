//! `kanban-harness controls`: every control file run through this binary, one verdict each.

use std::path::PathBuf;

use kanban_harness::controls::ControlFile;
use kanban_harness::{Error, Result};

/// Runs every control through this binary; prints a verdict per control.
pub(crate) fn controls(paths: Vec<PathBuf>) -> Result<bool> {
    let exe = std::env::current_exe().map_err(|e| Error::system("finding this binary", e))?;
    let paths = match paths.is_empty() {
        true => vec![PathBuf::from("scenarios/controls")],
        false => paths,
    };
    let files = kanban_harness::scenario::toml_files(&paths)?
        .iter()
        .map(|p| ControlFile::load(p))
        .collect::<Result<Vec<_>>>()?;
    let mut failed = 0;
    for file in &files {
        let misses = file.run(&exe)?;
        let verdict = if misses.is_empty() { "PASS" } else { "FAIL" };
        println!("{verdict} {}: {}", file.name(), file.control.what);
        for miss in &misses {
            println!("    {miss}");
        }
        failed += usize::from(!misses.is_empty());
    }
    println!(
        "{} controls: {} held, {failed} failed",
        files.len(),
        files.len() - failed
    );
    Ok(failed == 0)
}
