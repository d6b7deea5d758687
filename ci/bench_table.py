#!/usr/bin/env python3
"""Reads criterion's results for the kanban benchmarks and prints the ratio table (Markdown).

Usage: ci/bench_table.py CRITERION_DIR [--since EPOCH_SECONDS] [--strict]

Times are criterion's median estimates (robust to the odd slow sample on a shared machine);
seeds/s is 1 / criterion's slope estimate where it has one (a seed batch has a fixed cost
to fork its jobs, which the slope leaves out), else 1 / mean. Results written before
--since are marked stale. With --strict the exit status is 1 when any target is missed.
"""

import json
import os
import sys

SIZES = ["1MB", "10MB", "50MB"]


def load(root, since):
    """full_id -> (estimates, stale) for every benchmark criterion has results for."""
    results = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        if "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        est_path = os.path.join(dirpath, "estimates.json")
        with open(est_path) as f:
            estimates = json.load(f)
        stale = since is not None and os.path.getmtime(est_path) < since
        results[bench["full_id"]] = (estimates, stale)
    return results


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[0]
    since = None
    strict = "--strict" in argv
    if "--since" in argv:
        since = float(argv[argv.index("--since") + 1])
    results = load(root, since)

    def median(full_id):
        if full_id not in results:
            return None, False
        estimates, stale = results[full_id]
        return estimates["median"]["point_estimate"], stale

    def per_element(full_id):
        if full_id not in results:
            return None, False
        estimates, stale = results[full_id]
        slope = estimates.get("slope")
        ns = (slope or estimates["mean"])["point_estimate"]
        return ns, stale

    rows = []  # (measure, value, target, verdict, detail)
    missed = []

    def verdict(ok, name, how):
        if ok is None:
            return "—"
        if not ok:
            missed.append(f"{name}: {how}")
        return "met" if ok else "**missed**"

    def ratio(measure, num_id, den_id, op=None, bound=None):
        num, s1 = median(num_id)
        den, s2 = median(den_id)
        target = "—" if op is None else f"{op} {bound:g}"
        if num is None or den is None:
            absent = [i for i, v in ((num_id, num), (den_id, den)) if v is None]
            rows.append((measure, "not measured", target, "—", "no results for " + ", ".join(absent)))
            return
        r = num / den
        ok = None
        if op == "≤":
            ok = r <= bound
        elif op == "≥":
            ok = r >= bound
        stale = " (stale)" if s1 or s2 else ""
        detail = f"{fmt_time(num)} / {fmt_time(den)}"
        rows.append((measure, f"{r:.3f}{stale}", target, verdict(ok, measure, f"{r:.3f}, target {target}"), detail))

    def rate(measure, full_id, bound):
        ns, stale = per_element(full_id)
        target = f"≥ {bound:g} seeds/s"
        if ns is None:
            rows.append((measure, "not measured", target, "—", f"no results for {full_id}"))
            return
        per_s = 1e9 / ns
        ok = per_s >= bound
        rows.append((measure, f"{per_s:.1f} seeds/s" + (" (stale)" if stale else ""), target,
                     verdict(ok, measure, f"{per_s:.1f} seeds/s, target {target}"),
                     f"{fmt_time(ns)} per seed"))

    ratio("write_txn hardened/raw", "write_txn/hardened", "write_txn/raw", "≤", 1.05)
    ratio("write_txn naive/hardened", "write_txn/naive", "write_txn/hardened")
    ratio("read hardened/raw", "read/hardened", "read/raw", "≤", 1.05)
    for size in SIZES:
        ratio(f"open hardened/raw @ {size}", f"open/hardened/{size}", f"open/raw/{size}", "≤", 1.2)
    for size in SIZES:
        if size == "50MB":
            ratio(f"open integrity_on_connect/hardened @ {size}",
                  f"open/integrity_on_connect/{size}", f"open/hardened/{size}", "≥", 100)
        else:
            ratio(f"open integrity_on_connect/hardened @ {size}",
                  f"open/integrity_on_connect/{size}", f"open/hardened/{size}")
    ratio("multi_process hardened/raw", "multi_process/hardened", "multi_process/raw", "≤", 1.10)
    ratio("multi_process single_writer/hardened", "multi_process/single_writer",
          "multi_process/hardened")
    rate("harness seeds_free", "harness/seeds_free", 100)
    rate("harness seeds_deterministic", "harness/seeds_deterministic", 20)
    lock, stale = median("lock/shared_session")
    if lock is not None:
        rows.append(("lock shared_session (lock + generation check + unlock)",
                     fmt_time(lock) + (" (stale)" if stale else ""), "—", "—", "—"))

    print("| measure | value | target | verdict | median times (num / den) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    if missed:
        print(f"{len(missed)} target(s) missed:")
        for m in missed:
            print(f"- {m}")
    else:
        print("every measured target met")
    return 1 if strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
