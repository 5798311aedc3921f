"""The Dagster instance on PostgreSQL (dagster_home/dagster.postgres.yaml as shipped) against a
real server started here: two generation runs submitted at once through GraphQL to `dagster
dev` (webserver + daemon) both finish, their DuckDB-writing steps never overlap (the "duckdb"
pool, limit 1), the DuckDB tables hold both generations whole, and the runs are in PostgreSQL
and in the UI's GraphQL."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from synth_assets.core.warehouse import Warehouse
from tests.pg_defs import FAMILIES, HUMANEVAL, PER_FAMILY, RUN_CONFIG
from tests.pg_server import start_postgres
from tests.ray_cluster import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
POOL_STEPS = {"task_pool", "raw_candidates", "verified_set"}


@pytest.fixture
def pg():
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


def _graphql(port: int, query: str) -> dict:
    r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    return r.json()["data"]


def test_two_runs_at_once_on_a_postgres_instance(pg, tmp_path, monkeypatch):
    from dagster_graphql import DagsterGraphQLClient

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.postgres.yaml", home / "dagster.yaml")
    db = tmp_path / "warehouse.duckdb"
    env = {**os.environ, **pg.env, "DAGSTER_HOME": str(home), "SYNTH_DUCKDB_PATH": str(db)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    port = free_port()
    # its log goes to a file: a pipe nobody reads fills up (64 KB) and blocks dagster dev, which
    # then cannot even stop when asked (seen once: SIGTERM, and no exit within 60 s)
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as log_file:
        dev = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "dev",
                "-f",
                "tests/pg_defs.py",
                "-d",
                str(ROOT),
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert dev.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not answer within 180 s"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            instance.add_dynamic_partitions("generation", ["1", "2"])
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        ids = [
            client.submit_job_execution("pg_generation", run_config=RUN_CONFIG, tags={"dagster/partition": g})
            for g in ("1", "2")
        ]
        deadline = time.monotonic() + 600
        while (status := {i: client.get_run_status(i) for i in ids}) and any(
            s not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
            for s in status.values()
        ):
            assert time.monotonic() < deadline, f"runs not finished within 600 s: {status}"
            time.sleep(2)
        runs = _graphql(port, "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }")
        with dg.DagsterInstance.get() as instance:
            spans = []
            for i in ids:
                starts = {e.step_key: e.timestamp for e in instance.all_logs(i, of_type=dg.DagsterEventType.STEP_START)}
                ends = {e.step_key: e.timestamp for e in instance.all_logs(i, of_type=dg.DagsterEventType.STEP_SUCCESS)}
                spans += [(starts[k], ends[k], i, k) for k in starts if k in POOL_STEPS]
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:  # not what this test is about: stop it, and say so in the log
            print(f"dagster dev did not stop within 60 s of SIGTERM; killed. Its log: {log}")
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(timeout=30)

    assert set(status.values()) == {dg.DagsterRunStatus.SUCCESS}, status
    seen = {r["runId"]: r["status"] for r in runs["runsOrError"]["results"]}
    assert {i: seen.get(i) for i in ids} == dict.fromkeys(ids, "SUCCESS")
    # the duckdb pool (limit 1): no two writing steps ran at the same time, across both runs
    spans.sort()
    assert len(spans) == 6
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    # both generations whole in DuckDB, nothing twice
    n = (len(FAMILIES) * PER_FAMILY + HUMANEVAL) * 2
    wh = Warehouse(str(db))
    for table in ("raw_candidates", "verified_set"):
        df = wh.read(table)
        assert df.group_by("generation").len().sort("generation")["len"].to_list() == [n, n], table
        assert df["candidate_id"].n_unique() == 2 * n
    assert wh.read("verified_set").filter(pl.col("sample_index") == 0)["verdict"].unique().to_list() == ["pass"]
    # and the runs live in PostgreSQL
    import psycopg2

    con = psycopg2.connect(
        host="127.0.0.1",
        port=pg.port,
        user=pg.env["PGUSER"],
        password=pg.env["PGPASSWORD"],
        dbname=pg.env["PGDATABASE"],
    )
    with con, con.cursor() as cur:
        cur.execute("select count(*) from runs where run_id = any(%s)", (ids,))
        assert cur.fetchone()[0] == 2
    con.close()
