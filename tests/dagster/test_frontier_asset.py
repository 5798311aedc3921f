"""capability_frontier as an asset: it measures the model in service once, picks the levels a
generation samples at, and raw_candidates samples only those (named skill double, no model)."""

import dagster as dg
import polars as pl

from synth_assets.assets.frontier import capability_frontier
from synth_assets.assets.pipeline import RawCandidatesConfig, raw_candidates
from synth_assets.assets.sources import TaskPoolConfig, task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.resources import GenerationalIOManager, HumanEvalSplitResource, WarehouseResource
from tests.conftest import materialize_generation
from tests.doubles import SkillGeneratorResource

# level 1 half solved greedily (16 of 30 items: climb_at 0.5) and found by sampling; level 2
# found by one sample in eight; level 3 never
SKILL = SkillGeneratorResource(
    right_at={"chain_sum@1": [1, 2, 3, 4, 5, 6, 7, 8], "chain_sum@2": [3], "chain_sum@3": []},
    greedy_items={"chain_sum@1": 16},
)
POOL = TaskPoolConfig(
    reasoning_gym_families=["chain_sum@1", "gcd"],
    levels_above=2,
    tasks_per_family=3,
    humaneval_tasks=0,
    include_synthesized=False,
)


def _run(db_path: str, instance: dg.DagsterInstance, **configs: object) -> dg.ExecuteInProcessResult:
    """task_pool, capability_frontier and raw_candidates of the next generation with SKILL;
    ``configs`` add run configs by asset."""
    wh = WarehouseResource(path=db_path)
    return materialize_generation(
        [task_pool, capability_frontier, raw_candidates, *synthesized_tasks.to_source_assets()],
        instance,
        resources={
            "warehouse": wh,
            "io_manager": GenerationalIOManager(warehouse=wh),
            "generator": SKILL,
            "humaneval_split": HumanEvalSplitResource(),
        },
        run_config=dg.RunConfig(
            {"task_pool": POOL, "raw_candidates": RawCandidatesConfig(samples_per_task=1), **configs}
        ),
    )


def test_the_frontier_picks_the_levels_and_raw_candidates_samples_only_those(db_path, instance):
    result = _run(db_path, instance)
    frontier = result.output_for_node("capability_frontier")
    raw = result.output_for_node("raw_candidates")
    pool = result.output_for_node("task_pool")
    assert (
        sorted(set(pool["family"])),
        frontier.select("family", "status", "chosen").rows(),
        sorted(set(raw["family"])),
    ) == (
        ["chain_sum@1", "chain_sum@2", "chain_sum@3", "gcd"],
        [("chain_sum@1", "learnable", True), ("chain_sum@2", "learnable", True)],
        ["chain_sum@1", "chain_sum@2", "gcd"],
    )


def test_a_model_still_in_service_is_not_measured_again(db_path, instance):
    _run(db_path, instance)
    second = _run(db_path, instance)
    stored = WarehouseResource(path=db_path).get().read("capability_frontier")
    assert (
        SkillGeneratorResource.last.asked,
        second.output_for_node("capability_frontier")["chosen"].to_list(),
        sorted(stored["generation"].unique().to_list()),
    ) == ([], [True, True], [1, 2])


def test_the_frontier_chart_is_on_the_assets_page(db_path, instance):
    meta = _run(db_path, instance).asset_materializations_for_node("capability_frontier")[0].metadata
    assert (meta["chosen"].value, meta["chart"].value.startswith("![greedy pass rate by level")) == (
        ["chain_sum@1", "chain_sum@2"],
        True,
    )


def test_steering_off_generates_at_the_levels_as_written(db_path, instance):
    result = _run(db_path, instance, capability_frontier={"config": {"steer": False}})
    raw = result.output_for_node("raw_candidates")
    assert (sorted(set(raw["family"])), SkillGeneratorResource.last.asked) == (["chain_sum@1", "gcd"], [])


def test_the_chart_draws_each_models_line():
    from synth_assets.core.quality.charts import frontier_chart_png

    history = pl.DataFrame(
        {
            "model_id": ["base", "base", "g1", "g1"],
            "base_family": ["chain_sum"] * 4,
            "level": [1, 2, 1, 2],
            "greedy_rate": [0.3, 0.1, 0.7, 0.4],
        }
    )
    assert frontier_chart_png(history)[:8] == b"\x89PNG\r\n\x1a\n"
