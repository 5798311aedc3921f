"""Running model-written code where it cannot hurt anything: bubblewrap plus rlimits.

Programs run in batches. Each batch gets one ``bwrap`` sandbox, run as its own unprivileged
uid (one per worker slot, so the process limit is per sandbox) with every namespace unshared
(no network, own pids), a read-only /usr, a private tmpfs /tmp, no environment, and hard
limits on address space, file size and processes. Inside, ``sandbox_runner.py`` forks each
program with its own CPU, memory, file-size and process limits and a wall-clock timeout, then
kills everything the program left and empties /tmp before the next one. Starting bwrap and
an interpreter costs ~40 ms; a fork costs ~1 ms, which is why batches are worth it (see
bench/verify_throughput.py). A program that kills its runner gets an ``error`` verdict, and
the rest of its batch runs again in a fresh sandbox.
"""

from __future__ import annotations

import json
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
_RUNNER_SOURCE = (Path(__file__).parent / "sandbox_runner.py").read_text()

SANDBOX_UID_BASE = 61000
_PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Orphaned sandbox processes are re-parented to us, not to PID 1.

    bwrap's outer process can exit before its pid-1 child is reaped; the orphan then waits
    for PID 1 to reap it, and on machines whose init reaps rarely (container and microVM
    inits) those zombies pile up and count against the sandbox uid's process limit, until
    sandboxes fail to start. As a subreaper we reap them ourselves (``_reap_orphans``).
    """
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(active: set[int]) -> int:
    """Reap zombie bwrap processes re-parented to us that no Popen object is waiting for."""
    me, reaped = os.getpid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in active:
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me and state == "Z" and comm == "bwrap":
            try:
                os.waitpid(int(entry.name), os.WNOHANG)
                reaped += 1
            except ChildProcessError:
                pass
    return reaped


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
        batch_size: int = 16,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.enabled = enabled
        self.python = python_executable or _default_python()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.batch_size = max(1, batch_size)
        self._slots = list(range(self.workers))
        self._slot_lock = threading.Lock()
        self._active: set[int] = set()
        if enabled:
            _become_subreaper()
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
        runner = ["-I", "-S", "-c", _RUNNER_SOURCE]
        if not self.enabled:
            return [self.python, *runner]
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
            self.python, *runner,
        ]  # fmt: skip

    def _preexec(self, slot: int, batch: int):  # noqa: ANN202
        lim = self.limits
        uid = SANDBOX_UID_BASE + slot
        drop = os.geteuid() == 0 and self.enabled

        def apply() -> None:
            # hard caps for everything in the sandbox; each program also gets its own limits
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_mb << 20, lim.memory_mb << 20))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_mb << 20, lim.max_file_mb << 20))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            cpu = (lim.cpu_s + 1) * batch + 5
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            if drop:  # as root, RLIMIT_NPROC is ignored: run as a dedicated uid instead
                n = lim.max_processes + 4  # bwrap's two processes and the runner
                resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        return apply

    def run_python(self, code: str) -> RunResult:
        return self.run_many([code])[0]

    def run_many(self, programs: list[str]) -> list[RunResult]:
        """Every program, in batches of ``batch_size`` per sandbox, ``workers`` sandboxes at a time."""
        if not programs:
            return []
        results: list[RunResult | None] = [None] * len(programs)
        chunks = [list(range(i, min(i + self.batch_size, len(programs))))
                  for i in range(0, len(programs), self.batch_size)]

        def work(idx: list[int]) -> None:
            pending = idx
            while pending:  # a runner killed mid-batch: record the culprit's error, rerun the rest
                done = self._run_batch([programs[i] for i in pending])
                for i, r in zip(pending, done):
                    results[i] = r
                pending = pending[len(done):]

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(work, chunks))
        return [r for r in results if r is not None]

    def _run_batch(self, programs: list[str]) -> list[RunResult]:
        """Results for a prefix of ``programs`` (all of them unless the runner died)."""
        with self._slot_lock:
            slot = self._slots.pop()
        try:
            return self._run_batch_in_slot(programs, slot)
        finally:
            with self._slot_lock:
                self._slots.append(slot)

    def _run_batch_in_slot(self, programs: list[str], slot: int) -> list[RunResult]:
        lim = self.limits
        payload = json.dumps({"programs": programs, "limits": {
            "timeout_s": lim.timeout_s, "cpu_s": lim.cpu_s, "memory_mb": lim.memory_mb,
            "max_file_mb": lim.max_file_mb, "max_processes": lim.max_processes,
            "max_output_bytes": lim.max_output_bytes, "isolated": self.enabled}}).encode()
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(self._argv(), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                        preexec_fn=self._preexec(slot, len(programs)),
                                        start_new_session=True, cwd="/tmp")
            except OSError as exc:
                return [RunResult("error", None, "", "", 0.0, f"sandbox failed to start: {exc}")]
            with self._slot_lock:
                self._active.add(proc.pid)
            try:
                proc.communicate(payload, timeout=(lim.timeout_s + 1) * len(programs) + 10)
            except subprocess.TimeoutExpired:
                pass
            except BrokenPipeError:
                pass
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                with self._slot_lock:
                    self._active.discard(proc.pid)
                    if self.enabled:
                        _reap_orphans(self._active)
            out.seek(0)
            lines = out.read().decode("utf-8", "replace").splitlines()
            err.seek(0)
            runner_err = err.read()[-2000:].decode("utf-8", "replace")
        results = []
        for line in lines[: len(programs)]:
            try:
                results.append(self._classify(json.loads(line)))
            except (json.JSONDecodeError, KeyError):
                break
        if len(results) < len(programs):  # the runner died while running programs[len(results)]
            last = _last_line(runner_err)
            detail = f"sandbox error: {last}" if last.startswith("bwrap:") else "the program killed or broke its sandbox"
            results.append(RunResult("error", proc.returncode, "", runner_err, time.perf_counter() - t0, detail))
        return results

    def _classify(self, r: dict) -> RunResult:
        lim = self.limits
        stdout, stderr, seconds, rc, sig = r["stdout"], r["stderr"], r["seconds"], r["exit_code"], r["signal"]
        if r["timed_out"]:
            return RunResult("timeout", rc, stdout, stderr, seconds, f"wall-clock timeout after {lim.timeout_s}s")
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and seconds >= lim.cpu_s):
            return RunResult("timeout", -sig, stdout, stderr, seconds, f"CPU limit of {lim.cpu_s}s exceeded")
        if sig == signal.SIGXFSZ:
            return RunResult("error", -sig, stdout, stderr, seconds, f"output or file size limit of {lim.max_file_mb} MB")
        if sig is not None:
            return RunResult("error", -sig, stdout, stderr, seconds, f"killed by signal {signal.Signals(sig).name}")
        if rc == 0:
            return RunResult("pass", rc, stdout, stderr, seconds, "all tests passed")
        last = _last_line(stderr)
        if "MemoryError" in last:
            return RunResult("error", rc, stdout, stderr, seconds, f"memory limit of {lim.memory_mb} MB: {last}")
        return RunResult("fail", rc, stdout, stderr, seconds, last or f"exit code {rc}")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("...[truncated")]
    return lines[-1].strip()[:300] if lines else ""
