"""Running model-written code where it cannot hurt anything, nor forge its own verdict.

Programs run in batches of ``batch_size`` per ``bwrap`` sandbox: every namespace unshared (no
network, own pids, own IPC), started with an empty environment as a dedicated unprivileged uid
(one per worker slot, when we are root), read-only root, /usr and /dev, no /proc. Inside,
``runner.py`` runs as the namespace's PID 1 (unkillable from inside, non-dumpable) and
gives each program new mount, IPC, network and PID namespaces with a fresh size-capped tmpfs
/tmp as its only writable place, so nothing of one program survives into the next.

Verdicts on code come from ``check_functions``: the candidate's code runs in a child process
that only answers calls with plain data; the task's test runs in the program's init process,
which never runs candidate code, and the host accepts a pass only with the per-program nonce
that the candidate never saw. See the module docstring of ``runner`` and docs/sandbox.md
threat model.

Limits per program: RLIMIT_AS, CPU, file size and processes on the candidate; a wall-clock
timeout; and, where cgroups are writable, one memory cap over all of the program's processes
and its tmpfs plus a pids cap (``cgroup_limits``). Where they are not, start-up says so.
A sandbox costs ~35 ms to start and each program ~14 ms of a core (bench/verify_throughput.py
measures the whole path).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import secrets
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.sandbox.cgroup_limits import CgroupLimits, join_cgroups

log = logging.getLogger(__name__)
_RUNNER_SOURCE = (Path(__file__).parent / "runner.py").read_text()

SANDBOX_UID_BASE = 61000
_PR_SET_CHILD_SUBREAPER = 36
# what the runner itself needs besides the program's own memory (it counts in the cgroup)
RUNNER_OVERHEAD_MB = 48


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
    tmpfs_mb: int = 64  # the size cap of the program's writable /tmp (counted in memory_mb)
    max_return_bytes: int = 8 << 20  # largest return value a candidate may send back


@dataclass
class RunResult:
    status: str  # pass | fail | timeout | error
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class FunctionCheck:
    """One code candidate: its module source, the function the test calls, and the task's
    prompt (trusted helpers the test may use) and test (defines ``check(candidate)``)."""

    code: str
    entry_point: str
    test: str
    prompt: str = ""


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
    """Runs Python programs under bubblewrap, ``batch_size`` per sandbox, ``workers`` sandboxes
    at a time, each program in namespaces of its own.

    ``enabled=False`` runs them bare (unsafe, logged); ``require_cgroups=True`` refuses to start
    where the per-program memory and process caps cannot be enforced.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        enabled: bool = True,
        python_executable: str | None = None,
        workers: int | None = None,
        require_cgroups: bool = False,
        batch_size: int = 16,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.enabled = enabled
        self.python = python_executable or _default_python()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.batch_size = max(1, batch_size)
        self._slots = list(range(self.workers))
        self._slot_lock = threading.Lock()
        self._slot_free = threading.Condition(self._slot_lock)
        self._active: set[int] = set()
        self.cgroups: CgroupLimits | None = None
        self.warnings: list[str] = []
        if enabled:
            _become_subreaper()
            self.bwrap = shutil.which("bwrap")
            if not self.bwrap:
                raise SynthConfigError(
                    "verifier sandbox: bubblewrap (bwrap) is not installed. Install it with "
                    "`apt-get install -y bubblewrap`, or set SYNTH_SANDBOX=off to run model-written "
                    "code without isolation (unsafe)."
                )
            ok, why = self._userns_ok()
            if not ok:
                raise SynthConfigError(
                    f"verifier sandbox: bwrap cannot create its namespaces here ({why}). Enable "
                    "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
                    "user.max_user_namespaces > 0), or run as root."
                )
            lim = self.limits
            self.cgroups = CgroupLimits((lim.memory_mb + RUNNER_OVERHEAD_MB) << 20, lim.max_processes + 6)
            if not self.cgroups.available:
                msg = (
                    f"verifier sandbox: cgroups are not writable here ({self.cgroups.reason}); memory is "
                    f"capped per process ({lim.memory_mb} MB each, up to {lim.max_processes} processes) plus "
                    f"the {lim.tmpfs_mb} MB tmpfs, not per program"
                )
                if require_cgroups:
                    raise SynthConfigError(
                        msg + ". Run as root or delegate a cgroup v2 subtree with the memory "
                        "and pids controllers, or set require_cgroups=False."
                    )
                log.warning(msg)
                self.warnings.append(msg)
                self.cgroups = None
        else:
            log.warning("SANDBOX DISABLED: model-written code runs without isolation (SYNTH_SANDBOX=off)")

    def _userns_ok(self) -> tuple[bool, str]:
        r = subprocess.run(
            self._argv(0)[:-5] + ["/usr/bin/true"], capture_output=True, env={}, preexec_fn=self._preexec(0), cwd="/"
        )
        return r.returncode == 0, r.stderr.decode(errors="replace").strip()[:200]

    def close(self) -> None:
        """Remove the slots' cgroups (they are empty once no program runs)."""
        if self.cgroups is not None:
            self.cgroups.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a finalizer must not raise (it may run while the interpreter shuts down)
            pass

    def _argv(self, slot: int = 0) -> list[str]:
        runner = ["-I", "-S", "-c", _RUNNER_SOURCE]
        if not self.enabled:
            return [self.python, *runner]
        lim = self.limits
        oom = []
        if self.cgroups is not None:  # the runner reads the OOM-kill count to attribute kills
            oom = ["--ro-bind", str(self.cgroups.events_file(slot)), "/oom_events"]
        return [
            self.bwrap,
            "--unshare-all",
            "--as-pid-1",  # the runner is PID 1: nothing inside can kill it
            # in the sandbox's own user namespace only: to give each program its namespaces
            "--cap-add", "CAP_SYS_ADMIN",
            "--die-with-parent",
            "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            "--dev", "/dev",
            "--size", str(min(lim.tmpfs_mb, lim.memory_mb) << 20), "--tmpfs", "/tmp",
            *oom,
            "--remount-ro", "/dev",
            "--remount-ro", "/",
            "--chdir", "/tmp",
            "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", "/tmp",
            self.python, *runner,
        ]  # fmt: skip

    def _preexec(self, slot: int) -> Callable[[], None]:
        lim = self.limits
        uid = SANDBOX_UID_BASE + slot
        drop = os.geteuid() == 0 and self.enabled
        dirs = self.cgroups.prepare(slot) if self.cgroups is not None else []

        def apply() -> None:
            if dirs:
                join_cgroups(dirs)
            # hard caps for everything in the sandbox; the candidate also gets its own limits
            resource.setrlimit(resource.RLIMIT_AS, (lim.memory_mb << 20, lim.memory_mb << 20))
            resource.setrlimit(resource.RLIMIT_FSIZE, (lim.max_file_mb << 20, lim.max_file_mb << 20))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            cpu = 2 * lim.cpu_s + 5
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            if drop:  # never run model code as root: a dedicated uid per slot
                n = lim.max_processes + 6  # the outer bwrap, runner, shim, init, candidate
                resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        return apply

    def run_python(self, code: str) -> RunResult:
        return self.run_many([code])[0]

    def run_many(self, programs: list[str]) -> list[RunResult]:
        """Run scripts and report their exit status (``pass`` = exit 0).

        For trusted callers and containment: a script's exit status is the script's to choose,
        so this is never a verdict on untrusted code; use ``check_functions`` for that."""
        return self._map("script", programs)

    def check_functions(self, checks: list[FunctionCheck], timeout_s: float | None = None) -> list[RunResult]:
        """Verdicts for code candidates, decided by each task's test outside the candidate.

        ``timeout_s`` shortens this call's wall-clock limit (never lengthens it): the verifier
        canaries prove the timeout on a program that never ends without waiting the full limit."""
        return self._map("function", checks, timeout_s)

    def _limits_for(self, timeout_s: float | None) -> SandboxLimits:
        if timeout_s is None or timeout_s >= self.limits.timeout_s:
            return self.limits
        return replace(self.limits, timeout_s=timeout_s)

    def _map(self, mode: str, jobs: list, timeout_s: float | None = None) -> list[RunResult]:
        """Every job, in batches of ``batch_size`` per sandbox, ``workers`` sandboxes at a time.
        A batch whose sandbox stops early (a program that broke it) records that program's
        error and runs the rest again in a new sandbox."""
        if not jobs:
            return []
        lim = self._limits_for(timeout_s)
        results: list[RunResult | None] = [None] * len(jobs)
        chunks = [list(range(i, min(i + self.batch_size, len(jobs)))) for i in range(0, len(jobs), self.batch_size)]

        def work(idx: list[int]) -> None:
            pending = idx
            while pending:
                done = self._run_batch(mode, [jobs[i] for i in pending], lim)
                for i, r in zip(pending, done):
                    results[i] = r
                pending = pending[len(done) :]

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(work, chunks))
        return [r for r in results if r is not None]

    def _run_batch(self, mode: str, jobs: list, lim: SandboxLimits) -> list[RunResult]:
        with self._slot_free:  # callers in several threads wait for a slot rather than share one
            while not self._slots:
                self._slot_free.wait()
            slot = self._slots.pop()
        try:
            return self._run_batch_in_slot(mode, jobs, slot, lim)
        finally:
            with self._slot_free:
                self._slots.append(slot)
                self._slot_free.notify()

    def _payload(self, mode: str, jobs: list, lim: SandboxLimits) -> tuple[bytes, list[str | None]]:
        config = {
            "mode": mode,
            "count": len(jobs),
            "limits": {
                "timeout_s": lim.timeout_s,
                "cpu_s": lim.cpu_s,
                "memory_mb": lim.memory_mb,
                "max_file_mb": lim.max_file_mb,
                "max_processes": lim.max_processes,
                "max_output_bytes": lim.max_output_bytes,
                "max_return_bytes": lim.max_return_bytes,
                "tmpfs_bytes": min(lim.tmpfs_mb, lim.memory_mb) << 20,
                "isolated": self.enabled,
            },
        }
        records = [json.dumps(config).encode()]
        nonces: list[str | None] = []
        for item in jobs:
            if mode == "script":
                records.append(str(item).encode())
                nonces.append(None)
            else:
                assert isinstance(item, FunctionCheck)
                nonce = secrets.token_hex(16)
                # the candidate's record first: it is read (and stdin closed) before the test's
                records.append(json.dumps({"code": item.code, "entry_point": item.entry_point}).encode())
                records.append(
                    json.dumps(
                        {"nonce": nonce, "prompt": item.prompt, "test": item.test, "entry_point": item.entry_point}
                    ).encode()
                )
                nonces.append(nonce)
        return b"".join(struct.pack(">I", len(r)) + r for r in records), nonces

    def _run_batch_in_slot(self, mode: str, jobs: list, slot: int, lim: SandboxLimits) -> list[RunResult]:
        """Results for a prefix of ``jobs`` (all of them unless the sandbox stopped early)."""
        payload, nonces = self._payload(mode, jobs, lim)
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                # env={}: bwrap's own process is in the sandbox too, and keeps what it started with
                proc = subprocess.Popen(
                    self._argv(slot),
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    env={},
                    preexec_fn=self._preexec(slot),
                    start_new_session=True,
                    cwd="/",
                )
            except OSError as exc:
                return [RunResult("error", None, "", "", 0.0, f"sandbox failed to start: {exc}")]
            with self._slot_lock:
                self._active.add(proc.pid)
            try:
                proc.communicate(payload, timeout=(lim.timeout_s + 4) * len(jobs) + 10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
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
        for line, nonce in zip(lines, nonces):
            try:
                results.append(self._classify(json.loads(line), nonce, lim))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                break
        if len(results) < len(jobs):  # the sandbox stopped while running jobs[len(results)]
            last = _last_line(runner_err)
            detail = f"sandbox error: {last}" if last.startswith("bwrap:") else "the program broke its sandbox"
            if not results and not last.startswith("bwrap:") and runner_err.strip():
                detail += f" ({last})"
            results.append(RunResult("error", proc.returncode, "", runner_err, time.perf_counter() - t0, detail))
        return results

    def _classify(self, r: dict, nonce: str | None, lim: SandboxLimits) -> RunResult:
        oom = bool(r.get("oom_kill"))
        stdout, stderr, seconds, rc, sig = r["stdout"], r["stderr"], float(r["seconds"]), r["exit_code"], r["signal"]

        def res(status: str, detail: str, code: int | None = rc) -> RunResult:
            return RunResult(status, code, stdout, stderr, seconds, detail)

        if r["timed_out"]:
            return res("timeout", f"wall-clock timeout after {lim.timeout_s}s")
        if nonce is not None:
            if r.get("nonce") != nonce:
                return res("error", "the result does not carry this program's nonce (forged or corrupted)")
            if r.get("verdict") == "pass":
                return res("pass", str(r.get("detail", "all tests passed")))
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and seconds >= lim.cpu_s):
            return res("timeout", f"CPU limit of {lim.cpu_s}s exceeded", -sig)
        if sig == signal.SIGXFSZ:
            return res("error", f"output or file size limit of {lim.max_file_mb} MB", -sig)
        if oom:
            return res("error", f"memory limit of {lim.memory_mb} MB (all processes of the program) exceeded")
        last = _last_line(stderr)
        if "MemoryError" in last:
            return res("error", f"memory limit of {lim.memory_mb} MB: {last}")
        if sig is not None:
            return res("error", f"killed by signal {signal.Signals(sig).name}", -sig)
        if nonce is not None:
            verdict = r.get("verdict")
            return res(verdict if verdict in ("fail", "error") else "error", str(r.get("detail", ""))[:500])
        if rc == 0:
            return res("pass", "exited with status 0")
        return res("fail", last or f"exit code {rc}")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("...[truncated")]
    return lines[-1].strip()[:300] if lines else ""
