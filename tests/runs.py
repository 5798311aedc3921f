"""Running the generation graph in tests and reading why a run failed."""

import dagster as dg

from synth_assets.assets._common import step_failures
from synth_assets.assets.frontier import capability_frontier
from synth_assets.assets.pipeline import RawCandidatesConfig, raw_candidates
from synth_assets.assets.sources import TaskPoolConfig, task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.definitions import GENERATION_ASSETS, GENERATION_CHECKS
from synth_assets.resources import GenerationalIOManager, GeneratorResource, HumanEvalSplitResource, WarehouseResource
from tests.conftest import OFFLINE_CONFIG, materialize_generation

# the tables a generation writes
GENERATION_TABLES = [
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


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """Every failed step's description and its error's whole chain of causes (what the UI
    shows), one per line."""
    out = []
    for failure in step_failures(result):
        out += [failure.description] if failure.description else []
        out += failure.errors
    return "\n".join(out)


def run_offline(
    resources: dict,
    instance: dg.DagsterInstance,
    generation: int | None = None,
    only: list[str] | None = None,
    **overrides: object,
) -> dg.ExecuteInProcessResult:
    """The generation graph (or only the assets ``only`` names) with ``OFFLINE_CONFIG`` and the
    ``offline_resources`` fixture's named generator double; ``overrides`` replace configs by asset."""
    extra = {"selection": dg.AssetSelection.assets(*only)} if only else {}
    config = {k: v for k, v in {**OFFLINE_CONFIG, **overrides}.items() if not only or k in only}
    return materialize_generation(
        GENERATION_ASSETS + GENERATION_CHECKS,
        instance,
        generation,
        resources=resources,
        run_config=dg.RunConfig(config),
        raise_on_error=False,
        **extra,
    )


# six reasoning tasks, no synthesized ones: what the generator tests ask a generator for
POOL = TaskPoolConfig(
    reasoning_gym_families=["gcd", "letter_counting"], tasks_per_family=3, humaneval_tasks=0, include_synthesized=False
)


def materialize_raw(
    db_path: str,
    generator: GeneratorResource,
    instance: dg.DagsterInstance,
    samples: int = 2,
    pool: TaskPoolConfig = POOL,
    resample: int = 0,
) -> dg.ExecuteInProcessResult:
    """``task_pool`` and ``raw_candidates`` of the next generation with ``generator``: ``samples``
    a task, and no resampling unless asked (a sample count fixed in advance; resampling has its
    own tests, tests/core/test_resampling.py)."""
    wh = WarehouseResource(path=db_path)
    return materialize_generation(
        [task_pool, capability_frontier, raw_candidates, *synthesized_tasks.to_source_assets()],
        instance,
        raise_on_error=False,
        resources={
            "warehouse": wh,
            "io_manager": GenerationalIOManager(warehouse=wh),
            "generator": generator,
            "humaneval_split": HumanEvalSplitResource(),
        },
        run_config=dg.RunConfig(
            {
                "task_pool": pool,
                "raw_candidates": RawCandidatesConfig(samples_per_task=samples, resample_unsolved=resample),
            }
        ),
    )
