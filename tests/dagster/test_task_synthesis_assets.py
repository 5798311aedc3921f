"""Task synthesis through its assets: the pool's source shares, and a synthesized task that
passes every gate reaching the pool and the next stages (a named rule double, offline)."""

import dagster as dg
import polars as pl
import pytest

from synth_assets.assets.sources import apply_shares
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.tasks.sources import TASK_SCHEMA, conform
from tests.conftest import materialize_generation


def test_source_shares_pick_a_deterministic_subset():
    df = conform(
        [{"task_id": f"p{i}", "source": "reasoning_gym"} for i in range(30)]
        + [{"task_id": f"h{i}", "source": "humaneval"} for i in range(10)]
        + [{"task_id": f"s{i}", "source": "synthesized"} for i in range(4)],
        TASK_SCHEMA,
    )
    out = apply_shares(df, {"procedural": 0.5, "human_written": 0.3, "synthesized": 0.2})
    assert dict(out.group_by("source").len().iter_rows()) == {"reasoning_gym": 10, "humaneval": 6, "synthesized": 4}
    again = apply_shares(df.reverse(), {"procedural": 0.5, "human_written": 0.3, "synthesized": 0.2})
    assert set(again["task_id"]) == set(out["task_id"])
    with pytest.raises(SynthConfigError, match="source_shares"):
        apply_shares(df, {"invented": 1.0})


def test_an_accepted_synthesized_task_reaches_the_pool_and_is_generated_for(db_path, instance):
    """Offline, with a named rule double: exactly one proposal passes every gate, and the next
    stages see exactly that task (the embedded-model test in tests/integration/test_pipeline.py
    cannot force an acceptance)."""
    from synth_assets.assets.evaluation import GeneratorEvalConfig
    from synth_assets.assets.pipeline import RawCandidatesConfig
    from synth_assets.assets.sources import TaskPoolConfig
    from synth_assets.assets.synthesis import SynthesizedTasksConfig
    from synth_assets.core.warehouse import Warehouse
    from synth_assets.definitions import GENERATION_ASSETS, GENERATION_CHECKS
    from synth_assets.resources import GenerationalIOManager, HumanEvalSplitResource, SandboxResource, WarehouseResource
    from tests.doubles import RuleGeneratorResource
    from tests.runs import failure_messages

    wh = WarehouseResource(path=db_path)
    generator = RuleGeneratorResource(
        rules=[
            [r"Write one new question of the same kind", " What is 20 + 22?\n"],
            [r"Question: What is 20 \+ 22\?\nAnswer:$", " 42"],
        ]
    )
    config = {
        "synthesized_tasks": SynthesizedTasksConfig(
            methods=["new_task"],
            proposals_per_method=1,
            seed_families=["basic_arithmetic"],
            seeds_per_family=3,
            use_human_reference=False,
        ),
        "task_pool": TaskPoolConfig(reasoning_gym_families=["gcd"], tasks_per_family=2, humaneval_tasks=0),
        "raw_candidates": RawCandidatesConfig(samples_per_task=2),
        "generator_eval": GeneratorEvalConfig(max_tasks=0, reasoning_items=False),
    }
    result = materialize_generation(
        GENERATION_ASSETS + GENERATION_CHECKS,
        instance,
        raise_on_error=False,
        run_config=dg.RunConfig(config),
        resources={
            "warehouse": wh,
            "io_manager": GenerationalIOManager(warehouse=wh),
            "generator": generator,
            "sandbox": SandboxResource(),
            "humaneval_split": HumanEvalSplitResource(),
        },
    )
    assert result.success, failure_messages(result)
    store = Warehouse(db_path)
    accepted = store.read("synthesized_tasks")
    assert accepted["prompt"].to_list() == ["What is 20 + 22?"] and accepted["answer"].to_list() == ["42"]
    pool = store.read("task_pool")
    assert set(pool.filter(pl.col("source") == "synthesized")["task_id"]) == set(accepted["task_id"])
    verified = store.read("verified_set", generation=1).filter(pl.col("source") == "synthesized")
    assert verified["verdict"].to_list() == ["pass", "pass"]
