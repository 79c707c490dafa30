#!/usr/bin/env python3
"""Static opcode counts of a kernel's hottest loop, from `cuobjdump -sass` output (no GPU needed).

The loop taken is the backward branch's range [target, branch] that holds the most HMMA / IMMA / QMMA / HGMMA
instructions (a decode attention's tile loop, a GEMV's k loop); opcodes are counted without their modifiers
(F2FP.F16.E4M3.UNPACK_B -> F2FP). Static counts: a branch inside the loop that skips code makes the dynamic count
(ncu's "Instructions Executed" per iteration) smaller, so compare builds of one kernel, not kernels.

cuobjdump is not in this machine's CUDA toolkit; the wheel of the same name has it:
    python3 -m pip download --no-deps -d /tmp/whl nvidia-cuda-cuobjdump && unzip -o -q /tmp/whl/nvidia_cuda_cuobjdump-*.whl -d /tmp/cutools
    nvcc -arch=sm_90a -cubin -O3 -std=c++17 -Isrc -Iinclude src/backend/cuda/attention_grouped.cu -o /tmp/k.cubin
    /tmp/cutools/nvidia/cu13/bin/cuobjdump -sass /tmp/k.cubin > /tmp/k.sass
    tools/sass_loop_opcodes.py /tmp/k.sass 'KvStorageE2ELi128.*Lb1'       # E4M3, head_dim 128, packed build
"""
import collections
import re
import sys

FUNCTION = re.compile(r"^\s*Function : (\S+)")
INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
MMA = ("HMMA", "IMMA", "QMMA", "HGMMA", "QGMMA")


def functions(lines):
    """(name, [(address, opcode, operands)]) for every function of the dump."""
    name, body = None, []
    for line in lines:
        match = FUNCTION.match(line)
        if match:
            if name:
                yield name, body
            name, body = match.group(1), []
            continue
        match = INSTRUCTION.match(line)
        if match and name:
            body.append((int(match.group(1), 16), match.group(2), match.group(3)))
    if name:
        yield name, body


def hottest_loop(body):
    """The instructions of the backward branch's range holding the most MMAs (all of them if none loops)."""
    best, best_mmas = body, -1
    for address, opcode, operands in body:
        if not opcode.startswith("BRA"):
            continue
        target = re.search(r"0x([0-9a-f]+)", operands)
        if not target or int(target.group(1), 16) >= address:
            continue
        start = int(target.group(1), 16)
        span = [i for i in body if start <= i[0] <= address]
        mmas = sum(1 for i in span if i[1].split(".")[0] in MMA)
        if mmas > best_mmas:
            best, best_mmas = span, mmas
    return best


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sass_loop_opcodes.py DUMP.sass FUNCTION_REGEX")
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
    pattern = re.compile(sys.argv[2])
    found = False
    for name, body in functions(lines):
        if not pattern.search(name):
            continue
        found = True
        loop = hottest_loop(body)
        counts = collections.Counter(opcode.split(".")[0] for _, opcode, _ in loop)
        print(f"{name}\n  loop: {len(loop)} instructions (0x{loop[0][0]:x}-0x{loop[-1][0]:x}), function {len(body)}")
        for opcode, count in counts.most_common():
            print(f"  {opcode:10s} {count}")
    if not found:
        sys.exit(f"sass_loop_opcodes.py: no function of {sys.argv[1]} matches '{sys.argv[2]}'")


if __name__ == "__main__":
    main()
