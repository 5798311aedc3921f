"""A throwaway PostgreSQL server for tests (Debian's postgresql package): a cluster in a
temporary directory on a free port, password auth, stopped and removed afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.ray_cluster import free_port

USER, PASSWORD, DB = "dagster", "synth-test-pw", "dagster"


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL's server is not installed: apt-get install -y postgresql "
            "(bash scripts/quickstart.sh test does this)"
        )
    return found[-1].parent


def _as_postgres(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """initdb refuses to run as root: run the server's tools as the postgres user then."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


@dataclass
class PgServer:
    root: Path
    port: int

    @property
    def env(self) -> dict[str, str]:
        """The libpq variables dagster_home/dagster.postgres.yaml reads."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": USER,
            "PGPASSWORD": PASSWORD,
            "PGDATABASE": DB,
        }

    def stop(self) -> None:
        try:
            _as_postgres([str(_bindir() / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PgServer:
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="synth-pg-"))
    os.chmod(root, 0o755)
    (root / "pw").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        os.chown(root / "pw", pg.pw_uid, pg.pw_gid)
    port = free_port()
    try:
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                USER,
                "--auth=scram-sha-256",
                f"--pwfile={root / 'pw'}",
                "--no-sync",
            ]
        )
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(root / "data"),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ]
        )
        server = PgServer(root, port)
        subprocess.run(
            [str(bindir / "createdb"), DB], check=True, capture_output=True, env={**os.environ, **server.env}
        )
        return server
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
