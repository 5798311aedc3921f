"""Runs a batch of programs inside one bubblewrap sandbox, each in namespaces of its own.

Stdlib only: it runs under the system Python inside the sandbox (``python -I -S``). It reads
length-prefixed records from stdin and writes one JSON result line per program to stdout.

The runner is the sandbox's PID 1 and never reads a program: for each one it forks a child
that enters new mount, IPC, network and PID namespaces, mounts a fresh size-capped tmpfs on
/tmp, drops every capability, and only then reads that program's records. So no program's
code, test or nonce is in the memory a later program inherits, nothing one program writes or
leaves running survives it, and programs cannot see each other.

Two modes:

- ``script``: the program runs in a forked child and the result is its exit status. Used for
  trusted callers' scripts and for containment tests; never for a verdict on untrusted code.
- ``function``: the candidate's code runs in a forked child that only answers calls: it gets
  arguments as plain data and sends its return value back as plain data (built-in types only,
  in a tagged JSON format, so an object with a custom ``__eq__`` cannot cross). The test runs
  in the program's init process, which never executes candidate code, and decides the verdict.

Why the candidate cannot forge a pass: it is forked *before* its init process reads the test
and the per-program nonce from stdin, so neither is in its memory; it closes every inherited
file descriptor (stdin and the result channel included) before its code runs; there is no
/proc in the sandbox; every process of ours is non-dumpable (no ptrace, no /proc/<pid>/mem);
the init process is PID 1 of the program's namespace, so nothing inside can kill it; and the
host accepts a ``pass`` only together with the nonce.
"""

import builtins
import json
import linecache
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback

_HEADER = struct.Struct(">I")
_MAX_RECORD = 64 << 20


# ------------------------------------------------------------------ plain data
class NotPlainData(TypeError):
    """A value that may not cross the sandbox boundary (not a built-in data type)."""


def encode(value: object, depth: int = 0) -> object:
    """Built-in data to JSON-able form with tags for the types JSON lacks. Exact types only:
    a subclass of int or str (or anything else) is refused, so no method of the candidate's
    can run on the other side."""
    if depth > 100:
        raise NotPlainData("value nested deeper than 100 levels")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if abs(value) < (1 << 53) else {"$i": str(value)}
    if t is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"$f": repr(value)}
    if t is list:
        return [encode(v, depth + 1) for v in value]
    if t is tuple:
        return {"$t": [encode(v, depth + 1) for v in value]}
    if t is dict:
        return {"$d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if t is set:
        return {"$s": [encode(v, depth + 1) for v in value]}
    if t is frozenset:
        return {"$fs": [encode(v, depth + 1) for v in value]}
    if t is bytes:
        return {"$b": value.hex()}
    if t is complex:
        return {"$c": [encode(value.real, depth + 1), encode(value.imag, depth + 1)]}
    raise NotPlainData(f"a value of type {t.__module__}.{t.__qualname__} is not plain data")


def decode(obj: object, depth: int = 0) -> object:
    """The inverse of ``encode``, strict about shape: anything else is refused."""
    if depth > 100:
        raise NotPlainData("value nested deeper than 100 levels")
    t = type(obj)
    if obj is None or t in (bool, int, float, str):
        return obj
    if t is list:
        return [decode(v, depth + 1) for v in obj]
    if t is dict and len(obj) == 1:
        ((tag, v),) = obj.items()
        if tag == "$i" and type(v) is str:
            return int(v)
        if tag == "$f" and v in ("nan", "inf", "-inf"):
            return float(v)
        if tag == "$b" and type(v) is str:
            return bytes.fromhex(v)
        if type(v) is list:
            if tag == "$t":
                return tuple(decode(x, depth + 1) for x in v)
            if tag == "$s":
                return {decode(x, depth + 1) for x in v}
            if tag == "$fs":
                return frozenset(decode(x, depth + 1) for x in v)
            if tag == "$c" and len(v) == 2:
                return complex(decode(v[0], depth + 1), decode(v[1], depth + 1))
            if tag == "$d" and all(type(p) is list and len(p) == 2 for p in v):
                return {decode(k, depth + 1): decode(x, depth + 1) for k, x in v}
    raise NotPlainData(f"malformed plain-data value: {str(obj)[:80]}")


# ------------------------------------------------------------------ framing
def read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise EOFError("channel closed")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def read_record(fd: int, limit: int = _MAX_RECORD) -> bytes:
    (n,) = _HEADER.unpack(read_exact(fd, _HEADER.size))
    if n > limit:
        raise ValueError(f"record of {n} bytes exceeds the limit of {limit}")
    return read_exact(fd, n)


def write_record(fd: int, data: bytes) -> None:
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


# ------------------------------------------------------------------ helpers
def _undumpable() -> None:
    import ctypes

    if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE = 4
        raise OSError("cannot make the runner non-dumpable")


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


def _flush() -> None:
    """What the program printed reaches its files before the kill that ends it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - the program may have closed or broken its own stdout: nothing left to flush
        pass


def _finish(pid: int, status: int | None, timed_out: bool, t0: float, lim: dict, workdir: str) -> dict:
    """Kill what is left of the program, then its result: exit status, time, capped output."""
    seconds = time.monotonic() - t0
    _kill_all(lim["isolated"], pid)
    return {
        **_status_fields(status),
        "timed_out": timed_out,
        "seconds": seconds,
        "stdout": _read_capped(f"{workdir}/.out", lim["max_output_bytes"]),
        "stderr": _read_capped(f"{workdir}/.err", lim["max_output_bytes"]),
    }


def _kill_all(isolated: bool, pid: int) -> None:
    """Every other process of the namespace is gone when this returns: as its PID 1,
    everything left is our child or re-parented to us, so kill and reap until none remain."""
    while True:
        try:
            os.kill(-1 if isolated else -pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.waitpid(-1, 0)  # SIGKILLed children die at once; kill again, in case one had just forked
        except ChildProcessError:
            return


def _limit_child(lim: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (lim["cpu_s"], lim["cpu_s"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (lim["memory_mb"] << 20, lim["memory_mb"] << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (lim["max_file_mb"] << 20, lim["max_file_mb"] << 20))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
    if lim["isolated"]:  # counted per user inside the sandbox's user namespace
        n = lim["max_processes"] + 4  # the runner, its shim and the program's init share the uid
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))


def _child_stdio(workdir: str, keep: tuple[int, ...]) -> None:
    """stdin from /dev/null, stdout/stderr to files in the program's own area, every other
    inherited descriptor closed (the host's pipes and the runner's result channel)."""
    os.setsid()
    fo = os.open(f"{workdir}/.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fe = os.open(f"{workdir}/.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fo, 1)
    os.dup2(fe, 2)
    lo = 3
    for fd in sorted(keep):
        os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 16)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _exit_status(exc: SystemExit) -> int:
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def _wait(pid: int, deadline: float) -> tuple[int | None, bool]:
    """(wait status, timed out): woken by the child's exit through a pidfd, not by polling."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    try:
        while True:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                return st, False
            left = deadline - time.monotonic()
            if left <= 0:
                return None, True
            if fd is not None:
                select.select([fd], [], [], left)
            else:
                time.sleep(min(left, 0.002))
    finally:
        if fd is not None:
            os.close(fd)


def _status_fields(status: int | None) -> dict:
    if status is None:
        return {"exit_code": None, "signal": None}
    if os.WIFSIGNALED(status):
        return {"exit_code": None, "signal": os.WTERMSIG(status)}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None}


# ------------------------------------------------------------------ script mode
def run_script(lim: dict, workdir: str) -> dict:
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            code = read_record(0).decode()
            _child_stdio(workdir, ())
            _limit_child(lim)
            os.chdir(workdir)
            status = 0
            try:
                exec(compile(code, "<program>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
            except SystemExit as exc:
                status = _exit_status(exc)
            except BaseException:  # noqa: BLE001 - whatever the program raised is its failure: status 1, traceback on stderr
                traceback.print_exc()
                status = 1
            _flush()
            os._exit(status & 0xFF)
        finally:
            os._exit(120)
    status, timed_out = _wait(pid, t0 + lim["timeout_s"])
    return _finish(pid, status, timed_out, t0, lim, workdir)


# ------------------------------------------------------------------ function mode
def _serve(code: str, entry_point: str, req_fd: int, resp_fd: int) -> None:
    """The candidate's side: load its code, then answer calls until the judge hangs up."""
    ns = {"__name__": "__candidate__", "__builtins__": __builtins__}
    try:
        exec(compile(code, "<candidate>", "exec"), ns)
        fn = ns.get(entry_point)
        load_error = None if callable(fn) else f"the program defines no function {entry_point!r}"
    except SystemExit as exc:
        load_error = f"the program exited with status {_exit_status(exc)} while loading"
    except BaseException as exc:  # noqa: BLE001 - whatever loading raised is reported as the candidate's load error
        traceback.print_exc()
        load_error = f"loading the program raised {type(exc).__name__}: {str(exc)[:200]}"
    while True:
        try:
            req = json.loads(read_record(req_fd))
        except EOFError:
            os._exit(0)
        if load_error:
            reply = {"load_error": load_error}
        else:
            try:
                args = decode(req["a"])
                kwargs = decode(req["k"])
                result = fn(*args, **kwargs)
                reply = {"ok": encode(result)}
            except NotPlainData as exc:
                reply = {"not_plain": str(exc)}
            except SystemExit as exc:
                reply = {"raise": ["SystemExit", f"the candidate called exit({_exit_status(exc)})"]}
            except RecursionError as exc:
                reply = {"raise": ["RecursionError", str(exc)[:200]]}
            except BaseException as exc:  # noqa: BLE001 - whatever the candidate raised goes back to the test as its exception
                reply = {"raise": [type(exc).__name__, str(exc)[:200]]}
        _flush()
        try:
            data = json.dumps(reply).encode()
        except (TypeError, ValueError, RecursionError):
            data = json.dumps({"not_plain": "the return value could not be serialized"}).encode()
        write_record(resp_fd, data)


class _Deadline(BaseException):
    """The wall clock ran out (a BaseException, so a test's ``except Exception`` cannot eat it)."""


PROCESS_ENDED = "the candidate's process ended during a call"


class CandidateFailed(Exception):
    """The candidate did not return plain data for a call (it crashed, hung up or cheated)."""


class _Proxy:
    """Stands in for the candidate's function inside the test: each call crosses to the
    candidate's process as plain data and comes back as plain data."""

    def __init__(self, name: str, req_fd: int, resp_fd: int, max_bytes: int) -> None:
        self.__name__ = name
        self._req, self._resp, self._max = req_fd, resp_fd, max_bytes
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        write_record(self._req, json.dumps({"a": encode(list(args)), "k": encode(kwargs)}).encode())
        try:
            reply = json.loads(read_record(self._resp, self._max))
        except EOFError:
            raise CandidateFailed(PROCESS_ENDED) from None
        except ValueError as exc:
            raise CandidateFailed(f"the candidate's reply was refused: {exc}") from None
        if "ok" in reply:
            try:
                return decode(reply["ok"])
            except NotPlainData as exc:
                raise CandidateFailed(str(exc)) from None
        if "raise" in reply and type(reply["raise"]) is list and len(reply["raise"]) == 2:
            name, msg = (str(x)[:200] for x in reply["raise"])
            cls = getattr(builtins, name, None)
            if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
                try:
                    raise cls(msg)
                except TypeError:
                    pass
            raise CandidateFailed(f"the candidate raised {name}: {msg}")
        if "load_error" in reply:
            raise CandidateFailed(str(reply["load_error"])[:300])
        if "not_plain" in reply:
            raise CandidateFailed(
                f"the candidate returned a value that is not plain data: {str(reply['not_plain'])[:200]}"
            )
        raise CandidateFailed("the candidate's reply was malformed")


def _judge(material: dict, proxy: _Proxy) -> tuple[str, str]:
    """Run the task's test against the proxy; return (verdict, detail)."""
    ns: dict = {"__name__": "__judge__"}
    prompt = material.get("prompt") or ""
    for src in (prompt, prompt + "\n    pass\n"):  # helpers the prompt defines (e.g. encode_cyclic)
        try:
            exec(compile(src, "<task prompt>", "exec"), ns)
            break
        except Exception:  # noqa: BLE001 - a prompt that is not a module: run the test without its helpers
            ns = {"__name__": "__judge__"}
    ns[material["entry_point"]] = proxy
    test = material["test"]
    linecache.cache["<task test>"] = (len(test), None, test.splitlines(True), "<task test>")
    exec(compile(test, "<task test>", "exec"), ns)
    check = ns.get("check")
    if not callable(check):
        return "error", "the task's test defines no check(candidate) function"
    try:
        check(proxy)
    except CandidateFailed as exc:
        return "fail", str(exc)
    except AssertionError as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {f.lineno}: {f.line}" for f in reversed(tb) if f.filename == "<task test>"), "")
        msg = f" {str(exc)[:100]}" if str(exc) else ""
        return "fail", f"AssertionError{msg} at test {where}".strip()
    except (Exception, RecursionError) as exc:  # noqa: BLE001 - whatever the test raised is a failure
        return "fail", f"{type(exc).__name__}: {str(exc)[:200]}"
    if proxy.calls == 0:
        return "fail", "the test never called the candidate"
    return "pass", f"all tests passed ({proxy.calls} calls)"


def run_function(lim: dict, workdir: str) -> dict:
    t0 = time.monotonic()
    deadline = t0 + lim["timeout_s"]
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            cand = json.loads(read_record(0))
            # stdin closed (and every other inherited descriptor) before any candidate code runs
            _child_stdio(workdir, (req_r, resp_w, ready_w))
            os.write(ready_w, b"r")
            os.close(ready_w)
            _limit_child(lim)
            os.chdir(workdir)
            _serve(cand["code"], cand["entry_point"], req_r, resp_w)
        finally:
            os._exit(120)
    os.close(req_r)
    os.close(resp_w)
    os.close(ready_w)
    # the candidate has read its record and closed stdin before we read the test and nonce
    if not select.select([ready_r], [], [], max(0.0, deadline - time.monotonic()))[0] or os.read(ready_r, 1) != b"r":
        raise RuntimeError("the candidate's process did not start")
    os.close(ready_r)
    material = json.loads(read_record(0))
    os.close(0)
    proxy = _Proxy(material["entry_point"], req_w, resp_r, lim["max_return_bytes"])

    def on_alarm(_sig: int, _frame: object) -> None:
        raise _Deadline()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(0.001, deadline - time.monotonic()))
    verdict, detail, timed_out = "error", "", False
    try:
        verdict, detail = _judge(material, proxy)
    except _Deadline:
        timed_out = True
    except BaseException as exc:  # noqa: BLE001 - the test itself is broken
        verdict, detail = "error", f"the task's test raised {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    done, st = os.waitpid(pid, os.WNOHANG)  # the candidate's status, if it already ended
    if not done and detail == PROCESS_ENDED:
        # its pipe closes as it exits, a moment before its status can be collected (longer on a
        # busy machine): wait for that status, or a busy loop the CPU limit killed reads as a
        # plain failure instead of a timeout
        st, _late = _wait(pid, time.monotonic() + 2.0)
        done = st is not None
    return {
        **_finish(pid, st if done else None, timed_out, t0, lim, workdir),
        "nonce": material["nonce"],
        "verdict": verdict,
        "detail": detail[:500],
    }


# ------------------------------------------------------------------ namespaces
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 2, 4, 0x4000, 1 << 18


def _libc():  # noqa: ANN202 - (ctypes, libc): ctypes is imported on first use only, so no annotation can name it
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _check(ok: bool, what: str) -> None:
    if not ok:
        import ctypes

        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def _fresh_tmp(size_bytes: int) -> None:
    """This program's own writable area: a new tmpfs over /tmp, in its own mount namespace."""
    _, libc = _libc()
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) == 0, "mount --make-rprivate /")
    opts = f"size={size_bytes},mode=0700".encode()
    _check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) == 0, "mount tmpfs /tmp")


def _drop_capabilities() -> None:
    """No capability survives into the program (the runner needs CAP_SYS_ADMIN, in the
    sandbox's own user namespace only, to make each program's namespaces)."""
    ctypes, libc = _libc()

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    hdr, data = Header(0x20080522, 0), (Data * 2)()
    _check(libc.capset(ctypes.byref(hdr), data) == 0, "capset")
    check = (Data * 2)()
    _check(libc.capget(ctypes.byref(hdr), check) == 0, "capget")
    if any(d.effective or d.permitted or d.inheritable for d in check):
        raise OSError("capabilities are still held")
    if libc.prctl(39, 0, 0, 0, 0) != 1:  # PR_GET_NO_NEW_PRIVS: bwrap sets it; no exec may gain privileges
        raise OSError("no_new_privs is not set")


def _oom_kills() -> int:
    """The sandbox cgroup's OOM-kill count, bound read-only at /oom_events when cgroups are on."""
    try:
        with open("/oom_events") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0


def _program(config: dict) -> None:
    """The init process of one program's namespaces: set up, run, report, exit."""
    lim = config["limits"]
    if lim["isolated"]:
        _fresh_tmp(lim["tmpfs_bytes"])
        _drop_capabilities()
        workdir = "/tmp"
    else:
        import tempfile

        workdir = tempfile.mkdtemp(prefix="synth_unsandboxed_")
    oom_before = _oom_kills()
    try:
        out = run_function(lim, workdir) if config["mode"] == "function" else run_script(lim, workdir)
    finally:
        if not lim["isolated"]:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    out["oom_kill"] = _oom_kills() > oom_before
    data = (json.dumps(out) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def _shim(config: dict) -> int:
    """Enter new namespaces; the program's init is our child (a PID namespace takes effect
    for children). Returns the exit status to pass on."""
    if config["limits"]["isolated"]:
        _, libc = _libc()
        flags = _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWPID | _CLONE_NEWNET
        _check(libc.unshare(flags) == 0, "unshare")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _program(config)
            code = 0
        except BaseException:  # noqa: BLE001 - any crash of the program's init ends in its traceback and status 1
            traceback.print_exc()
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1


def main() -> None:
    _undumpable()
    config = json.loads(read_record(0))
    lim = config["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for _ in range(config["count"]):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _shim(config)
            except BaseException:  # noqa: BLE001 - any crash of the shim ends in its traceback and status 1
                traceback.print_exc()
            finally:
                os._exit(code)
        status, timed_out = _wait(pid, time.monotonic() + lim["timeout_s"] + 3)
        _kill_all(lim["isolated"], pid)
        if timed_out or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            # the program did not report (its input may be half-read): stop; the host reruns the rest
            sys.exit(3)


if __name__ == "__main__":
    main()
