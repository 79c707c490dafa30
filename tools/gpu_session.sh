#!/usr/bin/env bash
# One device session in one call: build for sm_90a, the GPU tests, the real-model CUDA tests when
# the SmolLM2 GGUF is complete, compute-sanitizer memcheck, the benchmarks, optionally an ncu
# profile of one decode step; logs under $OUT and a short table last (summary.txt).
#
#   tools/gpu_session.sh [budget_s] [profile|serve|load]      (run from the repository root on the GPU machine)
#   tools/gpu_session.sh budget_s stages STAGE...            (only the named stages, in this order)
#
# Stages: tests (GPU tests), model (real SmolLM2 CUDA vs CPU + its bench; needs the GGUF), bench8 (8B fp8),
# ab (8B fp8 with each fast path switched off in turn), serve_decode (the decode-bound server run only), serve_external (the same with the server in its own process), sync (pipelined against --sync-each-step decode; serve with a small pool), ab3 (this session's switches: PDL, decode attention, grouped GEMM; bf16 b1; 70B), ncu_attention (decode attention kernel times), final7 (version 7's figures for issue 3's table, attention split sweep), check7 (the mid-session check: merged default and each new switch, 8B), ab7 (version 7's switches: fused products, decode attention v1, 70B with the four-block GEMV, bf16 and FP8 vocabulary b1), ncu_detail (ncu --set full on the decode attention, GEMV and prefill attention kernels; DETAIL_RUNS selects), gemv (8B b1, with the FP8 LM head, 70B b1), final (70B, bf16, FP8 vocabulary, decode-attention and PDL switches), bench70 (70B fp8), bf16 (8B bf16), vocab (8B with an FP8
# LM head and table, and bf16 batch 1), ab2 (skinny GEMM and GEMM epilogue switches, 70B), serve, load,
# sanitizer, profile (ncu per-kernel times of 8B decode b1 / b64, 8B prefill 4096, 70B decode b1), gemv_rows (GEMV against cuBLASLt at
# 9–16 rows), lines (the bench runs listed in the file $BENCH_LINES, "label|ENV=value ...|bench arguments" a line). The build always runs first.
#
# load: after the tests, only load speed (issue 4 part 6): writes a Llama-3.1-8B-shaped checkpoint
# of LOAD_LAYERS layers (default 16: 9.1 GB BF16, 5.5 GB FP8; 32 layers are 16.1 GB BF16) in BF16 and in ModelOpt FP8 (tools/make_random_hf_checkpoint.py),
# then loads each with `octet query ... --device cuda`, printing octet's "loaded … GB/s" line and the
# peak RSS. The files were just written, so they sit in the page cache: conversion speed, not disk speed.
#
# serve: after the tests, only the 8B fp8 benchmark and the server under load (`octet bench serve`,
# 64 clients, 1024 in / 256 out, 8B random weights) against the bare engine's batch-64 decode.
#
# The GGUF (94 MiB) is larger than one transfer, so it travels in two halves: a call that carries
# .gpu_carry/part_a leaves it in /root (kept while the machine stays warm); a call that carries
# part_b joins the two. With either half missing the real-model tests are skipped, saying so.
# tools/make_gpu_carry.sh builds .gpu_carry from this machine's Debian packages.
# pcre2's header and library travel in .gpu_carry/pcre2 (the machine has no libpcre2-dev); the
# carry folder is looked for here and one level up (the checkout may sit inside the lead's tree).
# Stages past the time budget (default 440 s) are skipped, so the call ends inside its limit.
set -uo pipefail
budget="${1:-440}"
profile="${2:-}"
out="${OUT:-/tmp/out}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
left() { echo $((budget - SECONDS)); }
carry=.gpu_carry
[[ -d "$carry" ]] || carry=../.gpu_carry

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee -a "$summary"
[[ -f "$carry/part_a" ]] && cp "$carry/part_a" /root/smollm2.part_a
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -f /root/smollm2.part_a && -f "$carry/part_b" ]]; then
  mkdir -p models && rm -f "$model" && cat /root/smollm2.part_a "$carry/part_b" >"$model"
  note "model: $(sha256sum "$model" | cut -c1-16)… (expected b179c9523d0e6a0f)"
else
  note "model: SmolLM2 halves not both here (part_a in /root: $([[ -f /root/smollm2.part_a ]] && echo yes || echo no), part_b carried: $([[ -f "$carry/part_b" ]] && echo yes || echo no)): real-model CUDA tests skipped"
fi

# cpp-httplib (with the OpenSSL, zlib and Brotli headers its Debian build needs) travels the same way.
export PKG_CONFIG_PATH="$PWD/$carry/pcre2/lib/pkgconfig:$PWD/$carry/httplib/lib/pkgconfig"
export LD_LIBRARY_PATH="$PWD/$carry/pcre2/lib:$PWD/$carry/httplib/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  cmake -G Ninja -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DOCTET_BENCH=OFF &&
    ninja -C build-gpu -j16
} >"$out/build.log" 2>&1 || {
  note "BUILD FAILED"
  grep -E "error|Error" -A3 "$out/build.log" | head -60
  exit 1
}
note "build: ok at ${SECONDS}s"

bench() {  # name, seconds, args...
  local name="$1" limit="$2"
  shift 2
  if (($(left) < limit / 2)); then
    note "$name: skipped (time budget)"
    return
  fi
  echo "== $name: ${BENCH_ENV:+$BENCH_ENV }octet bench $*" >>"$out/bench.txt"
  env ${BENCH_ENV:-} timeout "$limit" build-gpu/octet bench "$@" >>"$out/bench.txt" 2>&1
  note "$name: rc $? at ${SECONDS}s"
}
stage_tests() {
  echo "== GPU tests" | tee "$out/tests.log"
  timeout 240 build-gpu/octet_tests --gtest_filter='Cuda*:CudaDevice*' >>"$out/tests.log" 2>&1
  note "GPU tests: rc $? — $(grep -E '^\[  (PASSED|FAILED) ' "$out/tests.log" | tr '\n' ' ')"
  grep -E "FAILED|Failure|Expected|Which|Value of|error" "$out/tests.log" | grep -v "worst row error" | head -80
}
stage_model() {
  [[ -f "$model" ]] || return 0
  echo "== real model" >>"$out/tests.log"
  timeout 400 build-gpu/octet_tests --gtest_filter="${MODEL_FILTER:-LlamaReference.Cuda*}" >>"$out/tests.log" 2>&1
  note "SmolLM2 CUDA vs CPU: rc $? — $(grep -E 'agreement|^\[  (PASSED|FAILED) ' "$out/tests.log" | tail -3 | tr '\n' ' ')"
  timeout 30 build-gpu/octet bench --device cuda --precision fp8,bf16 >>"$out/bench.txt" 2>&1
}
stage_bench8() { bench "8B fp8" 100 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8; }
stage_ab() {  # each fast path off in turn, against stage_bench8's figures
  local b="--precision fp8 --prefill 128"
  OCTET_CUDA_PDL=0 bench "8B fp8, OCTET_CUDA_PDL=0 (plain launches)" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 1,8,64
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 1,8,64
  OCTET_CUDA_TC_ATTENTION=0 bench "8B fp8, OCTET_CUDA_TC_ATTENTION=0" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 1024,4096 --batch 1
  OCTET_CUDA_ROW_KERNELS=0 bench "8B fp8, OCTET_CUDA_ROW_KERNELS=0" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 1,8,64
  OCTET_CUDA_TENSOR_GEMV=all bench "8B fp8, OCTET_CUDA_TENSOR_GEMV=all" 30 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 1
  OCTET_CUDA_GEMM_TUNE=0 bench "8B fp8, OCTET_CUDA_GEMM_TUNE=0" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 32,64,128
  OCTET_CUDA_GRAPHS=0 bench "8B fp8 eager (no graphs)" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 1,64
  OCTET_CUDA_SKINNY_GEMM=1 bench "8B fp8, OCTET_CUDA_SKINNY_GEMM=1 (off by default)" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json $b --batch 17,32,64,128
  OCTET_CUDA_GEMM_EPILOGUE_SCALES=0 bench "8B fp8, OCTET_CUDA_GEMM_EPILOGUE_SCALES=0" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 1024,4096 --batch 32,64
  OCTET_CUDA_GEMM_TUNE_ROWS=4096 bench "8B fp8, OCTET_CUDA_GEMM_TUNE_ROWS=4096 (off by default)" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 1024,4096 --batch 1
  OCTET_CUDA_GEMM_FAST_ACCUM=1 bench "8B fp8, OCTET_CUDA_GEMM_FAST_ACCUM=1 (off by default)" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 1024,4096 --batch 1
}
stage_ab2() {  # the second round's switches: skinny GEMM on (off by default), GEMM epilogue scales off
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  OCTET_CUDA_SKINNY_GEMM=1 bench "8B fp8, OCTET_CUDA_SKINNY_GEMM=1" 40 $m8 --prefill 128 --batch 17,32,64,128
  OCTET_CUDA_GEMM_EPILOGUE_SCALES=0 bench "8B fp8, OCTET_CUDA_GEMM_EPILOGUE_SCALES=0" 40 $m8 --prefill 1024,4096 --batch 64
  bench "70B fp8 prefill and batch 32, 64" 80 $m70 --prefill 1024,4096 --batch 1,32,64
  OCTET_CUDA_SKINNY_GEMM=1 bench "70B fp8, OCTET_CUDA_SKINNY_GEMM=1" 80 $m70 --prefill 128 --batch 32,64
  OCTET_CUDA_GEMM_EPILOGUE_SCALES=0 bench "70B fp8, OCTET_CUDA_GEMM_EPILOGUE_SCALES=0" 80 $m70 --prefill 1024,4096 --batch 1
  OCTET_CUDA_GEMM_TUNE=0 bench "8B fp8, OCTET_CUDA_GEMM_TUNE=0" 40 $m8 --prefill 128 --batch 32,64
  OCTET_CUDA_GEMM_FAST_ACCUM=1 bench "8B fp8, OCTET_CUDA_GEMM_FAST_ACCUM=1 (off by default)" 40 $m8 --prefill 1024,4096 --batch 1
  OCTET_CUDA_SKINNY_GEMM=1 timeout 120 build-gpu/octet --log-level debug bench serve --device cuda \
    --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --clients 64 --requests 64 --input-tokens 16 \
    --output-tokens 256 --max-context 1280 >>"$out/bench.txt" 2>&1
  note "serve decode-bound, OCTET_CUDA_SKINNY_GEMM=1: rc $? at ${SECONDS}s"
  for run in 1 2 3; do  # the grouped-linears test failed once under compute-sanitizer at this seed: seed or race?
    OCTET_TEST_SEED=3420012063 build-gpu/octet_tests --gtest_filter='CudaVsCpu.GroupedLinears*' >>"$out/tests.log" 2>&1
    note "GroupedLinears at seed 3420012063, run $run: rc $?"
  done
}
stage_ab3() {  # this session's switches, each against the default (bench8 gives the defaults)
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  OCTET_CUDA_PDL=0 bench "8B fp8, OCTET_CUDA_PDL=0" 40 $m8 --prefill 128 --batch 1,8,64
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 40 $m8 --prefill 128 --batch 1,8,64
  OCTET_CUDA_GROUPED_GEMM=0 bench "8B fp8, OCTET_CUDA_GROUPED_GEMM=0" 40 $m8 --prefill 128 --batch 32,64,128
  bench "8B bf16, batch 1" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision bf16 --prefill 128 --batch 1
  bench "70B fp8 prefill 4096, b1 (default)" 80 $m70 --prefill 4096 --batch 1
  OCTET_CUDA_PDL=0 bench "70B fp8, OCTET_CUDA_PDL=0" 80 $m70 --prefill 128 --batch 1
}
stage_ab7() {  # this session's switches (version 7), each against the default (bench8 gives the defaults)
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  OCTET_CUDA_FUSED_PRODUCTS=0 bench "8B fp8, OCTET_CUDA_FUSED_PRODUCTS=0" 40 $m8 --prefill 128 --batch 32,64,128
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 40 $m8 --prefill 128 --batch 1,8,64
  bench "70B fp8 (default)" 90 $m70 --prefill 1024,4096 --batch 1,8,64
  OCTET_CUDA_TENSOR_GEMV_BLOCKS=1 bench "70B fp8, OCTET_CUDA_TENSOR_GEMV_BLOCKS=1 (the compiler's build)" 60 $m70 --prefill 128 --batch 1
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "70B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 60 $m70 --prefill 128 --batch 1
  bench "8B bf16, batch 1" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision bf16 --prefill 128 --batch 1
  bench "8B fp8, FP8 LM head and table" 40 $m8 --prefill 128 --batch 1,64 llm.lm_head_precision=fp8 llm.embedding_precision=fp8
}
stage_check7() {  # the mid-session check of version 7: the merged default and each new switch, 8B only
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 128"
  bench "8B fp8 (merged default)" 60 $m8 --batch 1,8,32,64,128
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 40 $m8 --batch 1,8,64
  for blocks in 512 1024 4096; do
    OCTET_CUDA_GROUPED_ATTENTION_BLOCKS=$blocks bench "8B fp8, OCTET_CUDA_GROUPED_ATTENTION_BLOCKS=$blocks" 30 $m8 --batch 8,64
  done
  OCTET_CUDA_FUSED_PRODUCTS=0 bench "8B fp8, OCTET_CUDA_FUSED_PRODUCTS=0" 40 $m8 --batch 32,64,128
}
stage_final7() {  # version 7's figures for issue 3's table from one binary, and the attention split sweep
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  bench "8B fp8" 100 $m8
  for blocks in 256 2048; do
    OCTET_CUDA_GROUPED_ATTENTION_BLOCKS=$blocks bench "8B fp8, OCTET_CUDA_GROUPED_ATTENTION_BLOCKS=$blocks" 30 $m8 --prefill 128 --batch 8,64
  done
  bench "70B fp8" 90 $m70 --prefill 1024,4096 --batch 1,8,64
  OCTET_CUDA_TENSOR_GEMV_BLOCKS=1 bench "70B fp8, OCTET_CUDA_TENSOR_GEMV_BLOCKS=1 (the compiler's build)" 50 $m70 --prefill 128 --batch 1
  bench "8B bf16, batch 1" 40 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision bf16 --prefill 128 --batch 1
  bench "8B fp8, FP8 LM head and table" 40 $m8 --prefill 128 --batch 1,64 llm.lm_head_precision=fp8 llm.embedding_precision=fp8
}
stage_gemv() {  # the one-row GEMV (gemv_fp8.cu) at 8B b1, with the FP8 LM head, and 70B b1
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 128"
  bench "8B fp8 b1 (default GEMV)" 40 $m8 --batch 1
  bench "8B fp8 b1, FP8 LM head" 40 $m8 --batch 1 llm.lm_head_precision=fp8
  bench "70B fp8 b1 (tensor-core GEMV: unchanged)" 80 --dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --prefill 128 --batch 1
}
stage_ncu_attention() {  # per-launch times of the decode attention kernels only, 8B b1 and b64 at context 1024
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16 --steps 2"
  for batch in 1 64; do
    ((($(left)) < 50)) && { note "ncu attention b$batch: skipped (time budget)"; continue; }
    OCTET_CUDA_GEMM_TUNE=0 timeout 60 ncu --clock-control none -k regex:attention --metrics gpu__time_duration.sum \
      build-gpu/octet bench $m8 --batch $batch >"$out/ncu_attention_b$batch.txt" 2>&1
    note "ncu attention b$batch: rc $? — $(grep -E 'attention|gpu__time_duration' "$out/ncu_attention_b$batch.txt" | \
      tail -4 | tr -s ' ' | tr '\n' ' ')"
  done
}
stage_ncu_detail() {  # ncu's full sections (occupancy, stall reasons, memory) for the kernels that miss their roofline
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16 --steps 2"
  # name;environment;kernel regex;launches skipped;launches profiled;bench arguments. The 16-token prefill's four
  # passes come first (grouped attention and tensor-core GEMVs: 128 and 512 launches; under
  # OCTET_CUDA_DECODE_ATTENTION=v1 the prefill too runs v1 and its merge: 256), then two unprofiled decode steps.
  local -a runs=("attn_b64;;regex:grouped_attention;192;1;$m8 --batch 64"
    "attn_b1_v2;OCTET_CUDA_DECODE_ATTENTION=v2;regex:grouped_attention;192;1;$m8 --batch 1"
    "attn_b1_v1;OCTET_CUDA_DECODE_ATTENTION=v1;regex:attention_(kernel|combine);384;2;$m8 --batch 1"
    "gemv_b1;;regex:gemv_e4m3_kernel;256;4;$m8 --batch 1"
    "prefill_attn_4096;;regex:prefill_attention;0;1;--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 4096 --batch 1 --steps 1")
  for run in "${runs[@]}"; do
    IFS=';' read -r name environment kernel skip count args <<<"$run"
    [[ -n "${DETAIL_RUNS:-}" && " $DETAIL_RUNS " != *" $name "* ]] && continue
    if (($(left) < 45)); then note "ncu detail $name: skipped (time budget)"; continue; fi
    env $environment OCTET_CUDA_GEMM_TUNE=0 timeout 90 ncu --clock-control none --set full -k "$kernel" \
      --launch-skip "$skip" --launch-count "$count" build-gpu/octet bench $args >"$out/detail_$name.txt" 2>&1
    note "ncu detail $name: rc $? at ${SECONDS}s"
  done
}
stage_final() {  # the figures of issue 3's table from one binary: 70B, bf16 and the FP8 vocabulary beside stage_bench8
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  bench "70B fp8" 80 $m70 --prefill 1024,4096 --batch 1,8,64
  bench "8B bf16" 40 $m8 --precision bf16 --prefill 128 --batch 1
  bench "8B fp8, FP8 LM head and table" 40 $m8 --precision fp8 --prefill 128 --batch 1,64 llm.lm_head_precision=fp8 llm.embedding_precision=fp8
  OCTET_CUDA_DECODE_ATTENTION=v2 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v2 (grouped at every batch)" 40 $m8 --precision fp8 --prefill 128 --batch 1,2,4,8
  OCTET_CUDA_DECODE_ATTENTION=v1 bench "8B fp8, OCTET_CUDA_DECODE_ATTENTION=v1" 40 $m8 --precision fp8 --prefill 128 --batch 2,4
  OCTET_CUDA_PDL=0 bench "70B fp8, OCTET_CUDA_PDL=0" 60 $m70 --prefill 128 --batch 1
}
stage_bench70() {
  bench "70B fp8" 110 --dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --batch 1,8,32,64
  OCTET_CUDA_GEMM_EPILOGUE_SCALES=0 bench "70B fp8, OCTET_CUDA_GEMM_EPILOGUE_SCALES=0" 80 \
    --dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --prefill 1024,4096 --batch 1
  OCTET_CUDA_TENSOR_GEMV=all bench "70B fp8, OCTET_CUDA_TENSOR_GEMV=all" 80 \
    --dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --prefill 128 --batch 1
}
stage_vocab() {  # issue 3's memory and FP8-vs-BF16 target: FP8 LM head and embedding table against bf16
  bench "8B fp8, FP8 LM head and table" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 \
    --prefill 128 --batch 1,64 llm.lm_head_precision=fp8 llm.embedding_precision=fp8
  bench "8B bf16, batch 1" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision bf16 --prefill 128 --batch 1
}
stage_bf16() { bench "8B bf16" 70 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision bf16; }
stage_serve() {
  echo "== serve: octet bench serve (8B random weights, 64 clients, 1024 in / 256 out)" >>"$out/bench.txt"
  timeout 240 build-gpu/octet --log-level debug bench serve --device cuda --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --clients 64 --requests 128 --input-tokens 1024 --output-tokens 256 --max-context 1280 >>"$out/bench.txt" 2>&1
  note "bench serve 8B: rc $? at ${SECONDS}s"
  echo "== serve, decode-bound: 64 clients, 16 in / 256 out" >>"$out/bench.txt"
  timeout 120 build-gpu/octet --log-level debug bench serve --device cuda --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --clients 64 --requests 64 --input-tokens 16 --output-tokens 256 --max-context 1280 >>"$out/bench.txt" 2>&1
  note "bench serve 8B decode-bound: rc $? at ${SECONDS}s"
  grep -E "scheduler: .* steps|output tok/s|^ +[0-9.]+ +[0-9.]+ +[0-9.]+ " "$out/bench.txt" | tail -12 | tee -a "$summary"
  bench "8B fp8 batch 64, context 1024 and 144" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 \
    --prefill 128 --batch 64 --context 1024
  bench "8B fp8 batch 64, context 144 (the decode-bound run's mean)" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --precision fp8 --prefill 128 --batch 64 --context 144
}
stage_serve_decode() {  # only the decode-bound server run, against the bare batch 64 at its mean context
  echo "== serve, decode-bound: 64 clients, 16 in / 256 out" >>"$out/bench.txt"
  # SM clock and power every 100 ms while it runs: a server's sustained load against a short bench.
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader -lms 100 \
    >"$out/smi.csv" 2>&1 &
  local smi=$!
  timeout 120 build-gpu/octet --log-level debug bench serve --device cuda --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --clients 64 --requests 64 --input-tokens 16 --output-tokens 256 --max-context 1280 >>"$out/bench.txt" 2>&1
  note "bench serve 8B decode-bound: rc $? at ${SECONDS}s"
  grep -E "scheduler: .* steps" "$out/bench.txt" | tail -4 | tee -a "$summary"
  bench "8B fp8 batch 64, context 144 (the decode-bound run's mean)" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --precision fp8 --prefill 128 --batch 64 --context 144
  bench "8B fp8 batch 64, context 144, 320 steps (as long as the server run)" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --precision fp8 --prefill 128 --batch 64 --context 144 --steps 320
  kill $smi 2>/dev/null
  note "SM clock MHz min/median/max over the stage: $(cut -d, -f2 "$out/smi.csv" | grep -oE '[0-9]+' | sort -n | awk '{a[NR]=$1} END {if (NR) print a[1], a[int((NR+1)/2)], a[NR]}')"
}
stage_sync() {  # issue 6: does waiting for every step (as the server must) cost what the server loses?
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16"
  bench "8B fp8 b1/b64 at context 144, pipelined" 40 $m8 --batch 1,64 --context 144
  bench "8B fp8 b1/b64 at context 144, --sync-each-step" 40 $m8 --batch 1,64 --context 144 --sync-each-step
  echo "== serve, decode-bound, engine.gpu_memory_utilization=0.2 (a small KV pool)" >>"$out/bench.txt"
  timeout 120 build-gpu/octet --log-level debug bench serve --device cuda --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --clients 64 --requests 64 --input-tokens 16 --output-tokens 256 --max-context 1280 engine.gpu_memory_utilization=0.2 >>"$out/bench.txt" 2>&1
  note "bench serve decode-bound, small pool: rc $? at ${SECONDS}s"
  grep -E "scheduler: .* steps" "$out/bench.txt" | tail -2 | tee -a "$summary"
}
stage_serve_external() {  # issue 6: the server in its own process (no CPU contention with the load generator)
  local log="$out/serve_external.log" url=127.0.0.1:8123
  build-gpu/octet --log-level debug serve --device cuda --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --port 8123 --max-concurrency 64 --max-context 1280 >"$log" 2>&1 &
  local server=$!
  for _ in $(seq 240); do grep -q "listening on" "$log" && break; sleep 0.5; done
  grep -E "recorded before serving|listening on" "$log" | tee -a "$summary"
  local -a runs=("decode-bound: 64 clients, 16 in / 256 out|--requests 64 --input-tokens 16"
    "64 clients, 1024 in / 256 out, first run|--requests 128 --input-tokens 1024"
    "64 clients, 1024 in / 256 out, second run|--requests 128 --input-tokens 1024")
  for run in "${runs[@]}"; do
    IFS='|' read -r name args <<<"$run"
    echo "== serve (its own process), $name" >>"$out/bench.txt"
    timeout 120 build-gpu/octet bench serve --url $url --clients 64 $args --output-tokens 256 >>"$out/bench.txt" 2>&1
    note "bench serve --url, $name: rc $? at ${SECONDS}s — $(grep -A1 "output tok/s" "$out/bench.txt" | tail -1 | tr -s ' ')"
  done
  kill -TERM $server 2>/dev/null
  wait $server
  grep -E "scheduler: .* steps" "$log" | tail -8 | tee -a "$summary"
  bench "8B fp8 prefill 1024, batch 64 at context 1024 (the 1024-in run's bare work)" 60 \
    --dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 1024 --batch 64 --context 1024
  bench "8B fp8 batch 64, context 144 (the decode-bound run's mean)" 60 --dummy-weights configs/models/Llama-3.1-8B-Instruct.json \
    --precision fp8 --prefill 128 --batch 64 --context 144
}
stage_load() {
  layers="${LOAD_LAYERS:-16}"
  python3 -c "import numpy" 2>/dev/null || note "load: python3 has no numpy (tools/make_random_hf_checkpoint.py needs it)"
  df -h /root | tail -1 | tee -a "$summary"
  free -g | head -2 | tee -a "$summary"
  tokenizer=/root/load-tokenizer
  if [[ -f "$model" ]] && timeout 60 build-gpu/octet quantize "$model" "$tokenizer" >"$out/load.txt" 2>&1; then
    # Runs the command, then prints its peak RSS (the machine may lack /usr/bin/time).
    peak_rss='import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; print(f"peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB, rc {rc}")'
    for kind in bf16 fp8; do
      dir=/root/load-8b-$kind
      rm -rf "$dir"
      start=$SECONDS
      timeout 90 python3 tools/make_random_hf_checkpoint.py configs/models/Llama-3.1-8B-Instruct.json "$dir" --layers "$layers" \
        --tokenizer-from "$tokenizer" $([[ $kind == fp8 ]] && echo --fp8) >>"$out/load.txt" 2>&1
      note "load $kind: wrote $(du -sh "$dir" | cut -f1) ($layers layers) in $((SECONDS - start)) s"
      for stored in 1 0; do
        [[ $kind == bf16 && $stored == 0 ]] && continue  # the host float32 path: ~0.3 GB/s, over the budget
        echo "== load $kind OCTET_STORED_UPLOAD=$stored" >>"$out/load.txt"
        OCTET_STORED_UPLOAD=$stored timeout 100 python3 -c "$peak_rss" build-gpu/octet --log-level debug query \
          --model "$dir" hi --max-tokens 1 --device cuda --max-context 256 >>"$out/load.txt" 2>&1
        note "load $kind (OCTET_STORED_UPLOAD=$stored): $(grep -oE 'loaded .* GB/s[^,]*' "$out/load.txt" | tail -1); $(grep -E '^peak RSS' "$out/load.txt" | tail -1)"
      done
      rm -rf "$dir"
    done
  else
    note "load: skipped (needs the SmolLM2 GGUF for a tokenizer; see $out/load.txt)"
  fi
}
stage_sanitizer() {
  if (($(left) > 40)); then
    cap=$(($(left) - 20)); ((cap > 150)) && cap=150
    # SANITIZER_FILTER (default every Cuda* test) narrows it to the suites a change touched.
    timeout "$cap" compute-sanitizer --tool memcheck --leak-check no build-gpu/octet_tests \
      --gtest_filter="${SANITIZER_FILTER:-Cuda*}" >"$out/sanitizer.log" 2>&1
    note "compute-sanitizer memcheck: rc $? — $(grep -E 'ERROR SUMMARY' "$out/sanitizer.log" | tail -1) $(grep -E '^\[  (PASSED|FAILED) ' "$out/sanitizer.log" | tr '\n' ' ')"
  else
    note "compute-sanitizer: skipped (time budget)"
  fi
}
stage_gemv_rows() {  # where the GEMV stops beating cuBLASLt: 8B at 9–16 rows, the GEMV (OCTET_CUDA_GEMV_MAX_ROWS=16) against the default
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 16 --batch 9,12,16"
  OCTET_CUDA_GEMV_MAX_ROWS=16 bench "8B fp8 9-16 rows, OCTET_CUDA_GEMV_MAX_ROWS=16 (GEMV)" 40 $m8
  bench "8B fp8 9-16 rows, default (cuBLASLt)" 40 $m8
}
stage_lines() {  # the bench runs listed in $BENCH_LINES (a file): "label|ENV=value ...|octet bench arguments" a line
  [[ -f "${BENCH_LINES:-}" ]] || { note "lines: no BENCH_LINES file"; return; }
  local label environment args
  while IFS='|' read -r label environment args; do
    [[ -z "$label" || "$label" == \#* ]] && continue
    BENCH_ENV="$environment" bench "$label" 60 $args
  done <"$BENCH_LINES"
}
stage_profile() {  # ncu per-kernel times (serialised kernels, clocks not locked); tables by tools/ncu_kernel_table.py
  local m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8"
  local m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8"
  local -a runs=("b1|10|$m8 --prefill 16 --batch 1 --steps 8" "b64|10|$m8 --prefill 16 --batch 64 --steps 8"
    "prefill4096|4|$m8 --prefill 4096 --batch 1 --steps 1" "70b_b1|6|$m70 --prefill 16 --batch 1 --steps 4")
  for run in "${runs[@]}"; do
    IFS='|' read -r name per args <<<"$run"
    # PROFILE_RUNS="b64 b1" (say) profiles only those runs.
    [[ -n "${PROFILE_RUNS:-}" && " $PROFILE_RUNS " != *" $name "* ]] && continue
    if (($(left) < 60)); then note "ncu $name: skipped (time budget)"; continue; fi
    # Tuning off: its candidate timings would add launches that no step makes.
    OCTET_CUDA_GEMM_TUNE=0 timeout $(($(left) - 30)) ncu --clock-control none --csv --page raw \
      --metrics gpu__time_duration.sum build-gpu/octet bench $args >"$out/ncu_$name.csv" 2>"$out/ncu_$name.log"
    note "ncu $name: rc $? at ${SECONDS}s"
    python3 tools/ncu_kernel_table.py "$out/ncu_$name.csv" --per "$per" --top 30 >"$out/ncu_$name.txt" 2>&1
    head -25 "$out/ncu_$name.txt"
  done
}

if [[ "$profile" == stages ]]; then
  shift 2
  stages=("$@")
else  # the fixed sessions of earlier versions of this script
  case "$profile" in
    serve) stages=(tests model bench8 serve sanitizer) ;;
    load) stages=(tests model load sanitizer) ;;
    profile) stages=(tests model bench8 bench70 bf16 ab sanitizer profile) ;;
    *) stages=(tests model bench8 bench70 bf16 ab sanitizer) ;;
  esac
fi
for stage in "${stages[@]}"; do
  if ! declare -F "stage_$stage" >/dev/null; then
    note "unknown stage: $stage"
    continue
  fi
  "stage_$stage"
done

echo "== summary (${SECONDS}s)"
cat "$summary"
grep -v "\[info\]" "$out/bench.txt" | head -120
