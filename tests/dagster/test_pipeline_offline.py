"""The whole graph through dagster.materialize() with a named generator test double
(tests/doubles.py), so every path is forced and every assertion has one expected outcome.
Fast and offline; the real-model end-to-end tests are in test_pipeline.py."""

import json
from pathlib import Path

import dagster as dg
import polars as pl

from synth_assets.assets.pipeline import MixConfig
from synth_assets.core.warehouse import Warehouse
from tests.conftest import N_TASKS
from tests.doubles import OracleGeneratorResource
from tests.runs import failure_messages, run_offline


def test_a_generation_accepts_exactly_the_right_answers_and_every_check_passes(offline_resources, instance, db_path):
    result = run_offline(offline_resources, instance)
    assert result.success, failure_messages(result)
    wh = Warehouse(db_path)
    verified = wh.read("verified_set", generation=1)
    assert verified.height == 2 * N_TASKS
    passed = verified.filter(pl.col("verdict") == "pass")
    assert sorted(passed["sample_index"].to_list()) == [0] * N_TASKS  # every right answer, no wrong one
    kept = wh.read("filtered_set", generation=1)
    assert kept.height == N_TASKS
    mix = wh.read("mixed_training_set", generation=1)
    synthetic, human = mix.filter(pl.col("source") == "synthetic"), mix.filter(pl.col("source") == "human")
    assert synthetic.height == N_TASKS and human.height / mix.height >= 0.35
    assert [e.passed for e in result.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR] == [
        True
    ] * len([e for e in result.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR])
    assert OracleGeneratorResource.builds == 1  # raw_candidates and generator_eval share one loaded generator
    drift = wh.read("drift_report", generation=1).filter(pl.col("corpus") == "eval")
    # the double knows the held-out reasoning answers (and their shifts), not held-out HumanEval's
    assert dict(zip(drift["metric"], drift["current"])) == {
        "heldout_pass_rate": 0.0,
        "heldout_reasoning_pass_rate": 1.0,
        "shifted_pass_rate": 1.0,
    }
    paths = wh.export_paths(1)
    assert (
        paths is not None
        and (pl.read_ndjson(paths["train"]).height + pl.read_ndjson(paths["validation"]).height) == mix.height
    )
    card = Path(paths["card"]).read_text()
    assert f"| verdict_fail | {N_TASKS} |" in card and "human_floor" not in card and "floor 35%" in card


def test_generations_are_partitions_that_accumulate_and_can_be_rerun(offline_resources, instance, db_path):
    assert run_offline(offline_resources, instance).success
    assert run_offline(offline_resources, instance).success
    assert sorted(instance.get_dynamic_partitions("generation")) == ["1", "2"]
    wh = Warehouse(db_path)
    mix2 = wh.read("mixed_training_set", generation=2)
    # generation 2's right answers repeat generation 1's: dropped as duplicates of the history
    assert wh.read("filtered_set", generation=2).height == 0
    assert set(mix2.filter(pl.col("source") == "synthetic")["origin_generation"]) == {1}
    mix1_before = wh.read("mixed_training_set", generation=1)

    # re-run the mix and the drift report of generation 1 after generation 2 exists, with a new floor
    again = run_offline(
        offline_resources,
        instance,
        generation=1,
        only=["mixed_training_set", "drift_report"],
        mixed_training_set=MixConfig(human_floor=0.5),
    )
    assert again.success, failure_messages(again)
    mix1 = wh.read("mixed_training_set", generation=1)
    assert set(mix1["human_floor"]) == {0.5} and set(wh.read("mixed_training_set", generation=2)["human_floor"]) == {
        0.35
    }
    assert mix1.filter(pl.col("source") == "synthetic")["origin_generation"].max() == 1  # never a later generation
    assert mix1.height <= mix1_before.height
    assert wh.read("drift_report", generation=2).height > 0  # generation 2 untouched


def test_floor_violation_fails_the_run_and_keeps_the_previous_mix(offline_resources, instance, db_path, tmp_path):
    assert run_offline(offline_resources, instance).success
    wh = Warehouse(db_path)
    refs = tmp_path / "tiny_human.jsonl"
    refs.write_text(json.dumps({"prompt": "p", "response": "one human row"}) + "\n")
    # generation 2: N_TASKS accepted synthetic rows of generation 1 against one human row, floor 90%
    bad = run_offline(
        offline_resources,
        instance,
        human_reference={"config": {"include_humaneval": False, "user_files": [str(refs)]}},
        mixed_training_set=MixConfig(human_floor=0.9, on_floor_violation="fail"),
    )
    assert not bad.success and "below the floor of 90%" in failure_messages(bad)
    assert wh.read("mixed_training_set", generation=1).height > 0  # the earlier mix is untouched
    assert wh.read("mixed_training_set", generation=2).height == 0
    assert not (Path(db_path).parent / "exports" / "generation_0002").exists()  # nothing published
    assert wh.export_paths(2) is None
