#!/usr/bin/env bash
# Runs every test: set-up (packages, model, build), then the GoogleTest suite through CTest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${OCTET_BUILD_DIR:-$repo/build}"
"$repo/scripts/setup.sh"
cd "$repo"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 900
