"""The bubblewrap sandbox: verdicts for honest, broken and hostile programs; nothing escapes."""

import os

import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(SandboxLimits(timeout_s=5, cpu_s=3, memory_mb=256, max_processes=16, max_file_mb=1))


def test_passing_and_failing_programs(box):
    assert box.run_python("assert 1 + 1 == 2").status == "pass"
    res = box.run_python("assert 1 + 1 == 3, 'bad sum'")
    assert res.status == "fail" and "AssertionError: bad sum" in res.detail


def test_infinite_loop_times_out(box):
    res = box.run_python("while True:\n    pass")
    assert res.status == "timeout"


def test_sleeping_program_hits_the_wall_clock(box):
    res = box.run_python("import time\ntime.sleep(60)")
    assert res.status == "timeout" and res.seconds < 10


def test_no_network(box):
    res = box.run_python("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
    assert res.status == "fail" and "unreachable" in res.detail.lower()


def test_cannot_write_outside_its_tmp_or_see_the_host(box, tmp_path):
    target = tmp_path / "escape.txt"
    res = box.run_python(f"open({str(target)!r}, 'w').write('x')")
    assert res.status == "fail" and not target.exists()
    res = box.run_python("import os\nprint(sorted(os.listdir('/')))")
    assert res.status == "pass" and "root" not in res.stdout and "work" not in res.stdout


def test_secrets_in_the_environment_are_not_visible(box, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_SECRET", "hunter2")
    res = box.run_python("import os\nprint(dict(os.environ))")
    assert "hunter2" not in res.stdout


def test_fork_bomb_is_contained(box):
    res = box.run_python("import os\nwhile True:\n    os.fork()")
    assert res.status in ("fail", "error", "timeout")
    assert os.system("true") == 0  # the host can still start processes


def test_memory_hog_gets_an_error_verdict(box):
    res = box.run_python("x = bytearray(2 * 1024 ** 3)")
    assert res.status == "error" and "memory" in res.detail.lower()


def test_huge_output_is_truncated(box):
    res = box.run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)")
    assert res.status in ("error", "fail", "timeout")
    assert len(res.stdout) < 10_000


def test_many_programs_run_in_parallel(box):
    results = box.run_many([f"assert {i} == {i}" for i in range(8)] + ["assert False"])
    assert [r.status for r in results] == ["pass"] * 8 + ["fail"]


def test_missing_bwrap_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(SynthConfigError, match="apt-get install -y bubblewrap"):
        Sandbox()


def test_disabling_the_sandbox_is_explicit_and_logged(caplog):
    box = Sandbox(enabled=False)
    assert "SANDBOX DISABLED" in caplog.text
    assert box.run_python("assert True").status == "pass"
