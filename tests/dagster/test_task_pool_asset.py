"""task_pool as a generational asset: each generation draws its reasoning-gym tasks with a fresh
seed (a round trains on questions the last one did not ask), and re-running a generation draws
the same ones."""

import dagster as dg
import polars as pl

from synth_assets.assets.sources import TaskPoolConfig, task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.core.tasks.sources import TaskPoolSettings
from synth_assets.resources import GenerationalIOManager, HumanEvalSplitResource, WarehouseResource
from tests.conftest import materialize_generation

# chain_sum@3 (2-digit terms): a question space far larger than the 20 tasks drawn
POOL = {"reasoning_gym_families": ["chain_sum@3"], "levels_above": 0, "tasks_per_family": 20, "humaneval_tasks": 0}


def _pool(db_path: str, instance: dg.DagsterInstance, generation: int | None = None, **config: object) -> pl.DataFrame:
    wh = WarehouseResource(path=db_path)
    result = materialize_generation(
        [task_pool, *synthesized_tasks.to_source_assets()],
        instance,
        generation,
        resources={
            "warehouse": wh,
            "io_manager": GenerationalIOManager(warehouse=wh),
            "humaneval_split": HumanEvalSplitResource(),
        },
        run_config=dg.RunConfig({"task_pool": TaskPoolConfig(**(POOL | config))}),
    )
    assert result.success
    return result.output_for_node("task_pool")


def test_each_generation_draws_new_questions_and_a_rerun_draws_the_same(db_path, instance):
    first, second = _pool(db_path, instance), _pool(db_path, instance)
    again = _pool(db_path, instance, generation=1)
    seed_2 = TaskPoolSettings().seed_for(2)

    def seeds(pool: pl.DataFrame) -> list[str]:  # task ids are rg/<family>/<seed>/<index>
        return pool["task_id"].str.split("/").list.get(2).unique().to_list()

    assert (
        len(set(first["prompt"]) & set(second["prompt"])),
        seeds(first),
        seeds(second),
        again["prompt"].to_list() == first["prompt"].to_list(),
    ) == (0, ["42"], [str(seed_2)], True)


def test_with_fresh_seeds_off_every_generation_draws_the_same_tasks(db_path, instance):
    first = _pool(db_path, instance, fresh_seeds=False)
    second = _pool(db_path, instance, fresh_seeds=False)
    assert second["prompt"].to_list() == first["prompt"].to_list()


def test_generation_1_keeps_the_seed_and_later_ones_draw_far_from_each_other():
    """reasoning-gym seeds item i with seed + i: seeds closer than the items drawn would overlap."""
    on, off = TaskPoolSettings(), TaskPoolSettings(fresh_seeds=False)
    seeds = [on.seed_for(g) for g in range(1, 30)]
    gaps = [abs(a - b) for i, a in enumerate(seeds) for b in seeds[i + 1 :]]
    assert (seeds[0], off.seed_for(5), min(gaps) > 100_000) == (42, 42, True)
