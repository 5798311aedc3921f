"""Running model-written code where it cannot hurt anything: bubblewrap plus rlimits.

Each program runs as its own unprivileged uid (one per worker slot, so the process limit is
per sandbox) inside ``bwrap`` with every namespace unshared (no network), a read-only /usr,
a private tmpfs, and limits on CPU time, address space, processes and file size. A wall
clock timeout kills the whole session's process group. Output goes to files capped by the
file-size limit, then is read back truncated, so a program that prints gigabytes cannot
exhaust memory. Start-up costs about 40 ms per program on this machine.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from synth_assets.core.errors import SynthConfigError

log = logging.getLogger(__name__)

SANDBOX_UID_BASE = 61000


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 16
    max_output_bytes: int = 8192


@dataclass
class RunResult:
    status: str  # pass | fail | timeout | error
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    detail: str


def _default_python() -> str:
    # Debian's interpreter lives under /usr, which the sandbox mounts read-only; a pyenv or
    # venv interpreter under /root would not be readable by the sandbox's unprivileged uid.
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists():
            return candidate
    raise SynthConfigError(
        "verifier sandbox: no system Python under /usr (apt-get install -y python3-minimal), "
        "or set sandbox python_executable"
    )


class Sandbox:
    """Runs Python programs under bubblewrap; ``enabled=False`` runs them bare (unsafe)."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        enabled: bool = True,
        python_executable: str | None = None,
        workers: int | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.enabled = enabled
        self.python = python_executable or _default_python()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._slots = list(range(self.workers))
        self._slot_lock = threading.Lock()
        if enabled:
            self.bwrap = shutil.which("bwrap")
            if not self.bwrap:
                raise SynthConfigError(
                    "verifier sandbox: bubblewrap (bwrap) is not installed. Install it with "
                    "`apt-get install -y bubblewrap`, or set SYNTH_SANDBOX=off to run model-written "
                    "code without isolation (unsafe)."
                )
            if os.geteuid() != 0 and not self._userns_ok():
                raise SynthConfigError("verifier sandbox: bwrap cannot create namespaces on this machine")
        else:
            log.warning("SANDBOX DISABLED: model-written code runs without isolation (SYNTH_SANDBOX=off)")

    @staticmethod
    def _userns_ok() -> bool:
        r = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True)
        return r.returncode == 0

    def _argv(self) -> list[str]:
        if not self.enabled:
            return [self.python, "-I", "-S", "-"]
        return [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--chdir", "/tmp",
            "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", "/tmp",
            self.python, "-I", "-S", "-",
        ]  # fmt: skip

    def _preexec(self, slot: int):  # noqa: ANN202
        lim = self.limits
        uid = SANDBOX_UID_BASE + slot
        drop = os.geteuid() == 0 and self.enabled

        def apply() -> None:
            resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_s, lim.cpu_s + 1))
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_mb << 20, lim.memory_mb << 20))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_mb << 20, lim.max_file_mb << 20))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if drop:  # as root, RLIMIT_NPROC is ignored: run as a dedicated uid instead
                resource.setrlimit(resource.RLIMIT_NPROC, (lim.max_processes, lim.max_processes))
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        return apply

    def run_python(self, code: str) -> RunResult:
        with self._slot_lock:
            slot = self._slots.pop()
        try:
            return self._run(code, slot)
        finally:
            with self._slot_lock:
                self._slots.append(slot)

    def _run(self, code: str, slot: int) -> RunResult:
        lim = self.limits
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    preexec_fn=self._preexec(slot),
                    start_new_session=True,
                    cwd="/tmp",
                )
            except OSError as exc:
                return RunResult("error", None, "", "", time.perf_counter() - t0, f"sandbox failed to start: {exc}")
            timed_out = False
            try:
                proc.communicate(code.encode("utf-8", "replace"), timeout=lim.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            except BrokenPipeError:
                pass
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
            seconds = time.perf_counter() - t0
            stdout, stderr = _read_capped(out, lim.max_output_bytes), _read_capped(err, lim.max_output_bytes)
        rc = proc.returncode
        if timed_out:
            return RunResult("timeout", rc, stdout, stderr, seconds, f"wall-clock timeout after {lim.timeout_s}s")
        if rc == 0:
            return RunResult("pass", rc, stdout, stderr, seconds, "all tests passed")
        last = _last_line(stderr)
        # a signal kills the program: Popen reports -sig, bwrap exits with 128 + sig
        sig = -rc if rc < 0 else rc - 128 if self.enabled and 128 < rc < 160 else None
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and seconds >= lim.cpu_s):
            return RunResult("timeout", rc, stdout, stderr, seconds, f"CPU limit of {lim.cpu_s}s exceeded")
        if sig == signal.SIGXFSZ:
            return RunResult("error", rc, stdout, stderr, seconds, f"output or file size limit of {lim.max_file_mb} MB")
        if sig is not None:
            return RunResult("error", rc, stdout, stderr, seconds, f"killed by signal {signal.Signals(sig).name}")
        if "MemoryError" in last:
            return RunResult("error", rc, stdout, stderr, seconds, f"memory limit of {lim.memory_mb} MB: {last}")
        if last.startswith("bwrap:"):
            return RunResult("error", rc, stdout, stderr, seconds, f"sandbox error: {last}")
        return RunResult("fail", rc, stdout, stderr, seconds, last or f"exit code {rc}")

    def run_many(self, programs: list[str]) -> list[RunResult]:
        """Every program, ``workers`` at a time (sandboxes are processes: threads suffice)."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self.run_python, programs))


def _read_capped(f, limit: int) -> str:  # noqa: ANN001
    """The head and the last KB of a captured stream (the tail holds tracebacks and markers)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if size <= limit:
        return f.read().decode("utf-8", "replace")
    tail_n = min(1024, limit // 2)
    head = f.read(limit - tail_n).decode("utf-8", "replace")
    f.seek(size - tail_n)
    tail = f.read().decode("utf-8", "replace")
    return f"{head}\n...[truncated {size - limit} bytes]...\n{tail}"


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("...[truncated")]
    return lines[-1].strip()[:300] if lines else ""
