//! `kanban-harness list`: the scenarios with their descriptions.

use std::path::PathBuf;

use kanban_harness::Result;

use super::scenarios::{default_paths, load_all};

/// Prints each scenario's name and description.
pub(crate) fn list(paths: Vec<PathBuf>) -> Result<bool> {
    for s in load_all(&default_paths(paths))? {
        println!("{:<28} {}", s.name(), s.description);
    }
    Ok(true)
}
