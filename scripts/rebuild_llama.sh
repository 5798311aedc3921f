#!/usr/bin/env bash
# Recompile llama-cpp-python in .venv, then check it (load the embedded model, decode in a child).
#   bash scripts/rebuild_llama.sh            the instruction sets this machine runs (as set-up does)
#   bash scripts/rebuild_llama.sh baseline   plain x86-64 (SSE2 only): slower, runs on any x86-64
#   SYNTH_LLAMA_CMAKE_ARGS="-DGGML_CUDA=on" bash scripts/rebuild_llama.sh    your own flags
# The choice is kept in .venv/llama_cmake_args, so later set-ups build the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "no .venv here: run bash scripts/quickstart.sh run first" >&2; exit 1; }
case "${1:-}" in
  baseline) args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_F16C=OFF -DGGML_FMA=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF" ;;
  "") rm -f .venv/llama_cmake_args; args=$(bash scripts/llama_cmake_args.sh) ;;
  *) echo "usage: bash scripts/rebuild_llama.sh [baseline]" >&2; exit 2 ;;
esac
echo "$args" > .venv/llama_cmake_args
echo "==> rebuilding llama-cpp-python with: $args"
. scripts/llama_build.sh
req=$(mktemp); trap 'rm -f "$req"' EXIT
llama_requirement "$req"
llama_compile "$req" "$args"
.venv/bin/python -m synth_assets.core.generators.build_check
# the set-up stamp of the compiled llama.cpp (scripts/quickstart.sh): the next set-up keeps this build
stamp=$(llama_stamp "$req" "$args")
echo "$stamp" > .venv/.llama_installed
echo "$stamp" > .venv/.build_checked
