"""Does the compiled llama.cpp run on this machine? Checked once at set-up, in a child process.

llama-cpp-python is compiled at set-up (``scripts/llama_cmake_args.sh`` picks the instruction
sets by running one of each). A build can still use an instruction the machine does not allow:
a CPU flag the hypervisor hides, a build copied from another machine, a user's own CMAKE_ARGS.
Then the first decoding step dies with SIGILL, with no message, twenty minutes into a run. So
set-up loads the embedded model and decodes a few tokens in a child process, and if the child
dies with a signal, stops with one line that names the signal and the command that rebuilds.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from synth_assets.core.errors import SynthConfigError

REBUILD = "bash scripts/rebuild_llama.sh baseline"
CHILD = [sys.executable, "-m", "synth_assets.core.generators.build_check", "--child"]
DECODE_TOKENS = 8


class BuildCheckFailed(SynthConfigError):
    """The child that loads the model and decodes died or failed: the message is one line."""


@dataclass(frozen=True)
class BuildCheck:
    seconds: float
    output: str


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def check_build(child: Sequence[str] = CHILD, timeout_s: float = 600.0) -> BuildCheck:
    """Run ``child`` (by default: load the embedded GGUF, decode a few tokens) and return its
    output; raise BuildCheckFailed with one line when it is killed by a signal or fails."""
    start = time.monotonic()
    try:
        proc = subprocess.run(list(child), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BuildCheckFailed(
            f"llama.cpp build check: loading the model and decoding {DECODE_TOKENS} tokens took "
            f"over {timeout_s:.0f} s; rebuild with: {REBUILD}"
        ) from None
    if proc.returncode < 0:
        name = _signal_name(-proc.returncode)
        why = (
            "the build uses an instruction this machine's CPU or VM does not allow"
            if -proc.returncode == signal.SIGILL
            else "the compiled library crashed"
        )
        raise BuildCheckFailed(
            f"llama.cpp build check: decoding died with {name} ({why}); rebuild for the x86-64 baseline with: {REBUILD}"
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildCheckFailed(f"llama.cpp build check: the decoding child exited {proc.returncode}: {last}")
    return BuildCheck(seconds=time.monotonic() - start, output=proc.stdout.strip())


def _decode() -> None:
    """The child: the embedded model, loaded as the generator loads it, decodes greedily."""
    from llama_cpp import Llama

    from synth_assets.core.generators.llama_backend import ensure_model_file

    llm = Llama(model_path=str(ensure_model_file()), n_ctx=256, n_threads=1, verbose=False)
    out = llm.create_completion("2 + 2 =", max_tokens=DECODE_TOKENS, temperature=0.0)
    print(f"decoded {out['usage']['completion_tokens']} tokens: {out['choices'][0]['text']!r}")


def main(argv: Sequence[str] | None = None, child: Sequence[str] = CHILD) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _decode()
        return 0
    try:
        result = check_build(child)
    except BuildCheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"llama.cpp build check: ok ({result.output}, {result.seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
