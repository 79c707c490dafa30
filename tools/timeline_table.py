#!/usr/bin/env python3
"""Where one decode step's time goes in a real (graph-replayed) run, from an Nsight Systems trace.

    nsys profile --trace=cuda --cuda-graph-trace=node -o run octet bench ... --steps 4
    nsys stats --report cuda_gpu_trace --format csv --output trace run.nsys-rep
    tools/timeline_table.py trace_cuda_gpu_trace.csv [--layers N] [--step-kernel REGEX]

Unlike ncu (kernels one at a time), the trace keeps the overlap of programmatic launches, so each
kernel's share is its own duration plus the gap that precedes it (start minus the previous kernel's
end: negative where the two overlap). The last complete step is the kernels from the last-but-one
match of --step-kernel (default: the embedding gather that opens every step) to the last one.
"""
import argparse
import csv
import re
import sys
from collections import OrderedDict


def column(header, *words):
    for i, name in enumerate(header):
        if all(w.lower() in name.lower() for w in words):
            return i
    sys.exit(f"timeline_table: no column with {words} in {header}")


def short_name(name):
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"octet::backend::cuda::", "", name)
    name = re.sub(r"\((?![^()]*\)[^<>]*>).*", "", name)  # the argument list, not parentheses inside <...>
    name = re.sub(r"^void ", "", name)
    return name[:90]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("trace")
    parser.add_argument("--layers", type=int, default=0, help="divide by this for per-layer figures")
    parser.add_argument("--step-kernel", default="embed")
    args = parser.parse_args()
    with open(args.trace, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    start_col, duration_col, name_col = column(header, "start"), column(header, "duration"), column(header, "name")
    kernels = []
    for row in rows[1:]:
        if len(row) <= max(start_col, duration_col, name_col):
            continue
        name = row[name_col]
        if "memcpy" in name.lower() or "memset" in name.lower() or name.startswith("["):
            continue
        kernels.append((float(row[start_col]), float(row[duration_col]), name))
    kernels.sort()
    opens = [i for i, k in enumerate(kernels) if re.search(args.step_kernel, k[2])]
    if len(opens) < 2:
        sys.exit(f"timeline_table: fewer than two kernels match {args.step_kernel!r}")
    step = kernels[opens[-2]:opens[-1]]
    span_ns = step[-1][0] + step[-1][1] - step[0][0]
    table = OrderedDict()
    previous_end = None
    for start, duration, name in step:
        key = short_name(name)
        entry = table.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += duration
        if previous_end is not None:
            entry[2] += start - previous_end
        previous_end = start + duration if previous_end is None else max(previous_end, start + duration)
    per = args.layers if args.layers > 0 else 1
    unit = "µs a layer" if args.layers > 0 else "µs a step"
    print(f"step: {len(step)} kernels, {span_ns / 1e3:.1f} µs from the first start to the last end")
    print(f"| kernel | launches | duration ({unit}) | gap before ({unit}) | sum |")
    print("| --- | --- | --- | --- | --- |")
    total = 0.0
    for key, (count, duration, gap) in sorted(table.items(), key=lambda kv: -(kv[1][1] + kv[1][2])):
        total += duration + gap
        print(f"| {key} | {count} | {duration / 1e3 / per:.2f} | {gap / 1e3 / per:.2f} | {(duration + gap) / 1e3 / per:.2f} |")
    print(f"| all | {len(step)} | | | {total / 1e3 / per:.2f} |")


if __name__ == "__main__":
    main()
