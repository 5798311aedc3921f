#!/usr/bin/env bash
# Prints the CMAKE_ARGS that llama-cpp-python is compiled with: x86-64 instruction sets chosen by
# *running* one instruction of each set in a child process, not by reading /proc/cpuinfo.
#
# Why: llama.cpp's default build is -march=native, which trusts the CPU's advertised flags. Some
# VMs advertise instructions the hypervisor or kernel does not allow (AMX on recent Xeons: the
# first `tilezero` dies with SIGILL). A set is enabled only when a program using it runs here.
# AMX is never enabled: it needs a per-process kernel permission that VMs often refuse, and the
# generator's batched path runs on an F16 weight copy that AMX kernels do not cover.
# Overrides, first found wins: SYNTH_LLAMA_CMAKE_ARGS (for example a CUDA build: docs/installing.md),
# then .venv/llama_cmake_args (written by scripts/rebuild_llama.sh, kept for later set-ups).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SYNTH_LLAMA_CMAKE_ARGS:-}" ]; then echo "$SYNTH_LLAMA_CMAKE_ARGS"; exit 0; fi
args_file=${SYNTH_LLAMA_ARGS_FILE:-.venv/llama_cmake_args}
if [ -s "$args_file" ]; then cat "$args_file"; exit 0; fi
case "$(uname -m)" in
  x86_64|amd64) ;;
  *) echo "-DGGML_NATIVE=OFF"; exit 0 ;;  # other architectures: ggml's portable defaults
esac
cc=${CC:-gcc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# runs(name, gcc flags, asm): compile a program executing `asm` and run it; 0 when it runs.
runs() {
  printf 'int main(void){ __asm__ volatile(%s); return 0; }\n' "$3" > "$tmp/$1.c"
  "$cc" -O0 $2 "$tmp/$1.c" -o "$tmp/$1" 2>/dev/null && "$tmp/$1" 2>/dev/null
}
args=(-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
on() { args+=("-D$1=ON"); }
off() { args+=("-D$1=OFF"); }
if runs sse42 -msse4.2 '"crc32l %%eax, %%eax" ::: "eax"'; then on GGML_SSE42; else off GGML_SSE42; fi
if runs avx -mavx '"vxorps %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"'; then on GGML_AVX; else off GGML_AVX; fi
if runs f16c -mf16c '"vcvtph2ps %%xmm0, %%ymm0" ::: "xmm0"'; then on GGML_F16C; else off GGML_F16C; fi
if runs fma -mfma '"vfmadd231ps %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"'; then on GGML_FMA; else off GGML_FMA; fi
if runs avx2 -mavx2 '"vpaddd %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"'; then on GGML_AVX2; else off GGML_AVX2; fi
if runs bmi2 -mbmi2 '"pdep %%eax, %%eax, %%eax" ::: "eax"'; then on GGML_BMI2; else off GGML_BMI2; fi
if runs avxvnni -mavxvnni '"%{vex%} vpdpbusd %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"'; then on GGML_AVX_VNNI; else off GGML_AVX_VNNI; fi
# AVX-512: the zmm registers and opmasks must be enabled by the OS (XCR0), not only advertised
if runs avx512 "-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512cd" \
     '"vpaddd %%zmm0, %%zmm0, %%zmm0\n\tkmovw %%k1, %%eax\n\tvpabsb %%zmm1, %%zmm1" ::: "xmm0", "xmm1", "eax"'; then
  on GGML_AVX512
  if runs vbmi -mavx512vbmi '"vpermb %%zmm0, %%zmm0, %%zmm0" ::: "xmm0"'; then on GGML_AVX512_VBMI; else off GGML_AVX512_VBMI; fi
  if runs vnni -mavx512vnni '"vpdpbusd %%zmm0, %%zmm0, %%zmm0" ::: "xmm0"'; then on GGML_AVX512_VNNI; else off GGML_AVX512_VNNI; fi
  if runs bf16 "-mavx512bf16 -mavx512f" '"vdpbf16ps %%zmm0, %%zmm0, %%zmm0" ::: "xmm0"'; then on GGML_AVX512_BF16; else off GGML_AVX512_BF16; fi
else
  off GGML_AVX512; off GGML_AVX512_VBMI; off GGML_AVX512_VNNI; off GGML_AVX512_BF16
fi
echo "${args[*]}"
