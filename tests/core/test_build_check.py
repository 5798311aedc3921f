"""The set-up check of the compiled llama.cpp, and the probe that picks its instruction sets.

A build that faults is forced for real: a child process executes ``ud2`` (the instruction x86
defines as always illegal) from executable memory, as a library compiled for instructions this
machine does not allow would, and dies with SIGILL."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from synth_assets.core.generators.build_check import REBUILD, BuildCheckFailed, check_build

ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "scripts" / "llama_cmake_args.sh"

FAULTING_LIBRARY = [
    sys.executable,
    "-c",
    """
import ctypes, mmap
code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
code.write(b"\\x0f\\x0b")  # ud2
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()
""",
]

x86_only = pytest.mark.skipif(os.uname().machine not in ("x86_64", "amd64"), reason="x86-64 instructions")


@x86_only
def test_a_build_that_dies_with_sigill_stops_setup_with_one_line_and_the_rebuild_command():
    with pytest.raises(BuildCheckFailed) as exc:
        check_build(FAULTING_LIBRARY)
    assert str(exc.value) == (
        "llama.cpp build check: decoding died with SIGILL (the build uses an instruction this machine's "
        f"CPU or VM does not allow); rebuild for the x86-64 baseline with: {REBUILD}"
    )


def test_a_child_that_fails_names_its_last_error_line():
    with pytest.raises(BuildCheckFailed, match=r"exited 3: no backends are loaded$"):
        check_build(
            [sys.executable, "-c", "import sys; print('x\\nno backends are loaded', file=sys.stderr); sys.exit(3)"]
        )


def test_the_command_line_check_exits_1_with_the_message_on_stderr(capsys):
    from synth_assets.core.generators import build_check

    crashing = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    assert (build_check.main([], child=crashing), capsys.readouterr().err.count("\n")) == (1, 1)


@pytest.mark.model
def test_the_installed_build_loads_the_model_and_decodes():
    result = check_build()
    assert result.output.startswith("decoded 8 tokens")


def _compiler_double(tmp_path: Path, faulting_flag: str) -> Path:
    """A named test double of the C compiler: it compiles as gcc does, except that a program
    built with ``faulting_flag`` executes ud2, as on a VM that advertises a set it traps."""
    cc = tmp_path / "cc-double"
    cc.write_text(f"""#!/usr/bin/env bash
for a in "$@"; do
  if [ "$a" = "{faulting_flag}" ]; then
    out=""; prev=""
    for b in "$@"; do [ "$prev" = "-o" ] && out=$b; prev=$b; done
    printf 'int main(void){{ __asm__ volatile("ud2"); return 0; }}\\n' | gcc -x c - -o "$out"; exit $?
  fi
done
exec gcc "$@"
""")
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    return cc


def _probe(env: dict[str, str]) -> list[str]:
    """The probe's flags, ignoring any choice kept by scripts/rebuild_llama.sh in this checkout."""
    base = {k: v for k, v in os.environ.items() if k != "SYNTH_LLAMA_CMAKE_ARGS"}
    env = {**base, "SYNTH_LLAMA_ARGS_FILE": "/nonexistent", **env}
    return subprocess.run(["bash", str(PROBE)], capture_output=True, text=True, check=True, env=env).stdout.split()


@x86_only
def test_the_probe_leaves_out_an_instruction_set_that_faults_when_run(tmp_path):
    args = _probe({"CC": str(_compiler_double(tmp_path, "-mavx512f"))})
    assert [a for a in args if a.startswith(("-DGGML_AVX512=", "-DGGML_AVX512_VNNI="))] == [
        "-DGGML_AVX512=OFF",
        "-DGGML_AVX512_VNNI=OFF",
    ]


def test_the_probe_never_enables_amx_nor_native():
    args = _probe({})
    assert {a for a in args if "AMX" in a or "NATIVE" in a} <= {
        "-DGGML_NATIVE=OFF",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
        "-DGGML_AMX_BF16=OFF",
    }


def test_the_environment_overrides_the_probe():
    assert _probe({"SYNTH_LLAMA_CMAKE_ARGS": "-DGGML_CUDA=on"}) == ["-DGGML_CUDA=on"]
