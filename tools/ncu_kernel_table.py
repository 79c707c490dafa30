#!/usr/bin/env python3
"""Per-kernel time table from an ncu raw CSV (`ncu --csv --page raw --metrics gpu__time_duration.sum ...`).

    tools/ncu_kernel_table.py ncu.csv [--per N] [--top K]

Groups launches by kernel name and grid size, and prints calls, mean µs and total ms (divided by
--per, e.g. the number of profiled steps, to give a per-step figure), largest first, with each
group's share of the total. ncu serialises kernels, so the totals exceed a graph-replayed step's
wall time; the shares are what the table is for.
"""
import argparse
import csv
import collections
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("csv_path")
    parser.add_argument("--per", type=float, default=1.0, help="divide totals by this (profiled steps)")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with open(args.csv_path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu's own log lines start with ==PROF==
    rows = list(csv.reader(lines))
    if not rows:
        sys.exit(f"{args.csv_path}: no CSV rows (did ncu run?)")
    header = rows[0]
    try:
        name_col, grid_col = header.index("Kernel Name"), header.index("Grid Size")
        time_col = header.index("gpu__time_duration.sum")
    except ValueError as e:
        sys.exit(f"{args.csv_path}: expected columns 'Kernel Name', 'Grid Size', 'gpu__time_duration.sum': {e}")
    unit = rows[1][time_col] if len(rows) > 1 else ""
    scale_us = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit)
    data = rows[2:] if scale_us is not None else rows[1:]
    scale_us = scale_us or 1e-3
    groups = collections.defaultdict(lambda: [0, 0.0])
    for row in data:
        if len(row) <= max(name_col, grid_col, time_col):
            continue
        try:
            us = float(row[time_col].replace(",", "")) * scale_us
        except ValueError:
            continue
        key = (row[name_col][:60], row[grid_col])
        groups[key][0] += 1
        groups[key][1] += us
    total_us = sum(g[1] for g in groups.values())
    print(f"{len(data)} launches, {total_us / 1e3:.3f} ms in all, {total_us / 1e3 / args.per:.3f} ms per {args.per:g}")
    print(f"{'kernel':60} {'grid':>16} {'calls':>7} {'mean us':>9} {'ms/per':>9} {'share':>6}")
    for (name, grid), (calls, us) in sorted(groups.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"{name:60} {grid:>16} {calls:7d} {us / calls:9.2f} {us / 1e3 / args.per:9.3f} {100 * us / total_us:5.1f}%")


if __name__ == "__main__":
    main()
