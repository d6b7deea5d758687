#!/usr/bin/env bash
# Stress: every shipped scenario, every variant it declares, SEEDS seeds each, checked
# against the scenario's expectations. With K/N, only shard K of N of the seeds runs, so a
# CI matrix of N machines covers SEEDS seeds together (see .github/workflows/stress.yml).
# Usage: ci/stress.sh SEEDS [K/N]       e.g. ci/stress.sh 10000 3/8
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=${1:?usage: ci/stress.sh SEEDS [K/N]}
shard=${2:-1/1}
cargo build --release -q -p kanban-harness
report="stress-${shard/\//-of-}.json"
target/release/kanban-harness verify scenarios --seeds "$seeds" --shard "$shard" \
    --report "$report" --artifacts "stress-artifacts-${shard/\//-of-}"
echo "report: $report"
