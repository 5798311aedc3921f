"""Runs a batch of programs inside one bubblewrap sandbox, each in a forked child.

Stdlib only: it runs under the system Python inside the sandbox (``python -I -S``). It reads
a JSON batch from stdin and writes one JSON result per program to stdout. Between programs
it kills every process the previous one left (``kill(-1)`` spares only itself and the
namespace's init) and empties /tmp, so programs in one batch cannot see each other. It makes
itself non-dumpable, so a program cannot open /proc/<runner>/fd/1 to forge results.
"""

import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback


def _undumpable() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:  # noqa: BLE001
        pass


def _read_capped(path: str, limit: int) -> str:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if size <= limit:
                return f.read().decode("utf-8", "replace")
            tail_n = min(1024, limit // 2)
            head = f.read(limit - tail_n).decode("utf-8", "replace")
            f.seek(size - tail_n)
            return f"{head}\n...[truncated {size - limit} bytes]...\n{f.read().decode('utf-8', 'replace')}"
    except OSError:
        return ""


def _wipe(workdir: str) -> None:
    for name in os.listdir(workdir):
        p = os.path.join(workdir, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass


def _child(code: str, lim: dict, out: str, err: str, workdir: str) -> None:
    os.setsid()
    fo = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fe = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fo, 1)
    os.dup2(fe, 2)
    os.closerange(3, 1 << 16)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (lim["memory_mb"] << 20, lim["memory_mb"] << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["max_file_mb"] << 20, lim["max_file_mb"] << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_processes"], lim["max_processes"]))
    os.chdir(workdir)
    status = 0
    try:
        exec(compile(code, "<candidate>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(status & 0xFF)


def run_one(code: str, lim: dict, index: int, workdir: str) -> dict:
    out, err = f"{workdir}/.out{index}", f"{workdir}/.err{index}"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(code, lim, out, err, workdir)
        finally:
            os._exit(120)
    deadline = t0 + lim["timeout_s"]
    status, timed_out = None, False
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(0.002 if time.monotonic() - t0 < 0.05 else 0.01)
    seconds = time.monotonic() - t0
    # kill whatever the program left behind. Inside the sandbox's pid namespace kill(-1)
    # reaches every process but this runner and the namespace's init; without isolation
    # (explicitly turned off) only the program's own session can be reached safely.
    try:
        os.kill(-1 if lim["isolated"] else -pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if status is None:
        _, status = os.waitpid(pid, 0)
    while True:  # reap everything that was ours
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    if os.WIFSIGNALED(status):
        code_, sig = None, os.WTERMSIG(status)
    else:
        code_, sig = os.WEXITSTATUS(status), None
    res = {
        "exit_code": code_, "signal": sig, "timed_out": timed_out, "seconds": seconds,
        "stdout": _read_capped(out, lim["max_output_bytes"]), "stderr": _read_capped(err, lim["max_output_bytes"]),
    }
    _wipe(workdir)
    return res


def main() -> None:
    _undumpable()
    batch = json.loads(sys.stdin.read())
    lim = batch["limits"]
    # isolated: /tmp is the sandbox's private tmpfs; otherwise a directory of our own
    workdir = "/tmp" if lim["isolated"] else tempfile.mkdtemp(prefix="synth_unsandboxed_")
    real_stdout = sys.stdout
    try:
        for i, code in enumerate(batch["programs"]):
            real_stdout.write(json.dumps(run_one(code, lim, i, workdir)) + "\n")
            real_stdout.flush()
    finally:
        if not lim["isolated"]:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
