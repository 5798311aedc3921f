"""Great Expectations suites as blocking checks, the alerts sensor, degradation, the schedule."""

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import polars as pl
import pytest

from quality_checks.gx_checks import load_suite, run_suite
from synth_assets.alerts import failed_check_alerts
from synth_assets.assets.evaluation import GeneratorEvalConfig
from synth_assets.assets.pipeline import CustomVerifierConfig, RawCandidatesConfig, VerifiedSetConfig
from synth_assets.assets.sources import TaskPoolConfig
from synth_assets.core.quality.drift import eval_rows
from synth_assets.core.warehouse import Warehouse
from synth_assets.definitions import CHECK_KEYS, GENERATION_ASSETS, GENERATION_CHECKS, defs
from tests.conftest import materialize_generation


def test_suite_reports_offending_rows_and_gx_errors():
    bad = pl.DataFrame(
        {
            "row_id": ["a", "a", "b"],
            "messages": ["[]", None, "[]"],
            "split": ["train", "test", "train"],
            "source": ["synthetic", "synthetic", "human"],
            "license": ["x", "x", "x"],
            "human_share": [0.2] * 3,
            "human_floor": [0.5] * 3,
        }
    )
    out = {
        o["expectation"]["type"] + ":" + str(o["expectation"]["kwargs"].get("column")): o
        for o in run_suite(bad, load_suite("mixed_training_set"))
    }
    assert not out["expect_column_values_to_be_unique:row_id"]["success"]
    assert out["expect_column_values_to_be_unique:row_id"]["unexpected_index"] == [0, 1]
    assert not out["expect_column_values_to_be_in_set:split"]["success"]
    # the share the mix stores (in its floor's unit) under the floor it was built under
    assert not out["expect_column_pair_values_a_to_be_greater_than_b:None"]["success"]
    missing = run_suite(bad.drop("license"), load_suite("mixed_training_set"))[-1]
    assert not missing["success"] and missing["gx_error"]  # broken setup is flagged, not taken for bad data


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


@pytest.mark.model
@pytest.mark.slow
def test_a_critical_failure_blocks_downstream_and_alerts(resources, instance, db_path, tmp_path, monkeypatch, webhook):
    # a sloppy custom verifier returns scores outside [0, 1]: verified_set's suite must stop the pipeline
    (tmp_path / "sloppy.py").write_text(
        textwrap.dedent("""
        def score(row):
            return {"score": 5.0, "verdict": "pass", "detail": "scored on a 0-10 scale by mistake"}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "\n".join(
            json.dumps({"task_id": f"t{i}", "prompt": f"Say {i}.", "verifier": "custom:sloppy"}) for i in range(3)
        )
    )
    run_config = dg.RunConfig(
        {
            "task_pool": TaskPoolConfig(reasoning_gym_families=[], humaneval_tasks=0, user_task_files=[str(tasks)]),
            "raw_candidates": RawCandidatesConfig(samples_per_task=1, answer_max_tokens=4),
            "verified_set": VerifiedSetConfig(
                custom_verifiers=[CustomVerifierConfig(name="sloppy", callable="sloppy:score")]
            ),
            "generator_eval": GeneratorEvalConfig(max_tasks=0, reasoning_items=False),
        }
    )
    result = materialize_generation(
        GENERATION_ASSETS + GENERATION_CHECKS,
        instance,
        resources=resources,
        run_config=run_config,
        raise_on_error=False,
    )
    assert not result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert (
        "verified_set" in materialized and "filtered_set" not in materialized and "training_export" not in materialized
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    score_check = next(e for e in failed if e.check_name == "gx_column_values_to_be_between__score")
    assert score_check.severity == dg.AssetCheckSeverity.ERROR
    assert "candidate_id" in score_check.metadata["offending_rows"].value  # the reviewer sees which rows
    assert not Warehouse(db_path).table_exists("mixed_training_set")

    url, received = webhook
    monkeypatch.setenv("SYNTH_ALERT_WEBHOOK_URL", url)
    sensor = defs.get_sensor_def("quality_check_alerts")
    ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": resources["warehouse"]})
    sensor(ctx)
    alerts = Warehouse(db_path).read("alerts")
    assert "gx_column_values_to_be_between__score" in alerts["check_name"].to_list()
    assert {a["check_name"] for a in received} == set(alerts["check_name"])
    assert alerts.filter(pl.col("check_name") == "gx_column_values_to_be_between__score")["severity"][0] == "ERROR"
    # a second evaluation with the new cursor raises nothing new
    again = dg.build_sensor_context(
        instance=instance, cursor=ctx.cursor, resources={"warehouse": resources["warehouse"]}
    )
    sensor(again)
    assert Warehouse(db_path).read("alerts").height == alerts.height


def test_warn_failures_are_alerted_too(instance):
    @dg.asset
    def thing():
        return 1

    @dg.asset_check(asset=thing)
    def soft(thing):
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="just a warning")

    assert dg.materialize([thing, soft], instance=instance).success  # WARN does not fail the run
    seen: dict = {}
    alerts = failed_check_alerts(instance, [dg.AssetCheckKey(dg.AssetKey("thing"), "soft")], seen)
    assert [a["severity"] for a in alerts] == ["WARN"]
    assert failed_check_alerts(instance, [dg.AssetCheckKey(dg.AssetKey("thing"), "soft")], seen) == []


def test_degradation_beyond_noise_is_flagged():
    assert eval_rows(2, {1: (10, 20), 2: (1, 20)})["status"][0] == "fail"
    assert eval_rows(2, {1: (10, 20), 2: (9, 20)})["status"][0] == "ok"
    assert eval_rows(1, {1: (3, 20)})["status"][0] == "baseline"
    assert eval_rows(2, {1: (0, 12), 2: (0, 12)})["status"][0] == "ok"


def test_schedule_runs_by_default_and_targets_the_whole_graph():
    sched = defs.get_schedule_def("nightly_regeneration_schedule")
    assert sched.default_status == dg.DefaultScheduleStatus.RUNNING
    assert sched.execution_timezone == "UTC" and sched.cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def("nightly_regeneration")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {"raw_candidates", "drift_report"}
    sensor = defs.get_sensor_def("quality_check_alerts")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert len(CHECK_KEYS) > 40
