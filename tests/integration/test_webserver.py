"""The checks show in the Dagster UI with their severities: a real dagster-webserver on a temp
DAGSTER_HOME, queried through its GraphQL API (what the UI itself uses)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dagster_ui import free_port, gql, wait_for_location, wait_for_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry: {enabled: false}\n"
        "run_coordinator: {module: dagster.core.run_coordinator, class: DefaultRunCoordinator}\n"
    )
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNTH_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "SYNTH_NIGHTLY_STATUS": "stopped",
    }
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_server(port)
        wait_for_location(port)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


CHECKS_QUERY = """{ assetNodes { assetKey { path } groupName description
  assetChecksOrError { ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { status evaluation { severity } } } } } } }"""


def test_checks_are_listed_with_blocking_and_severity_in_the_ui(webserver):
    nodes = gql(webserver, CHECKS_QUERY)["assetNodes"]
    by_asset = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert {"task_pool", "raw_candidates", "verified_set", "mixed_training_set", "drift_report"} <= set(by_asset)
    assert all(n["description"] for n in nodes)
    mix_checks = {c["name"]: c for c in by_asset["mixed_training_set"]["assetChecksOrError"]["checks"]}
    assert mix_checks["human_share_at_or_above_floor"]["blocking"] is True
    assert mix_checks["gx_column_pair_values_a_to_be_greater_than_b__human_share_human_floor"]["blocking"] is True
    assert mix_checks["gx_column_values_to_not_be_null__license"]["blocking"] is False  # a warning
    drift_checks = {c["name"]: c for c in by_asset["drift_report"]["assetChecksOrError"]["checks"]}
    assert drift_checks["gx_column_values_to_not_be_in_set__status"]["blocking"] is False
    gate = {c["name"]: c for c in by_asset["model_eval"]["assetChecksOrError"]["checks"]}
    assert (by_asset["model_eval"]["groupName"], gate["promotion_gate"]["blocking"]) == ("training", True)

    repo = '{repositoryLocationName: "synth_platform", repositoryName: "__repository__"}'
    added = gql(
        webserver,
        f'mutation {{ addDynamicPartition(repositorySelector: {repo}, partitionsDefName: "generation", '
        'partitionKey: "1") { __typename } }',
    )["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess", added
    launched = gql(
        webserver,
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "synth_platform",
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": ["task_pool"]}],
                },
                "runConfigData": {"ops": {"task_pool": {"config": {"tasks_per_family": 2, "humaneval_tasks": 1}}}},
                "mode": "default",
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "1"}]},  # generation 1
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    for _ in range(240):
        status = gql(webserver, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"][
            "status"
        ]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    assert status == "SUCCESS"
    nodes = gql(webserver, CHECKS_QUERY)["assetNodes"]
    pool = next(n for n in nodes if n["assetKey"]["path"] == ["task_pool"])
    results = {c["name"]: c["executionForLatestMaterialization"] for c in pool["assetChecksOrError"]["checks"]}
    assert results["gx_column_values_to_be_unique__task_id"]["status"] == "SUCCEEDED"
    assert results["gx_column_values_to_be_unique__task_id"]["evaluation"]["severity"] == "ERROR"
    assert results["gx_column_values_to_be_in_set__source"]["evaluation"]["severity"] == "WARN"
