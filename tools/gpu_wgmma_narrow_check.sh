#!/usr/bin/env bash
# One device call for the narrow-tile wgmma GEMM (skinny_gemm_wgmma_narrow.cu), from the repository
# root on the GPU machine: the build (tools/gpu_session.sh's), its kernel tests and the model test that
# routes the linears through it, memcheck of the kernel tests, then 8B / 70B steps against the defaults
# (stages of 4 and of 1 chunk, clusters of 1), then per-launch times and DRAM bytes of one 8B b1 and
# b64 step's narrow launches at 1 and 4 chunks a stage.
# Logs under $OUT; the carry folder as for tools/gpu_session.sh (.gpu_carry, LD_LIBRARY_PATH set here).
#
#   OUT=$OUT tools/gpu_wgmma_narrow_check.sh
source "$(dirname "${BASH_SOURCE[0]}")/gpu_call_common.sh"
build_or_exit

timeout 150 build-gpu/octet_tests --gtest_filter='CudaWgmma*:CudaVsCpu.TinyLlamaLogitsMatchOnTheWgmmaGemm' >"$out/tests.log" 2>&1
echo "tests rc $? at ${SECONDS}s"
grep -E "^\[  (PASSED|FAILED|  OK|SKIPPED) |Failure|Expected|Which|what\(\)" "$out/tests.log" | head -40
timeout 150 compute-sanitizer --tool memcheck build-gpu/octet_tests \
  --gtest_filter='CudaWgmmaNarrowGemm.GroupsOfThree*:CudaWgmmaNarrowGemm.ARowsBits*' >"$out/memcheck.log" 2>&1
echo "memcheck rc $? at ${SECONDS}s: $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)"

bench() {  # label, environment, arguments
  echo "== $1 [$2]" >>"$out/bench.txt"
  env $2 timeout 60 build-gpu/octet bench $3 >>"$out/bench.txt" 2>&1 || echo "   rc $?" >>"$out/bench.txt"
}
bench "8B default" "" "$m8 --batch 1,16,64"
bench "8B narrow from 1 row" "OCTET_CUDA_WGMMA_GEMM_ROWS=1" "$m8 --batch 1,8,16,32,64"
bench "8B narrow, 1 chunk a stage" "OCTET_CUDA_WGMMA_GEMM_ROWS=1 OCTET_CUDA_WGMMA_STAGE_CHUNKS=1" "$m8 --batch 1,16,64"
bench "8B narrow, clusters of 1" "OCTET_CUDA_WGMMA_GEMM_ROWS=1 OCTET_CUDA_WGMMA_CLUSTER=1" "$m8 --batch 32,64"
bench "70B default" "" "$m70 --batch 1,64"
bench "70B narrow from 1 row" "OCTET_CUDA_WGMMA_GEMM_ROWS=1" "$m70 --batch 1,64"
echo "benches done at ${SECONDS}s"
grep -E "^==|^ +[0-9]+ +[0-9]" "$out/bench.txt"

for run in "1 1" "64 1" "1 4" "64 4"; do
  set -- $run
  OCTET_CUDA_WGMMA_GEMM_ROWS=1 OCTET_CUDA_WGMMA_STAGE_CHUNKS=$2 timeout 90 ncu --clock-control none \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum --kernel-name-base mangled -k regex:wgmma_narrow_gemm_kernel \
    -c 4 build-gpu/octet bench $m8 --batch $1 --steps 1 >"$out/ncu_narrow_b$1_c$2.txt" 2>&1
  echo "ncu b$1, $2 chunks a stage: rc $? at ${SECONDS}s"
  grep -E "gpu__time_duration|dram__bytes" "$out/ncu_narrow_b$1_c$2.txt" | awk '{printf "%s %s %s; ", $1, $2, $3} NR % 2 == 0 {print ""}'
done
