//! Controls: runs built so that one figure or verdict of the harness must come out a known
//! way. A verdict that cannot fail is worse than none; each control is the run that would
//! show it failing.
//!
//! A control is a TOML file (in `scenarios/controls/`) with a `[control]` table, and, when
//! it runs `run` or `verify`, a scenario beside it in the same file. The control runs this
//! very binary as a child process, exactly as a user would (`kanban-harness verify FILE
//! --report R ...`), then demands of it:
//!
//! ```toml
//! [control]
//! what = "a phase kill that cannot fire reports 0 landed, and verify fails it"
//! command = "verify"            # or "run" (with `variant`), or "matrix" (no scenario)
//! variant = "hardened"          # run: the variant
//! args = ["--seeds", "10"]      # more arguments
//! env = { NAME = "value" }      # more environment (the test-only switches)
//! exit = 1                      # the exit code it must end with
//! output = ["planned faults"]   # text its stdout or stderr must contain
//! [control.equal]               # fields of the report's first run: a number, or the
//! faults_landed = 0             #   name of another field it must equal
//! [control.at_least]
//! restarts = "faults_landed"
//! ```
//!
//! `kanban-harness controls` runs every control and exits 0 only if each came out as it
//! demands; CI runs it, and `harness/tests/controls.rs` runs each one as a test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// What a control demands of its run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The figure or verdict it pins, in a line.
    pub what: String,
    /// The subcommand it runs.
    #[serde(default)]
    pub command: ControlCommand,
    /// `run`: the variant.
    #[serde(default = "hardened")]
    pub variant: String,
    /// More arguments for the subcommand.
    #[serde(default)]
    pub args: Vec<String>,
    /// More environment for the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The exit code the child must end with.
    pub exit: i32,
    /// Text its output must contain.
    #[serde(default)]
    pub output: Vec<String>,
    /// Report fields that must equal a number or another field.
    #[serde(default)]
    pub equal: BTreeMap<String, Bound>,
    /// Report fields that must be at least a number or another field.
    #[serde(default)]
    pub at_least: BTreeMap<String, Bound>,
}

fn hardened() -> String {
    "hardened".to_string()
}

/// The subcommand a control runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlCommand {
    /// `verify FILE`: the scenario's own expectations.
    #[default]
    Verify,
    /// `run FILE --variant V`.
    Run,
    /// `matrix` (the file holds only the control).
    Matrix,
}

/// A number, or the name of another field of the same run.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// This number.
    Number(u64),
    /// The value of this field.
    Field(String),
}

/// One control file, loaded.
#[derive(Clone, Debug)]
pub struct ControlFile {
    /// The file.
    pub path: PathBuf,
    /// Its `[control]` table.
    pub control: Control,
}

impl ControlFile {
    /// Reads the `[control]` table of the file at `path`.
    pub fn load(path: &Path) -> Result<ControlFile> {
        let bad = |message: String| Error::Scenario {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadScenario {
            path: path.to_path_buf(),
            source,
        })?;
        let mut table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
        let control = table
            .remove("control")
            .ok_or_else(|| bad("a control file needs a [control] table".into()))?;
        let control = control
            .try_into()
            .map_err(|e| bad(format!("[control]: {e}")))?;
        Ok(ControlFile {
            path: path.to_path_buf(),
            control,
        })
    }

    /// The control's name: the file's stem.
    pub fn name(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Runs the control with the harness binary `exe`; returns what did not come out as
    /// demanded (empty: the control holds).
    pub fn run(&self, exe: &Path) -> Result<Vec<String>> {
        let c = &self.control;
        let dir = tempfile::tempdir().map_err(|e| Error::system("a temporary folder", e))?;
        let report = dir.path().join("report.json");
        let mut cmd = Command::new(exe);
        match c.command {
            ControlCommand::Verify => cmd.arg("verify").arg(&self.path),
            ControlCommand::Run => cmd
                .arg("run")
                .arg(&self.path)
                .args(["--variant", &c.variant]),
            ControlCommand::Matrix => cmd.arg("matrix"),
        };
        let out = cmd
            .arg("--report")
            .arg(&report)
            .args(&c.args)
            .envs(&c.env)
            .output()
            .map_err(|e| Error::system(format!("running {}", exe.display()), e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut misses = Vec::new();
        let code = out.status.code().unwrap_or(-1);
        if code != c.exit {
            misses.push(format!("exit {code}, not {}", c.exit));
        }
        for want in &c.output {
            if !text.contains(want.as_str()) {
                misses.push(format!("no {want:?} in its output"));
            }
        }
        if !c.equal.is_empty() || !c.at_least.is_empty() {
            let run = std::fs::read_to_string(&report)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .map(|mut v| v["runs"][0].take());
            match run {
                Some(run) => misses.extend(compare(&run, &c.equal, &c.at_least)),
                None => misses.push("no report".into()),
            }
        }
        if !misses.is_empty() {
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            misses.push(format!(
                "its output ended: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        Ok(misses)
    }
}

/// The fields of `run` that miss their bounds.
fn compare(
    run: &Value,
    equal: &BTreeMap<String, Bound>,
    at_least: &BTreeMap<String, Bound>,
) -> Vec<String> {
    let field = |name: &str| run[name].as_u64();
    let value = |bound: &Bound| match bound {
        Bound::Number(n) => Some(*n),
        Bound::Field(name) => field(name),
    };
    let mut misses = Vec::new();
    let rules = equal
        .iter()
        .map(|(k, b)| (k, b, "="))
        .chain(at_least.iter().map(|(k, b)| (k, b, ">=")));
    for (name, bound, op) in rules {
        let (Some(have), Some(want)) = (field(name), value(bound)) else {
            misses.push(format!("the report has no number {name} (or {bound:?})"));
            continue;
        };
        let holds = match op {
            "=" => have == want,
            _ => have >= want,
        };
        if !holds {
            misses.push(format!("{name} = {have}, wanted {op} {want} ({bound:?})"));
        }
    }
    misses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_compare_numbers_and_fields() {
        let run = serde_json::json!({"faults_landed": 3, "restarts": 3, "seeds": 10});
        let map = |pairs: &[(&str, Bound)]| -> BTreeMap<String, Bound> {
            pairs
                .iter()
                .map(|(k, b)| (k.to_string(), b.clone()))
                .collect()
        };
        let landed_is = |b| map(&[("faults_landed", b)]);
        let none = BTreeMap::new();
        assert!(compare(&run, &landed_is(Bound::Number(3)), &none).is_empty());
        assert!(compare(&run, &landed_is(Bound::Field("restarts".into())), &none).is_empty());
        assert_eq!(compare(&run, &landed_is(Bound::Number(0)), &none).len(), 1);
        assert_eq!(
            compare(&run, &none, &landed_is(Bound::Field("seeds".into()))).len(),
            1
        );
        assert_eq!(
            compare(&run, &landed_is(Bound::Field("nothing".into())), &none).len(),
            1
        );
    }
}
