"""Root assets: the tasks to generate for, human data for the mix, and held-out evaluation."""

import dagster as dg
import polars as pl

from synth_assets.assets._common import (
    DUCKDB_POOL,
    KINDS,
    SNAPSHOT,
    counts,
    generation_of,
    generational_asset,
    table_meta,
    user_errors,
)
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.tasks.sources import (
    REFERENCE_SCHEMA,
    TASK_SCHEMA,
    ReferenceSettings,
    TaskPoolSettings,
    conform,
    humaneval_references,
    humaneval_tasks,
    ladder,
    reasoning_gym_tasks,
    user_references,
    user_tasks,
)
from synth_assets.resources import HumanEvalSplitResource


class TaskPoolConfig(TaskPoolSettings, dg.Config):
    """TaskPoolSettings (the core's) as the asset's run config."""


SOURCE_KIND = {"reasoning_gym": "procedural", "synthesized": "synthesized"}  # everything else: human_written


def apply_shares(df: pl.DataFrame, shares: dict[str, float]) -> pl.DataFrame:
    """A deterministic subset of the pool with the configured share of each kind of task."""
    bad = [k for k in shares if k not in ("procedural", "human_written", "synthesized")]
    if bad or any(v < 0 for v in shares.values()) or (shares and sum(shares.values()) <= 0):
        raise SynthConfigError(
            f"task_pool.source_shares: keys must be procedural, human_written, synthesized with non-negative "
            f"shares that sum above 0 (got {shares})"
        )
    if not shares:
        return df
    kind = pl.col("source").replace_strict(SOURCE_KIND, default="human_written")
    df = df.with_columns(kind.alias("_kind"), pl.col("task_id").hash(seed=3).alias("_h"))
    total = sum(shares.values())
    avail = dict(df.group_by("_kind").len().iter_rows())
    size = min(avail.get(k, 0) / (v / total) for k, v in shares.items() if v > 0)
    parts = [
        df.filter(pl.col("_kind") == k).sort("_h").head(int(size * v / total + 1e-9))
        for k, v in shares.items()
        if v > 0
    ]
    return pl.concat(parts).drop("_kind", "_h")


@generational_asset(group_name="sources")
def task_pool(
    context: dg.AssetExecutionContext,
    config: TaskPoolConfig,
    humaneval_split: HumanEvalSplitResource,
    synthesized_tasks: pl.DataFrame,
) -> dg.MaterializeResult:
    """Prompts to generate for, each with what its verifier needs (answer, tests, scorer):
    reasoning-gym, HumanEval, user files and accepted synthesized tasks, at the configured shares.
    One pool per generation: the reasoning-gym tasks are drawn with a fresh seed each generation
    (``fresh_seeds``), so a round trains on questions the last one did not ask.

    Before synthesis has ever run its table reads as empty, so the pool can be built alone."""
    generation = generation_of(context)
    if not config.include_synthesized or synthesized_tasks.height == 0:
        synthesized_tasks = conform([], TASK_SCHEMA)
    with user_errors():
        humaneval_split.validate_split()
        parts = [
            reasoning_gym_tasks(
                ladder(config.reasoning_gym_families, config.levels_above),
                config.tasks_per_family,
                config.seed_for(generation),
            ),
            humaneval_tasks(config.humaneval_tasks, humaneval_split.human_fraction, humaneval_split.heldout_fraction),
            *[user_tasks(p) for p in config.user_task_files],
        ]
        if config.include_synthesized and synthesized_tasks.height:
            parts.append(conform(synthesized_tasks, TASK_SCHEMA))
        df = pl.concat(parts) if parts else conform([], TASK_SCHEMA)
        df = apply_shares(df, config.source_shares)
        dupes = df.filter(pl.col("task_id").is_duplicated())["task_id"].unique().to_list()
        if dupes:
            raise SynthConfigError(f"task_pool: task ids repeat across sources: {dupes[:5]}")
        if df.height == 0:
            raise SynthConfigError(
                "task_pool: no tasks; set task_pool.tasks_per_family, humaneval_tasks or user_task_files"
            )
    context.log.info(
        f"task pool of generation {generation} (reasoning-gym seed {config.seed_for(generation)}): {df.height} tasks, "
        f"by source {counts(df, 'source')}, by family {counts(df, 'family')}"
    )
    return dg.MaterializeResult(
        value=df,
        metadata=table_meta(
            df,
            generation=generation,
            seed=config.seed_for(generation),
            tasks_by_family=counts(df, "family"),
            tasks_by_source=counts(df, "source"),
        ),
    )


class ReferenceConfig(ReferenceSettings, dg.Config):
    """ReferenceSettings (the core's) as the asset's run config."""


def _references(part: str, config: ReferenceConfig, split: HumanEvalSplitResource, what: str) -> pl.DataFrame:
    with user_errors():
        split.validate_split()
        parts = (
            [humaneval_references(part, split.human_fraction, split.heldout_fraction)]
            if config.include_humaneval
            else []
        )
        parts += [user_references(p, what) for p in config.user_files]
        return pl.concat(parts) if parts else conform([], REFERENCE_SCHEMA)


@dg.asset(pool=DUCKDB_POOL, group_name="sources", kinds=KINDS, metadata=SNAPSHOT)
def human_reference(config: ReferenceConfig, humaneval_split: HumanEvalSplitResource) -> dg.MaterializeResult:
    """Human-written examples mixed into every training set (default: HumanEval's human split,
    prompt plus canonical solution)."""
    df = _references("human", config, humaneval_split, "human_reference.user_files")
    return dg.MaterializeResult(value=df, metadata=table_meta(df, rows_by_source=counts(df, "source")))


@dg.asset(pool=DUCKDB_POOL, group_name="sources", kinds=KINDS, metadata=SNAPSHOT)
def heldout_eval(config: ReferenceConfig, humaneval_split: HumanEvalSplitResource) -> dg.MaterializeResult:
    """Evaluation items no generated or mixed row may contain (default: HumanEval's held-out split)."""
    df = _references("heldout", config, humaneval_split, "heldout_eval.user_files")
    return dg.MaterializeResult(value=df, metadata=table_meta(df, rows_by_source=counts(df, "source")))
