# Sourced by the one-call device scripts (tools/gpu_file_ab.sh, tools/gpu_wgmma_narrow_check.sh): the log folder,
# the carried libraries on the loader's path, the 8B / 70B bench arguments, and the build (tools/gpu_session.sh's).
set -uo pipefail
out="${OUT:-/tmp/out}"
mkdir -p "$out"
carry=.gpu_carry
[[ -d "$carry" ]] || carry=../.gpu_carry
export LD_LIBRARY_PATH="$PWD/$carry/pcre2/lib:$PWD/$carry/httplib/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
m8="--dummy-weights configs/models/Llama-3.1-8B-Instruct.json --precision fp8 --prefill 128"
m70="--dummy-weights configs/models/Llama-3.3-70B-Instruct.json --precision fp8 --prefill 128"

build_or_exit() {
  OUT="$out" tools/gpu_session.sh 300 stages >/dev/null 2>&1  # the build only
  [[ -x build-gpu/octet_tests ]] || { echo "build failed"; tail -30 "$out/build.log"; exit 1; }
  echo "built at ${SECONDS}s"
}
