"""Running a piece of the test suite in a PID namespace of its own, optionally as another user.

Hostile programs kill processes (``kill(-1)``, their parent, pid 1). Run where they run, inside
a fresh PID namespace, a sandbox escape could reach no process of the test runner or CI; and
running as ``nobody`` exercises the sandbox's non-root mode for real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
_MARK = "@@RESULT@@"


def _readable_core(tmp: Path) -> Path:
    """A world-readable copy of synth_assets.core (stdlib-only where the sandbox is concerned):
    another user may not be able to read the checkout, nor the virtualenv inside it."""
    dst = tmp / "synth_assets"
    shutil.copytree(ROOT / "synth_assets" / "core", dst / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "__init__.py").write_text("")
    for path in [tmp, *tmp.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tmp


def run_isolated(body: str, *, user: int | None = None, env: dict[str, str] | None = None, timeout: float = 300):
    """Run ``body`` (Python that assigns ``result``) in a new PID namespace, as ``user`` if given
    (then with the base interpreter and a readable copy of the core); return ``result``."""
    with tempfile.TemporaryDirectory(prefix="synth_isolated_") as tmp:
        path, python = str(ROOT), sys.executable
        if user is not None:
            path, python = str(_readable_core(Path(tmp))), os.path.realpath(sys.executable)
        script = (
            f"import json, sys\nsys.path.insert(0, {path!r})\n{body}\n"
            f"print({_MARK!r} + json.dumps(result), flush=True)\n"
        )
        cmd = ["unshare", "--pid", "--fork", "--mount-proc"]
        if user is not None:
            cmd += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        cmd += [python, "-c", script]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd="/tmp", env={**os.environ, **(env or {})}
        )
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    raise AssertionError(f"isolated run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
