#!/usr/bin/env python3
"""The verify report (`kanban-harness verify --report FILE`) as one Markdown table: per
scenario x variant, seeds, failed, damaged, lost_acked and lost-after-read seeds, faults
planned / armed / landed, restarts, acknowledged commits per seed (min~median per worker
kind) and the expected errors by kind. Usage: ci/verify_table.py verify-report.json"""
import json
import sys


def acked(run):
    per = run.get("acked_per_seed", {})
    return ", ".join(f"{k} {v['min']}~{v['median']}" for k, v in sorted(per.items())) or "-"


def errors(run):
    errs = run.get("expected_errors", {})
    return ", ".join(f"{k} {n}" for k, n in sorted(errs.items())) or "-"


def main(path):
    runs = json.load(open(path))["runs"]
    head = ["scenario", "variant", "seeds", "failed", "damaged", "lost_acked",
            "lost after read", "work", "faults planned/armed/landed", "restarts",
            "acked/seed min~median", "expected errors"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in runs:
        cells = [r["scenario"], r["variant"], r["seeds"], r["failed"], r["damaged"],
                 r["lost_acked"], r.get("lost_after_read", 0),
                 r.get("seeds_with", {}).get("work", 0),
                 f"{r['faults_planned']}/{r.get('faults_armed', 0)}/{r['faults_landed']}",
                 r["restarts"], acked(r), errors(r)]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    seeds = sum(r["seeds"] for r in runs)
    print(f"\n{len(runs)} runs, {seeds} seeds")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "verify-report.json")
