#!/usr/bin/env bash
# The test job: formatting, lints (with and without the hazard switches), docs, the test suite,
# and a check that a build without the `hazards` feature contains none of them.
# Usage: ci/test.sh            (what .ci/run calls; the tests run last, so their summary
#                              closes the log). VERIFY_SEEDS sets the size of the harness
#                              run (default 50 seeds per scenario and variant),
#                              DETERMINISM_SEEDS the deterministic replay check (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

step "cargo fmt --check"
cargo fmt --all -- --check

# The store alone last: in the workspace the harness turns the store's hazards on, so only
# this lints the store as its users build it.
step "clippy (default features, all features, the store alone)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p kanban-store --all-targets -- -D warnings

step "cargo doc without warnings (links to private items included)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "a release build without the feature carries no hazard"
# The library (not a binary, where unused code is dropped anyway) is searched for the hazard
# names; the same search on a build with the feature must find them, or it proves nothing.
hazards='raw-header-peek|copy-sidecars-on-check|integrity-on-connect|journal-toggle-on-error|replace-while-open|delete-sidecars-after-crash|unbounded-backups|autocheckpoint-everywhere|hard-link-alias|connection-across-fork|connect-per-operation|journal-off|sync-off|init-only-flock|page-count-peek-after-commit|integrity-once-per-process|raw-path-siblings|forget-request-ids|sync-normal|no-dir-fsync|nosync-checkpoint'
rlib() {
    cargo build --release -q -p kanban-store --lib --message-format=json "$@" |
        grep -o '[^"]*/libkanban_store[^"]*\.rlib' | tail -n 1
}
found_in() { { grep -a -o -E "$hazards" "$1" || true; } | sort -u | wc -l; }
with=$(found_in "$(rlib --features hazards)")
without=$(found_in "$(rlib)")
echo "hazard names found: $with with the feature, $without without"
if [ "$with" -lt 21 ] || [ "$without" -ne 0 ]; then
    echo "expected all 21 with the feature and none without" >&2
    exit 1
fi

step "the store's self-check"
cargo run --release -q -p kanban-store --bin kanban-db -- selftest

step "the main job (README), at CI size: every scenario, ${VERIFY_SEEDS:=50} seeds per variant"
cargo run --release -q -p kanban-harness -- verify --seeds "$VERIFY_SEEDS" --report verify-report.json

step "the controls: runs whose figures and verdicts must come out a known way"
cargo run --release -q -p kanban-harness -- controls

step "deterministic mode: every scenario and variant replays identically (${DETERMINISM_SEEDS:=3} seeds each)"
ci/determinism.sh "$DETERMINISM_SEEDS"

step "the scheduler's token protocol under loom (its own target dir: loom's cfg rebuilds deps)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -q --release -p kanban-sched -p kanban-generations --test loom

step "the hazard detection matrix (every hazard that kills can show must be caught)"
cargo run --release -q -p kanban-harness -- matrix --seeds 200 --report matrix-report.json

step "tests (the README's test command)"
INSTA_UPDATE=no cargo test --workspace --all-features
