"""Hostile candidates: each gets a verdict (fail, timeout or error), the run goes on, and
nothing outside the sandbox changes. Programs run in one batch, as verification runs them,
so each must also leave nothing behind for the next."""

import os
import subprocess

import duckdb
import pytest

from synth_assets.core.sandbox import SANDBOX_UID_BASE, Sandbox, SandboxLimits

LIMITS = SandboxLimits(timeout_s=4, cpu_s=2, memory_mb=256, max_processes=16, max_file_mb=2)


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Things on the host a candidate must not touch: files, a DuckDB file, a secret."""
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched")
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t as select 42 as answer")
    con.close()
    monkeypatch.setenv("SYNTH_SECRET_API_KEY", "sk-hostile-test-secret")
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
        "read_env_secret": "import os\nassert 'SYNTH_SECRET_API_KEY' in os.environ, os.environ.get('SYNTH_SECRET_API_KEY')",
        "read_duckdb_file": f"open({db!r}, 'rb').read()",
        "read_proc_environ_of_host": "import os\n"
            "found = [p for p in os.listdir('/proc') if p.isdigit() and b'sk-hostile' in open(f'/proc/{p}/environ','rb').read()]\n"
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
            "os.write(fd, b'{\"exit_code\": 0, \"signal\": null, \"timed_out\": false, \"seconds\": 0, \"stdout\": \"\", \"stderr\": \"\"}\\n')",
        "exit_zero_early": "import os\nos._exit(0)",
    }


def test_hostile_programs_get_verdicts_and_nothing_escapes(host):
    box = Sandbox(LIMITS, workers=2, batch_size=8)
    progs = hostile_programs(host)
    honest_before = "assert sum(range(10)) == 45"
    names = list(progs) + ["honest_after"]
    results = box.run_many(list(progs.values()) + [honest_before])
    verdicts = dict(zip(names, (r.status for r in results)))

    assert len(results) == len(names)
    for name in progs:
        if name == "exit_zero_early":
            continue  # exits 0 on purpose: the verifier's nonce (test_verification) turns it into a fail
        assert verdicts[name] in ("fail", "timeout", "error"), (name, results[names.index(name)].detail)
    assert verdicts["honest_after"] == "pass"  # the run goes on, the sandbox still works
    assert verdicts["infinite_loop"] == "timeout" and verdicts["sleep_forever"] == "timeout"
    assert verdicts["memory_hog"] == "error"

    # nothing outside changed
    assert host["canary"].read_text() == "untouched"
    assert not (host["dir"] / "new_file").exists()
    assert os.path.exists("/usr/lib/python3.11/os.py")
    con = duckdb.connect(str(host["db"]), read_only=True)
    assert con.execute("select answer from t").fetchone() == (42,)
    con.close()
    for r in results:
        assert "sk-hostile-test-secret" not in r.stdout + r.stderr
        assert len(r.stdout) < 20_000 and len(r.stderr) < 20_000
    # no process of a sandbox uid survives the run
    ps = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
    assert not [u for u in ps if SANDBOX_UID_BASE <= int(u) < SANDBOX_UID_BASE + 64]


def test_programs_in_one_batch_cannot_see_each_other():
    box = Sandbox(LIMITS, workers=1, batch_size=4)
    writer = "open('/tmp/answer_cache', 'w').write('42')"
    reader = "import os\nassert not os.path.exists('/tmp/answer_cache')"
    assert [r.status for r in box.run_many([writer, reader])] == ["pass", "pass"]


def test_a_runner_killer_costs_only_its_own_verdict():
    box = Sandbox(LIMITS, workers=1, batch_size=8)
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    results = box.run_many(["assert True", killer, "assert True", "assert False"])
    assert [r.status for r in results] == ["pass", "error", "pass", "fail"]
