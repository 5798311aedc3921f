"""The whole graph through dagster.materialize() on a temp DuckDB, with the real local model."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from synth_assets.assets.evaluation import GeneratorEvalConfig
from synth_assets.assets.judging import JudgeCalibrationConfig
from synth_assets.assets.pipeline import JudgeConfig, MixConfig, RawCandidatesConfig, ReviseConfig, VerifiedSetConfig
from synth_assets.assets.sources import TaskPoolConfig
from synth_assets.assets.synthesis import SynthesizedTasksConfig
from synth_assets.assets.training import HeldoutConfig
from synth_assets.core.warehouse import Warehouse
from synth_assets.definitions import GENERATION_ASSETS, GENERATION_CHECKS, defs
from tests.conftest import materialize_generation

SMALL = {
    # synthesis stays on (a part-synthesized pool is the normal case) but proposes one answer task
    # per method; the slow code-task gate has its own end-to-end test in test_task_synthesis.py
    "synthesized_tasks": SynthesizedTasksConfig(
        proposals_per_method=1,
        seed_families=["gcd", "basic_arithmetic"],
        seeds_per_family=3,
        methods=["new_task", "harder", "paraphrase", "edge_case"],
    ),
    "task_pool": TaskPoolConfig(
        reasoning_gym_families=["gcd", "letter_counting"], tasks_per_family=3, humaneval_tasks=2
    ),
    "raw_candidates": RawCandidatesConfig(samples_per_task=2, code_max_tokens=48),
    "generator_eval": GeneratorEvalConfig(max_tasks=2, code_max_tokens=48),
    "heldout_reasoning": HeldoutConfig(families=["gcd"], items_per_family=3),
    "judge_calibration": JudgeCalibrationConfig(rows_per_cell=2, human_rows=2, pairs=2),
}
TABLES = [
    "task_pool",
    "human_reference",
    "heldout_eval",
    "raw_candidates",
    "verified_set",
    "judge_calibration",
    "filtered_set",
    "filter_drops",
    "mixed_training_set",
    "drift_report",
    "preference_pairs",
    "generator_eval",
    "review_queue",
]


def run(resources, instance, generation=None, **overrides):
    return materialize_generation(
        GENERATION_ASSETS + GENERATION_CHECKS,
        instance,
        generation,
        resources=resources,
        run_config=dg.RunConfig({**SMALL, **overrides}),
        raise_on_error=False,
    )


def failure_messages(result) -> str:
    out = []
    for ev in result.all_events:
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            data = ev.step_failure_data
            if data.user_failure_data and data.user_failure_data.description:
                out.append(data.user_failure_data.description)
            err = data.error
            while err is not None:  # the UI shows the whole chain of causes
                out.append(err.message)
                err = err.cause
    return "\n".join(out)


def test_definitions_load_with_job_and_schedule():
    dg.Definitions.validate_loadable(defs)
    assert defs.get_job_def("nightly_regeneration")
    sched = defs.get_schedule_def("nightly_regeneration_schedule")
    assert sched.cron_schedule == "0 3 * * *" and sched.default_status == dg.DefaultScheduleStatus.RUNNING
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(TABLES) <= keys


def test_the_nightly_schedule_adds_the_next_generation_and_requests_it():
    from synth_assets.definitions import nightly_regeneration_schedule

    with dg.instance_for_test() as instance:  # a schedule context needs an instance with a ref
        instance.add_dynamic_partitions("generation", ["1", "2"])
        request = nightly_regeneration_schedule(dg.build_schedule_context(instance=instance))
        assert request.partition_key == "3" and request.run_key == "generation-3"
        assert instance.get_dynamic_partitions("generation") == ["1", "2", "3"]


@pytest.mark.slow
def test_two_generations_end_to_end(resources, instance, db_path):
    first = run(resources, instance)
    assert first.success, failure_messages(first)
    second = run(resources, instance)
    assert second.success, failure_messages(second)

    wh = Warehouse(db_path)
    for t in TABLES:
        assert wh.table_exists(t), t
    for g in (1, 2):
        n = {
            t: wh.read(t, generation=g).height
            for t in ("raw_candidates", "verified_set", "filtered_set", "filter_drops")
        }
        pool = wh.read("raw_candidates", generation=g)["task_id"].n_unique()  # configured tasks + synthesized ones
        assert pool >= 3 * 2 + 2
        assert n["raw_candidates"] == 2 * pool == n["verified_set"] == n["filtered_set"] + n["filter_drops"]
        ids = set(wh.read("raw_candidates", generation=g)["candidate_id"])
        kept_or_dropped = set(wh.read("filtered_set", generation=g)["candidate_id"]) | set(
            wh.read("filter_drops", generation=g)["candidate_id"]
        )
        assert ids == kept_or_dropped
    raw = wh.read("raw_candidates")
    for col in (
        "generator",
        "model",
        "prompt_template",
        "temperature",
        "seed",
        "completion_tokens",
        "latency_s",
        "generation_key",
    ):
        assert raw[col].null_count() == 0, col
    assert raw["model"][0].startswith("google/gemma-3-270m")
    assert raw.filter(pl.col("family") != "humaneval")["prompt_template"][0] == "answer_3shot_v1"

    verdicts = wh.read("verified_set", generation=2)
    assert (
        verdicts.height == wh.read("raw_candidates", generation=2).height
        and verdicts["verifier_name"].null_count() == 0
    )
    assert verdicts.filter(pl.col("family") == "humaneval")["verifier_name"].unique().to_list() == ["python_tests"]

    mix = wh.read("mixed_training_set", generation=2)
    assert (mix["source"] == "human").mean() >= 0.35
    assert json.loads(mix["messages"][0])[0]["role"] == "user"

    report = wh.read("drift_report", generation=2)
    assert set(report["corpus"]) == {"accepted", "generated", "eval"}
    gen = report.filter((pl.col("corpus") == "generated") & (pl.col("metric") == "distinct_2")).row(0, named=True)
    assert gen["previous_generation"] == 1 and gen["previous"] is not None and gen["first"] is not None
    assert wh.read("drift_report", generation=1).filter(pl.col("corpus") == "generated")["status"][0] == "baseline"

    evals = second.get_asset_check_evaluations()
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in evals}
    for name in (
        "candidates_accounted_for",
        "human_share_at_or_above_floor",
        "no_heldout_contamination",
        "train_validation_disjoint",
    ):
        assert any(k[1] == name and e.passed for k, e in checks.items()), name
    assert all(e.passed for e in evals if e.severity == dg.AssetCheckSeverity.ERROR)
    assert ("judge_calibration", "judge_trusted") in checks  # the real model judged, the check says whether to trust it
    gx_assets = {k[0] for k in checks if k[1].startswith("gx_")}
    assert gx_assets >= {
        "task_pool",
        "raw_candidates",
        "verified_set",
        "filtered_set",
        "mixed_training_set",
        "drift_report",
    }
    assert (
        wh.read("generator_eval", generation=2).filter(~pl.col("prompt_template").str.starts_with("heldout_")).height
        == 2
    )
    assert report.filter(pl.col("metric") == "heldout_pass_rate").height == 1
    assert set(report.filter(pl.col("corpus") == "generated")["metric"]) >= {
        "DIVERSITY_LOSS",
        "FIDELITY_GAP",
        "rare_type_coverage",
        "js_distance_to_human",
    }
    out = Path(db_path).parent / "exports" / "generation_0002"
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "train.jsonl",
        "train.parquet",
        "validation.jsonl",
        "validation.parquet",
    ]
    card = (out / "README.md").read_text()
    assert "Gemma Terms of Use" in card and "MIT (openai/human-eval)" in card and "verdict_fail" in card
    assert pl.read_parquet(out / "train.parquet")["model_terms"].drop_nulls().str.starts_with("Gemma").all()
    filt = second.asset_materializations_for_node("filtered_set")
    fmeta = next(m for m in filt if m.asset_key == dg.AssetKey("filtered_set")).metadata
    assert fmeta["previous_rows_compared"].value == wh.read("filtered_set", generation=1).height
    assert "coverage" in fmeta and "drops_by_reason" in fmeta
    meta = second.asset_materializations_for_node("raw_candidates")[0].metadata
    assert (
        meta["dagster/row_count"].value == wh.read("raw_candidates", generation=2).height
        and meta["generation"].value == 2
    )
    assert "dagster/column_schema" in meta


def test_bad_configuration_fails_with_the_field_named(resources, instance):
    bad = run(resources, instance, task_pool=TaskPoolConfig(reasoning_gym_families=["no_such_family"]))
    assert not bad.success
    assert "task_pool.reasoning_gym_families: unknown family 'no_such_family'" in failure_messages(bad)


def test_malformed_task_file_fails_with_file_and_field(resources, instance, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"task_id": "x", "prompt": "2+2?", "verifier": "math"}) + "\n")
    bad = run(resources, instance, task_pool=TaskPoolConfig(reasoning_gym_families=[], user_task_files=[str(path)]))
    msg = failure_messages(bad)
    assert not bad.success and str(path) in msg and "field 'answer' is missing" in msg


def test_out_of_range_config_is_rejected_naming_the_field(resources, instance):
    with pytest.raises(ValueError, match=r"human_floor\s+Input should be less than or equal to 1"):
        MixConfig(human_floor=1.5)
    # the same value from YAML/Launchpad config fails the step with the field named
    bad = run(resources, instance, mixed_training_set={"config": {"human_floor": 1.5}})
    assert not bad.success and "human_floor" in failure_messages(bad)


@pytest.mark.slow
def test_judge_and_constitutional_revisions_in_the_pipeline(resources, instance, db_path):
    res = run(
        resources,
        instance,
        verified_set=VerifiedSetConfig(
            judge=JudgeConfig(enabled=True, score_all=True), revise=ReviseConfig(enabled=True, max_revisions=3)
        ),
    )
    assert res.success, failure_messages(res)
    wh = Warehouse(db_path)
    verified = wh.read("verified_set", generation=1)
    raw = wh.read("raw_candidates", generation=1)
    revisions = verified.filter(pl.col("revision_of").is_not_null())
    assert 1 <= revisions.height <= 3 and set(revisions["revision_of"]) <= set(raw["candidate_id"])
    assert verified.height == raw.height + revisions.height
    assert verified.filter(pl.col("revision_of").is_null())["judge_detail"].null_count() == 0  # every candidate judged
    checks = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    assert checks["candidates_accounted_for"]
    pairs = wh.read("preference_pairs", generation=1)
    assert set(pairs.columns) >= {"chosen", "rejected", "basis"}
