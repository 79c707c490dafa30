#!/usr/bin/env bash
# One device session: build for sm_90a, the GPU tests, compute-sanitizer, and the benchmarks.
# Stage 1 runs everything that needs no model file; stage 2 joins the SmolLM2 GGUF (carried in two
# halves, it is larger than one transfer) and runs the real-model CUDA tests.
# Stage 3 builds if needed and profiles one Llama-3.1-8B FP8 decode step per kernel with ncu.
#   tools/gpu_session.sh 1|2|3     (results under $OUT)
set -uo pipefail
stage="$1"
out="${OUT:-/tmp/out}"
mkdir -p "$out"
if [[ "$stage" == 1 ]]; then
  cp .gpu_carry/part_a /root/smollm2.part_a
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"
  export PKG_CONFIG_PATH="$PWD/.gpu_carry/pcre2/lib/pkgconfig"
  cmake -G Ninja -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DOCTET_BENCH=OFF >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
  ninja -C build-gpu >"$out/build.log" 2>&1 || { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
  echo "== GPU tests"
  build-gpu/octet_tests --gtest_filter='Cuda*' 2>&1 | tee "$out/gpu_tests.log" | grep -E "OK|FAILED|Failure|Expected|Which|error|seed|PASSED" | head -60
  echo "== compute-sanitizer memcheck"
  compute-sanitizer --tool memcheck --leak-check no build-gpu/octet_tests --gtest_filter='Cuda*' >"$out/sanitizer.log" 2>&1
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$out/sanitizer.log" | tail -5
  echo "== bench 8B"
  timeout 240 build-gpu/octet bench --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8,bf16 2>&1 | tee "$out/bench_8b.txt"
  echo "== bench 70B"
  timeout 200 build-gpu/octet bench --dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --batch 1,8 2>&1 | tee "$out/bench_70b.txt"
elif [[ "$stage" == 3 ]]; then
  export PKG_CONFIG_PATH="$PWD/.gpu_carry/pcre2/lib/pkgconfig"
  if [[ ! -x build-gpu/octet ]]; then
    cmake -G Ninja -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DOCTET_BENCH=OFF >"$out/cmake.log" 2>&1 || exit 1
    ninja -C build-gpu >"$out/build.log" 2>&1 || { grep error "$out/build.log" | head; exit 1; }
  fi
  build-gpu/octet bench --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16 --batch 1 --steps 16 | tail -3
  ncu --print-summary per-kernel --metrics gpu__time_duration.sum \
      -k 'regex:gemv|attention|rmsnorm|quantize|rope|kv_write|swiglu|embed|gather_rows|add_kernel|scale_rows|to_bf16|nvjet|sm90|gemm|cutlass' \
      build-gpu/octet bench --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16 --batch 1 --steps 4 \
      >"$out/ncu.txt" 2>&1
  grep -E "^  [a-z_0-9<>:, ()]+|gpu__time_duration.sum|Invocations" "$out/ncu.txt" | head -80
else
  mkdir -p models && cat /root/smollm2.part_a .gpu_carry/part_b > models/SmolLM2-135M-Instruct.Q4_1.gguf
  sha256sum models/SmolLM2-135M-Instruct.Q4_1.gguf
  build-gpu/octet_tests --gtest_filter='LlamaReference.Cuda*' 2>&1 | tee "$out/smollm2_cuda.log" | grep -E "OK|FAILED|Failure|agreement|Expected|Which" | head -40
  build-gpu/octet query "How to craft iron tools in Minecraft?" --max-tokens 64 --temperature 0 --device cuda 2>&1 | tee "$out/query_cuda.txt"
  build-gpu/octet bench --device cuda --precision fp8,bf16 2>&1 | tee "$out/bench_smollm2_cuda.txt"
fi
