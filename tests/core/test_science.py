"""The science family: proposals validated by simulation, through the platform's own paths."""

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.curate.review import PROMISING_SCIENCE, flag_rows
from synth_assets.core.generators.generation import CANDIDATE_SCHEMA, PromptSettings
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.science import PROJECTILE, G, simulate
from synth_assets.core.tasks.sources import conform, reasoning_gym_dataset, reasoning_gym_tasks
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items, score
from synth_assets.core.verify.verification import verify_candidates


@settings(max_examples=40, deadline=None)
@given(speed=st.floats(1, 60), angle=st.floats(5, 85))
def test_the_simulation_matches_the_closed_form(speed, angle):
    landed, top = simulate(speed, angle)
    th = math.radians(angle)
    assert landed == pytest.approx(speed**2 * math.sin(2 * th) / G, rel=1e-4, abs=1e-3)
    assert top == pytest.approx((speed * math.sin(th)) ** 2 / (2 * G), rel=1e-3, abs=1e-3)


def test_every_reference_design_meets_its_constraints():
    ds = reasoning_gym_dataset(PROJECTILE, 200, 5)
    assert all(ds.check(ds[i]["answer"], ds[i]) == (1.0, []) for i in range(200))


def _candidates(tasks: pl.DataFrame, completions: list[str]) -> pl.DataFrame:
    rows = [
        {**t, "completion": c, "candidate_id": f"c{i}", "generation": 1, "sample_index": i}
        for i, (t, c) in enumerate(zip(tasks.to_dicts(), completions))
    ]
    return conform(rows, CANDIDATE_SCHEMA)


def test_proposals_are_verified_by_simulation_with_the_violations_as_detail():
    tasks = reasoning_gym_tasks([PROJECTILE], 1, 42)
    assert tasks.select("domain", "source", "verifier").row(0) == ("science", "reasoning_gym", "reasoning_gym")
    meta = reasoning_gym_dataset(PROJECTILE, 1, 42)[0]["metadata"]
    right = tasks["answer"][0]
    too_fast = f"speed={meta['speed_limit'] + 5}, angle=45"
    out = verify_candidates(_candidates(pl.concat([tasks] * 3), [f" {right}\n", f" {too_fast}", " 42"]), Sandbox())
    assert out["verdict"].to_list() == ["pass", "fail", "fail"]
    assert out["score"][0] == 1.0 and out["score"][2] == 0.0
    assert out["verdict_detail"][0].endswith("all 4 constraints met in simulation")
    assert f"speed {meta['speed_limit'] + 5} m/s is not within (0, {meta['speed_limit']}]" in out["verdict_detail"][1]
    assert "no design" in out["verdict_detail"][2]


def test_heldout_items_use_other_seeds_and_a_harder_variant():
    items = heldout_items(HeldoutSettings(families=[PROJECTILE], items_per_family=5), PromptSettings())
    assert items.group_by("variant").len().sort("variant").rows() == [("harder", 5), ("heldout", 5), ("rephrased", 5)]
    train = set(reasoning_gym_tasks([PROJECTILE], 50, 42)["prompt"])
    assert not train & set(items["question"])
    harder = items.filter(pl.col("variant") == "harder").row(0, named=True)
    assert float(harder["question"].split(" lands ")[1].split(" m ")[0]) >= 150
    assert score(harder, harder["answer"]) is True


def test_the_most_promising_accepted_proposals_go_to_a_person():
    rows = conform(
        [
            {
                "candidate_id": f"c{i}",
                "generation": 1,
                "task_id": f"t{i % 3}",
                "family": PROJECTILE,
                "domain": "science",
                "verdict": "pass",
                "score": 1.0,
                "completion": f"speed={10 + i}, angle=40",
            }
            for i in range(6)
        ],
        {**CANDIDATE_SCHEMA, "verdict": pl.String, "score": pl.Float64},
    )
    queue = flag_rows(rows, spot_checks_per_family=0, judge_threshold=0.0, science_per_family=3)
    assert queue["flag_reason"].to_list() == [PROMISING_SCIENCE] * 3
    assert queue["task_id"].n_unique() == 3  # one per task before a second of any


@pytest.mark.timeout(120)  # a hang guard: before the step bound, speed=1000000 flew for minutes
def test_an_absurd_proposal_cannot_stall_verification():
    ds = reasoning_gym_dataset(PROJECTILE, 1, 42)
    entry = ds[0]
    score, violated = ds.check("speed=1000000, angle=45", entry)
    assert score == 0.25 and float(violated[1].split()[2]) == pytest.approx(1e12 / G, rel=1e-6)
    huge = "9" * 400  # parses as inf
    assert ds.check(f"speed={huge}, angle=45", entry) == (
        0.0,
        [f"speed {huge[:20]} or angle 45 is not a finite number"],
    )
