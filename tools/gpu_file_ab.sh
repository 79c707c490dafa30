#!/usr/bin/env bash
# One device call that A/Bs one source file of a kernel: the build (tools/gpu_session.sh's), GPU tests and
# memcheck of the tree as it is, 8B / 70B decode steps and ncu per-launch figures of the kernels named,
# then the same benches and ncu with the file swapped for a base copy (rebuilt incrementally), then the
# tree's version again at the batches named last (drift between the two builds' runs). Logs under $OUT;
# a short table on stdout. Run from the repository root on the GPU machine, the base copy carried in:
#
#   AB_FILE=src/backend/cuda/attention_grouped.cu AB_BASE=ab_base/attention_grouped.cu \
#   AB_TESTS='CudaDecodeAttention*' AB_MEMCHECK='CudaDecodeAttention.PackedGroups*' \
#   AB_KERNEL=regex:grouped_attention AB_BATCHES=1,16,64,128 AB_AGAIN=64 OUT=$OUT tools/gpu_file_ab.sh
#
# Optional AB_PRE: a command run after the build and tests (e.g. a probe), its output kept in pre.txt;
# AB_NCU_SKIP: launches of AB_KERNEL that ncu skips before the timed step (default 192, below).
source "$(dirname "${BASH_SOURCE[0]}")/gpu_call_common.sh"
m8_ncu="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16"
: "${AB_FILE:?}" "${AB_BASE:?}" "${AB_TESTS:?}" "${AB_KERNEL:?}"
batches="${AB_BATCHES:-1,64}"
build_or_exit
timeout 200 build-gpu/octet_tests --gtest_filter="$AB_TESTS" >"$out/tests.log" 2>&1
echo "tests rc $? at ${SECONDS}s: $(grep -cE '^\[       OK' "$out/tests.log") passed"
grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|Failure|Expected|Which|what\(\)" "$out/tests.log" | head -30
if [[ -n "${AB_MEMCHECK:-}" ]]; then
  timeout 150 compute-sanitizer --tool memcheck build-gpu/octet_tests --gtest_filter="$AB_MEMCHECK" >"$out/memcheck.log" 2>&1
  echo "memcheck rc $? at ${SECONDS}s: $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"
fi
if [[ -n "${AB_PRE:-}" ]]; then
  bash -c "$AB_PRE" >"$out/pre.txt" 2>&1
  echo "pre rc $? at ${SECONDS}s"
  tail -40 "$out/pre.txt"
fi

measure() {  # label, batches
  echo "== $1 8B" >>"$out/bench.txt"
  timeout 90 build-gpu/octet bench $m8 --batch "$2" >>"$out/bench.txt" 2>&1 || echo "   rc $?" >>"$out/bench.txt"
  if [[ "$1" != again ]]; then
    echo "== $1 70B" >>"$out/bench.txt"
    timeout 90 build-gpu/octet bench $m70 --batch 1,64 >>"$out/bench.txt" 2>&1 || echo "   rc $?" >>"$out/bench.txt"
    for b in 1 64; do
      # Skipped first: AB_KERNEL's launches in the 16-token prefill's four passes and the two warm-up steps (192 for a
      # kernel launched once a layer at 8B: 4·32 + 2·32); the three profiled launches are the timed step's first layers.
      timeout 90 ncu --clock-control none --metrics gpu__time_duration.sum,smsp__inst_executed.sum,dram__bytes_read.sum \
        -k "$AB_KERNEL" -s "${AB_NCU_SKIP:-192}" -c 3 build-gpu/octet bench $m8_ncu --batch $b --steps 1 >"$out/ncu_$1_b$b.txt" 2>&1
      echo "ncu $1 b$b: rc $? $(grep -E 'gpu__time_duration|inst_executed|dram__bytes' "$out/ncu_$1_b$b.txt" | awk '{printf "%s %s %s; ", $1, $2, $3}')"
    done
  fi
  echo "$1 done at ${SECONDS}s"
}
measure tree "$batches"
cp "$AB_FILE" "$out/tree_copy.tmp" && cp "$AB_BASE" "$AB_FILE" && ninja -C build-gpu -j16 >"$out/rebuild.log" 2>&1
echo "base rebuilt rc $? at ${SECONDS}s"
measure base "$batches"
cp "$out/tree_copy.tmp" "$AB_FILE" && rm "$out/tree_copy.tmp" && ninja -C build-gpu -j16 >>"$out/rebuild.log" 2>&1
[[ -n "${AB_AGAIN:-}" ]] && measure again "$AB_AGAIN"
grep -E "^==|^ +[0-9]+ +[0-9]" "$out/bench.txt"
