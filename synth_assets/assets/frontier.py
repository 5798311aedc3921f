"""The capability frontier of the model in service: which rung of each family's ladder a
generation samples, trains and is judged at. Thin shell over core/training/frontier.py."""

import dagster as dg
import polars as pl

from synth_assets.assets._common import counts, generation_of, generational_asset, table_meta, user_errors
from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.markdown import markdown_table
from synth_assets.core.quality.charts import chart_markdown, frontier_chart_png
from synth_assets.core.tasks.sources import LEVEL_SEP, split_level
from synth_assets.core.training.frontier import (
    FRONTIER_SCHEMA,
    FrontierSettings,
    chosen_families,
    configured_levels,
    measure_frontier,
    measurement_key,
)
from synth_assets.core.training.model_card import FRONTIER_TABLE
from synth_assets.resources import GeneratorResource, WarehouseResource


class FrontierConfig(FrontierSettings, PromptSettings, dg.Config):
    """FrontierSettings (the core's); the prompt settings are raw_candidates' (keep them equal)."""


def _starts_and_tops(task_pool: pl.DataFrame) -> tuple[list[str], dict[str, int]]:
    """Per family with levels in the pool: its lowest level (where the ladder starts, as written
    in task_pool.reasoning_gym_families) and its highest (the pool holds nothing above it)."""
    levels: dict[str, list[int]] = {}
    if "family" not in task_pool.columns:  # the pool was never written
        return [], {}
    for family in task_pool.filter(pl.col("family").str.contains(LEVEL_SEP, literal=True))["family"].unique():
        base, level = split_level(family)
        levels.setdefault(base, []).append(level or 1)
    starts = [f"{base}{LEVEL_SEP}{min(v)}" for base, v in sorted(levels.items())]
    return starts, {base: max(v) for base, v in levels.items()}


def _stored_rows(warehouse: WarehouseResource, model_id: str, key: str, generation: int) -> dict[str, dict]:
    """This model's rows measured by an earlier generation with the same settings, by family@level:
    the frontier is a property of the model, so a model still in service is not measured twice."""
    wh = warehouse.get()
    if not wh.table_exists(FRONTIER_TABLE):
        return {}
    df = wh.sql(
        f"select * from {wh.schema}.{FRONTIER_TABLE} where model_id = ? and settings_key = ? "
        "and status <> 'configured' and generation <> ? order by generation",
        [model_id, key, generation],
    )
    return {r["family"]: {c: r[c] for c in FRONTIER_SCHEMA} | {"chosen": False} for r in df.iter_rows(named=True)}


@generational_asset(group_name="synth")
def capability_frontier(
    context: dg.AssetExecutionContext,
    config: FrontierConfig,
    task_pool: pl.DataFrame,
    generator: GeneratorResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Per family and level, what the model in service can do: greedy pass rate, pass@k at the
    sampling temperature and the trivial guessers' rates, on items of their own seed. It picks
    the levels this generation samples, trains and is judged at: the lowest learnable level
    above the mastered ones (and the next one up once greedy reaches ``climb_at``), leaving out
    a family where the model only guesses. Measured once per model and stored; a model still in
    service reuses its rows."""
    generation = generation_of(context)
    starts, tops = _starts_and_tops(task_pool)
    if not starts:  # no family with levels: nothing to steer, and no model to load for it
        context.log.info("no family of the task pool has levels: the frontier has nothing to measure")
        empty = pl.DataFrame(schema=FRONTIER_SCHEMA)
        return dg.MaterializeResult(value=empty, metadata=table_meta(empty, generation=generation, chosen=[]))
    gen = generator.get()
    if not config.steer:
        df = configured_levels(starts, gen.model)
        context.log.info(f"frontier steering is off: generating at the levels written: {starts}")
    else:
        key = measurement_key(config, config)
        stored = _stored_rows(warehouse, gen.model, key, generation)
        with user_errors():
            df = measure_frontier(gen, gen.model, starts, config, config, tops, stored, log=context.log.info)
        reused = sum(f in stored for f in df["family"].to_list())
        chosen = chosen_families(df)
        left_out = sorted({split_level(s)[0] for s in starts} - {split_level(c)[0] for c in chosen})
        context.log.info(
            f"frontier of {gen.model}: generating at {chosen or 'no level'}"
            + (f"; left out (the model guesses or is stuck there): {left_out}" if left_out else "")
            + (f"; {reused} levels reused from an earlier measurement of this model" if reused else "")
        )
    history = _history(warehouse, df)
    png = frontier_chart_png(history)
    chart = chart_markdown(png, "greedy pass rate by level, per model") if png else None
    cols = ["family", "greedy_rate", "pass_at_k", "guess_pass_at_k", "most_common_rate", "status", "chosen"]
    return dg.MaterializeResult(
        value=df,
        metadata=table_meta(
            df,
            generation=generation,
            model=gen.model,
            chosen=chosen_families(df),
            status_by_level=counts(df, "status"),
            frontier=dg.MetadataValue.md(markdown_table(df, [c for c in cols if c in df.columns], rows=40)),
            **({"chart": dg.MetadataValue.md(chart)} if chart else {}),
        ),
    )


def _history(warehouse: WarehouseResource, current: pl.DataFrame) -> pl.DataFrame:
    """Every model's measured rows (newest measurement per model and level) with this one's: the
    chart shows the frontier move from model to model."""
    wh = warehouse.get()
    frames = [current.select("model_id", "family", "base_family", "level", "greedy_rate", "status")]
    if wh.table_exists(FRONTIER_TABLE):
        frames.insert(
            0,
            wh.sql(
                f"select model_id, family, base_family, level, greedy_rate, status from {wh.schema}.{FRONTIER_TABLE} "
                "where status <> 'configured' qualify row_number() over "
                "(partition by model_id, family order by generation desc) = 1"
            ),
        )
    return (
        pl.concat(frames, how="vertical_relaxed")
        .filter(pl.col("status") != "configured")
        .unique(["model_id", "family"], keep="last", maintain_order=True)
    )
