#!/usr/bin/env bash
# The test job: formatting, lints (with and without the hazard switches), the test suite,
# and a check that a build without the `hazards` feature contains none of them.
# Usage: ci/test.sh            (what .ci/run calls; the tests run last, so their summary
#                              closes the log)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (default features, then all)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "a release build without the feature carries no hazard"
cargo build --release -p kanban-store --bin kanban-db
hazards='raw-header-peek|copy-sidecars-on-check|integrity-on-connect|journal-toggle-on-error|replace-while-open|delete-sidecars-after-crash|unbounded-backups|autocheckpoint-everywhere|hard-link-alias|connection-across-fork|connect-per-operation'
if grep -a -o -E "$hazards" target/release/kanban-db | sort -u | grep .; then
    echo "hazard code found in a build without the feature" >&2
    exit 1
fi
echo "none found"

step "the main job (README): the store's self-check"
cargo run --release -q -p kanban-store --bin kanban-db -- selftest

step "tests (the README's test command)"
INSTA_UPDATE=no cargo test --workspace --all-features
