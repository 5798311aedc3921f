"""A code location for the PostgreSQL instance test: the real task pool, generation and
verification assets, with the named generator double (tests/doubles.py) instead of the model,
on the DuckDB file ``SYNTH_DUCKDB_PATH``, run by the multiprocess executor."""

import json

import dagster as dg
import polars as pl

from synth_assets.assets._common import GENERATIONS
from synth_assets.assets.frontier import capability_frontier
from synth_assets.assets.pipeline import raw_candidates, verified_set
from synth_assets.assets.sources import task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.core.tasks.sources import humaneval_tasks, reasoning_gym_tasks
from synth_assets.resources import GenerationalIOManager, HumanEvalSplitResource, SandboxResource, WarehouseResource
from tests.doubles import OracleGeneratorResource, reference_answers

FAMILIES, PER_FAMILY, HUMANEVAL = ["gcd", "letter_counting"], 3, 2
RUN_CONFIG = {
    "ops": {
        "task_pool": {
            "config": {
                "reasoning_gym_families": FAMILIES,
                "tasks_per_family": PER_FAMILY,
                "humaneval_tasks": HUMANEVAL,
                "include_synthesized": False,
                "fresh_seeds": False,  # both generations draw seed 42's tasks, whose answers the oracle knows
            }
        },
        "raw_candidates": {"config": {"samples_per_task": 2}},
    }
}
_tasks = pl.concat([reasoning_gym_tasks(FAMILIES, PER_FAMILY, 42), humaneval_tasks(HUMANEVAL, 0.3, 0.2)])
_wh = WarehouseResource(path=dg.EnvVar("SYNTH_DUCKDB_PATH"))

pg_generation = dg.define_asset_job(
    "pg_generation",
    selection=["task_pool", "capability_frontier", "raw_candidates", "verified_set"],
    partitions_def=GENERATIONS,
)

defs = dg.Definitions(
    assets=[task_pool, capability_frontier, raw_candidates, verified_set, *synthesized_tasks.to_source_assets()],
    jobs=[pg_generation],
    resources={
        "warehouse": _wh,
        "io_manager": GenerationalIOManager(warehouse=_wh),
        "generator": OracleGeneratorResource(answers_json=json.dumps(reference_answers(_tasks))),
        "sandbox": SandboxResource(),
        "humaneval_split": HumanEvalSplitResource(),
    },
    executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
)
