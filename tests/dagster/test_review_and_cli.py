"""The review queue (people accept or reject rows; the next mix honours it), the chart in the
drift report's metadata, and the headless CLI."""

import base64
import json

import dagster as dg
import polars as pl

from synth_assets.cli import main as cli
from synth_assets.core.curate.curation import FILTERED_SCHEMA
from synth_assets.core.curate.review import apply_decisions, decision_rows, flag_rows, latest_decisions
from synth_assets.core.quality.charts import chart_markdown, diversity_chart_png
from synth_assets.core.quality.drift import DriftSettings, drift_report
from synth_assets.core.tasks.sources import conform
from synth_assets.core.warehouse import Warehouse
from tests.runs import failure_messages, run_offline


def accepted(n):
    return conform(
        [
            {
                "candidate_id": f"c{i}",
                "generation": 1,
                "task_id": f"t{i}",
                "family": f"f{i % 2}",
                "training_text": str(i),
                "judge_score": 0.1 if i == 0 else None,
            }
            for i in range(n)
        ],
        FILTERED_SCHEMA,
    )


def test_flags_low_judge_scores_and_spot_checks_each_family():
    q = flag_rows(accepted(10), spot_checks_per_family=2, judge_threshold=0.5)
    assert q.filter(pl.col("flag_reason") == "low_judge_score")["candidate_id"].to_list() == ["c0"]
    assert q.group_by("family").len()["len"].to_list() and all(n <= 3 for n in q.group_by("family").len()["len"])
    assert set(q["status"]) == {"pending"}


def test_latest_decision_wins_and_policies_apply():
    d = pl.concat([decision_rows(["c1"], "reject"), decision_rows(["c1"], "accept"), decision_rows(["c2"], "reject")])
    decisions = latest_decisions(d)
    assert decisions == {"c1": "accept", "c2": "reject"}
    keep, rej, held = apply_decisions(accepted(5), decisions, flagged={"c1", "c3"}, require_acceptance=False)
    assert "c2" not in keep["candidate_id"].to_list() and rej == 1 and held == 0
    keep, rej, held = apply_decisions(accepted(5), decisions, flagged={"c1", "c3"}, require_acceptance=True)
    assert set(keep["candidate_id"]) == {"c0", "c1", "c4"} and held == 1  # c3 waits for a person


def test_chart_is_an_embedded_png():
    varied = [f"sentence {i} about topic {i * 7 % 13} and item {i * 3}" for i in range(200)]
    mix = pl.DataFrame(
        {
            "source": ["synthetic"] * 400 + ["human"] * 50,
            "origin_generation": [1] * 200 + [2] * 200 + [None] * 50,
            "response": varied + ["the same words again"] * 200 + [f"human note {i}" for i in range(50)],
        },
        schema={"source": pl.String, "origin_generation": pl.Int64, "response": pl.String},
    )
    history = pl.concat([drift_report(mix, g, DriftSettings(token_budget=800)) for g in (1, 2)])
    png = diversity_chart_png(history, corpus="accepted")
    assert png and png[:8] == b"\x89PNG\r\n\x1a\n"
    md = chart_markdown(png)
    assert md.startswith("![diversity over generations](data:image/png;base64,")
    assert base64.b64decode(md.split(",", 1)[1].rstrip(")")) == png


def test_review_decisions_reach_the_next_mix_and_the_cli_works(
    offline_resources, instance, db_path, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SYNTH_DUCKDB_PATH", db_path)
    home = tmp_path / "home"  # the instance `synth review` reports the new data version to
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    first = run_offline(offline_resources, instance)
    assert first.success, failure_messages(first)
    wh = Warehouse(db_path)
    queue = wh.read("review_queue", generation=1)
    mix1 = wh.read("mixed_training_set", generation=1)
    assert queue.height == 3 + 3 + 2  # spot checks: 3 of the 3 accepted gcd, letter_counting rows, both humaneval
    victim = queue.sort("candidate_id")["candidate_id"][0]
    assert f"s/{victim}" in mix1["row_id"].to_list()

    assert cli(["review", "list"]) == 0 and victim in capsys.readouterr().out
    assert cli(["review", "reject", victim, "--note", "wrong format"]) == 0
    assert cli(["review", "reject", "no-such-id"]) == 2 and "not in the review queue" in capsys.readouterr().err
    with dg.DagsterInstance.from_config(str(home)) as inst:  # the UI now marks the mix stale
        seen = inst.fetch_observations(dg.AssetKey("review_decisions"), limit=5).records
        assert len(seen) == 1 and seen[0].asset_observation.tags["dagster/data_version"] != "empty"

    second = run_offline(offline_resources, instance)
    assert second.success, failure_messages(second)
    mix2 = wh.read("mixed_training_set", generation=2)
    assert f"s/{victim}" not in mix2["row_id"].to_list()
    assert (
        mix2.filter(pl.col("source") == "synthetic").height == mix1.filter(pl.col("source") == "synthetic").height - 1
    )
    meta = second.asset_materializations_for_node("mixed_training_set")[0].metadata
    assert meta["rejected_by_review"].value == 1

    assert cli(["export", "--out", str(tmp_path / "out"), "--generation", "2"]) == 0
    lines = (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    assert lines and "messages" in json.loads(lines[0])
    assert cli(["drift"]) == 0 and "DIVERSITY_LOSS" in capsys.readouterr().out
    assert cli(["summary"]) == 0
    out = capsys.readouterr().out
    assert f"exported to: {wh.export_paths(2)['train']}" in out
    chart = second.asset_materializations_for_node("drift_report")[0].metadata["diversity_chart"].value
    assert "data:image/png;base64," in chart


def test_summary_says_when_a_generation_was_not_exported(offline_resources, instance, db_path, monkeypatch, capsys):
    from synth_assets.assets.pipeline import MixConfig

    monkeypatch.setenv("SYNTH_DUCKDB_PATH", db_path)
    tiny = run_offline(
        offline_resources,
        instance,
        human_reference={"config": {"include_humaneval": False}},
        mixed_training_set=MixConfig(human_floor=0.9),
    )
    assert not tiny.success
    assert cli(["summary"]) == 0
    out = capsys.readouterr().out
    assert "not exported" in out and "generation_0001" not in out


def test_synth_run_prints_a_user_error_as_one_line_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"task_id": "x", "prompt": "2+2?", "verifier": "math"}) + "\n")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        json.dumps({"ops": {"task_pool": {"config": {"reasoning_gym_families": [], "user_task_files": [str(tasks)]}}}})
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    synth = [str(Path(sys.executable).parent / "synth"), "run", "--select", "task_pool", "-c", str(cfg)]
    out = subprocess.run(synth, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and str(tasks) in errors[0] and "field 'answer' is missing" in errors[0]
    assert "Traceback" not in out.stdout + out.stderr and "Stack Trace" not in out.stdout + out.stderr
    verbose = subprocess.run([*synth, "--traceback"], env=env, capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 1 and "Stack Trace" in verbose.stdout + verbose.stderr


def test_a_refused_candidate_is_not_a_failed_run():
    from synth_assets.cli import GATE_STEP, run_outcome

    assert run_outcome(True, set()) == (0, "SUCCESS")
    assert run_outcome(False, {GATE_STEP})[0] == 0 and "refused the candidate" in run_outcome(False, {GATE_STEP})[1]
    assert run_outcome(False, {GATE_STEP, "verified_set"}) == (1, "FAILURE")
    assert run_outcome(False, {"filtered_set_candidates_accounted_for"}) == (1, "FAILURE")
