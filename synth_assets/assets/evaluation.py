"""The generator on held-out human tasks every generation, and the publication of the mix."""

from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from synth_assets.assets._common import (
    UP_TO_THIS_GENERATION,
    counts,
    generation_of,
    generational_asset,
    table_meta,
    user_errors,
)
from synth_assets.core.curate.publish import ExportSettings, publish
from synth_assets.core.generators.generation import SamplingPlan, run_generation
from synth_assets.core.tasks.sources import conform, heldout_tasks
from synth_assets.core.training.frontier import heldout_at_chosen_levels
from synth_assets.core.verify.verification import VERDICT_SCHEMA, verify_candidates
from synth_assets.resources import GeneratorResource, SandboxResource, WarehouseResource


class GeneratorEvalConfig(SamplingPlan, dg.Config):
    """The core's SamplingPlan for the held-out evaluation (keep the sampling equal to
    raw_candidates'), plus how many held-out tasks are evaluated."""

    max_tasks: int = Field(default=12, ge=0, description="held-out tasks evaluated each generation (0 = off)")
    reasoning_items: bool = Field(
        default=True,
        description="also score the generator on heldout_reasoning (greedy; "
        "stored per model, so an unchanged generator is not re-run)",
    )
    samples_per_task: int = Field(default=1, ge=1, description="samples per held-out task")
    temperatures: list[float] = Field(default=[0.7], min_length=1, description="keep equal to raw_candidates'")


@generational_asset(group_name="reports", deps=["raw_candidates"])
def generator_eval(
    context: dg.AssetExecutionContext,
    config: GeneratorEvalConfig,
    heldout_eval: pl.DataFrame,
    heldout_reasoning: pl.DataFrame,
    capability_frontier: pl.DataFrame,
    generator: GeneratorResource,
    sandbox: SandboxResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The generator's pass rate on held-out human tasks (HumanEval's held-out split) with the
    same sampling as the generation, and (greedy) on the held-out reasoning items and their
    shifted variants: the degradation and distribution-shift signals of the drift report."""
    generation = generation_of(context)
    tasks = heldout_tasks(heldout_eval).head(config.max_tasks)
    if tasks.height == 0:
        context.log.warning("no held-out task with tests: the degradation check has nothing to measure")
        df = conform([], VERDICT_SCHEMA)
    else:
        with user_errors():
            samples = run_generation(tasks, generator.get(), config, generation, log=context.log.info)
            df = verify_candidates(samples, sandbox.get(), log=context.log.info)
    rate = float((df["verdict"] == "pass").mean()) if df.height else 0.0
    reasoning = {}
    with user_errors():
        heldout_reasoning = heldout_at_chosen_levels(heldout_reasoning, capability_frontier)
    if config.reasoning_items and heldout_reasoning.height:
        from synth_assets.core.training.evaluation import as_verdict_rows
        from synth_assets.core.training.loop import stored_answers
        from synth_assets.core.training.registry import Registry

        gen = generator.get()  # the run's shared generator: the resource frees it, not this step
        with user_errors():
            scores = stored_answers(
                Registry(warehouse.get()), gen.model, heldout_reasoning, lambda: gen, context.log.info, close=False
            )
        rows = as_verdict_rows(scores, heldout_reasoning, gen.model, generation)
        df = pl.concat([df, rows])
        for variant, part in scores.group_by("variant"):
            reasoning[f"reasoning_{variant[0]}_pass_rate"] = round(float(part["correct"].mean()), 4)
    return dg.MaterializeResult(
        value=df.with_columns(pl.lit(generation, dtype=pl.Int64).alias("generation")),
        metadata=table_meta(
            df,
            generation=generation,
            heldout_pass_rate=round(rate, 4),
            tasks=tasks.height,
            verdicts=counts(df, "verdict"),
            **reasoning,
        ),
    )


class ExportConfig(ExportSettings, dg.Config):
    """ExportSettings (the core's) as the asset's run config."""


@generational_asset(
    group_name="synth",
    kinds={"polars", "json", "parquet"},
    metadata=None,  # files, not a table: nothing is stored by generation in the warehouse
    ins={"filter_drops": dg.AssetIn(partition_mapping=UP_TO_THIS_GENERATION)},
)
def training_export(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    mixed_training_set: pl.DataFrame,
    filter_drops: pl.DataFrame,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The mix as chat-format JSONL and Parquet for fine-tuning, with a dataset card (README.md)
    listing sources, licences, generators, verifiers, filters and the human share. It runs only
    when the mix's blocking checks passed, so a mix that fails them is never published."""
    wh = warehouse.get()
    generation = generation_of(context)
    out_dir = Path(config.export_dir) if config.export_dir else Path(wh.path).parent / "exports"
    policy = mixed_training_set.select("human_floor", "decontamination_ngram").head(1).to_dicts()
    floor = policy[0]["human_floor"] if policy else None
    drops = counts(filter_drops, "drop_reason")  # every generation the mix draws on, for the card
    paths = publish(
        wh,
        mixed_training_set,
        generation,
        out_dir / f"generation_{generation:04d}",
        floor,
        drops=dict(sorted(drops.items(), key=lambda kv: -kv[1])),
    )
    wh.record_export(generation, paths)
    context.log.info(f"exported generation {generation}: {paths}")
    human = int((mixed_training_set["source"] == "human").sum()) if mixed_training_set.height else 0
    return dg.MaterializeResult(
        metadata={
            "generation": generation,
            "train_jsonl": dg.MetadataValue.path(paths["train"]),
            "validation_jsonl": dg.MetadataValue.path(paths["validation"]),
            "train_parquet": dg.MetadataValue.path(paths["train_parquet"]),
            "validation_parquet": dg.MetadataValue.path(paths["validation_parquet"]),
            "dataset_card": dg.MetadataValue.path(paths["card"]),
            "rows": mixed_training_set.height,
            "human_share": round(human / mixed_training_set.height, 4) if mixed_training_set.height else 0.0,
            "licences": dg.MetadataValue.json(counts(mixed_training_set, "license")),
        }
    )
