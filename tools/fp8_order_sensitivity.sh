#!/usr/bin/env bash
# How much do two FP8 runs of the same model disagree when only the float32 summation order of the
# dot products differs? Builds a throw-away copy of the repository with
# tools/patches/fp8_summation_order.patch applied (the baseline's dot products accumulate in double
# and round once, the candidate's use the normal AVX-512 float32 order), then runs
# `octet eval --precision fp8 --baseline fp8` on the English fixture. The answer bounds what any
# second FP8 implementation (e.g. the CUDA backend) can reach against the CPU one without
# reproducing its exact summation order (docs/ACCURACY.md).
#   tools/fp8_order_sensitivity.sh [MODEL.gguf]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$repo/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$repo" archive HEAD | tar -x -C "$work"
git -C "$work" apply "$repo/tools/patches/fp8_summation_order.patch" 2>/dev/null ||
  (cd "$work" && patch -p1 -s <"$repo/tools/patches/fp8_summation_order.patch")
cmake -S "$work" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOCTET_CUDA=OFF -DOCTET_TESTS=OFF \
      -DOCTET_BENCH=OFF >/dev/null
ninja -C "$work/build" octet >/dev/null
"$work/build/octet" eval --model "$model" --text "$repo/tests/fixtures/english_text.txt" --precision fp8 --baseline fp8
