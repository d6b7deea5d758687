#!/usr/bin/env bash
# The benchmarks of crate kanban-benches, then their ratio table (Markdown) on stdout.
# Usage: ci/bench.sh [--quick] [--strict] [--table-only] [-- CRITERION_ARGS...]
#   --quick       a fast pass (criterion: 0.5 s warm-up, 1 s measurement, 10 samples)
#   --strict      exit 1 when a target is missed (by default misses are reported, exit 0)
#   --table-only  print the table from the results already on disk; run nothing
#   -- ARGS       passed to the criterion binaries (e.g. a filter: -- write_txn)
# Results go to criterion's folder: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion,
# else target/criterion. The target folder is whatever cargo uses (CARGO_TARGET_DIR is
# respected, never set here).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
strict=()
run=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --strict) strict=(--strict) ;;
        --table-only) run=0 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "ci/bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

criterion_dir="${CRITERION_HOME:-${CARGO_TARGET_DIR:-$PWD/target}/criterion}"
started=$(date +%s)

if [ "$run" = 1 ]; then
    flags=()
    if [ "$quick" = 1 ]; then
        flags=(--warm-up-time 0.5 --measurement-time 1 --sample-size 10)
    fi
    # The benches' own output goes to stderr, so stdout is the table alone.
    cargo bench -p kanban-benches -- "${flags[@]}" "${extra[@]}" >&2
    echo >&2
    echo "benchmarks took $(( $(date +%s) - started )) s" >&2
    since=(--since "$started")
else
    since=()
fi

python3 ci/bench_table.py "$criterion_dir" "${since[@]}" "${strict[@]}"
