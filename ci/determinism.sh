#!/usr/bin/env bash
# Determinism: every shipped scenario that can run deterministically, every variant it
# declares, SEEDS seeds each, through `replay --deterministic --check` (each seed runs twice;
# both runs must give the same trace digest and the same database digest). Power-cut
# scenarios (`power-cut-*`: a cut at an exact step, the files rewritten from the seed) run
# POWER_SEEDS seeds each (default 10, at most SEEDS): a seed of those takes a second or two.
# Usage: ci/determinism.sh [SEEDS] [--strategy random-walk|pct]     (SEEDS default 20)
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=${1:-20}
shift || true
cargo build --release -q -p kanban-harness
bin=target/release/kanban-harness
checked=0
failed=0
for file in scenarios/*.toml scenarios/regressions/*.toml; do
    if grep -q '^kind = "command"' "$file"; then
        echo "skip $file: a command worker cannot run deterministically"
        continue
    fi
    n=$seeds
    case "$(basename "$file")" in
    power-cut-*) n=$((${POWER_SEEDS:-10} < seeds ? ${POWER_SEEDS:-10} : seeds)) ;;
    esac
    # The variants the scenario declares: its [expect.<variant>] tables.
    for variant in $(sed -n 's/^\[expect\."\{0,1\}\([^]"]*\)"\{0,1\}\]$/\1/p' "$file"); do
        same=0
        for ((seed = 0; seed < n; seed++)); do
            if "$bin" replay "$file" --variant "$variant" --seed "$seed" \
                --deterministic --check "$@" 2>/dev/null | grep -qx identical; then
                same=$((same + 1))
            else
                echo "DIFFERENT: $bin replay $file --variant $variant --seed $seed --deterministic --check $*"
                failed=$((failed + 1))
            fi
            checked=$((checked + 1))
        done
        echo "$(basename "$file" .toml) $variant: $same of $n seeds identical"
    done
done
echo "$checked seeds checked, $failed different"
[ "$failed" -eq 0 ]
