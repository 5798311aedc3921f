"""The loop's assets: train a candidate generator on the mix, evaluate it against the model in
service, gate it, promote it (or wait for a person to). Thin shells over core/training."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from synth_assets.assets._common import (
    DUCKDB_POOL,
    SNAPSHOT,
    check_generation,
    generation_of,
    generational_asset,
    step_failure,
    table_meta,
    user_errors,
)
from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.markdown import markdown_table
from synth_assets.core.memory import rss_bytes
from synth_assets.core.quality.charts import chart_markdown, loss_chart_png
from synth_assets.core.training.frontier import heldout_at_chosen_levels
from synth_assets.core.training.gate import MACRO, GateSettings
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items
from synth_assets.core.training.loop import CandidateSettings, evaluate_candidate, train_candidate
from synth_assets.core.training.registry import PromotionSettings, Registry
from synth_assets.resources import GeneratorResource, WarehouseResource

TRAINING_KINDS = {"polars", "duckdb", "pytorch"}


class HeldoutConfig(HeldoutSettings, PromptSettings, dg.Config):
    """Which held-out items every model is scored on; the prompt settings are raw_candidates'."""


@dg.asset(pool=DUCKDB_POOL, group_name="sources", kinds={"polars", "duckdb"}, metadata=SNAPSHOT)
def heldout_reasoning(context: dg.AssetExecutionContext, config: HeldoutConfig) -> dg.MaterializeResult:
    """Held-out reasoning-gym items (seeds no training stage uses) per family, in three variants:
    as trained, harder, and under a rephrased prompt. Every model is scored on these: the gate
    (model_eval) and the drift report (through generator_eval) alike."""
    with user_errors():
        df = heldout_items(config, config)
    return dg.MaterializeResult(
        value=df,
        metadata=table_meta(
            df, families=sorted(set(df["family"].to_list())), items_per_variant=config.items_per_family
        ),
    )


class CandidateConfig(CandidateSettings, dg.Config):
    """The core's CandidateSettings (LoRA, trainer, prompt format: keep the prompt settings equal
    to raw_candidates')."""


def _artefact_root(config: CandidateSettings, wh_path: str) -> Path:
    return Path(config.artefact_dir) if config.artefact_dir else Path(wh_path).parent / "models"


# preference_pairs is a dependency read only with objective "dpo" (a supervised round must not
# need a table it does not use)
@generational_asset(group_name="training", kinds=TRAINING_KINDS, deps=["preference_pairs"])
def candidate_model(
    context: dg.AssetExecutionContext,
    config: CandidateConfig,
    mixed_training_set: pl.DataFrame,
    warehouse: WarehouseResource,
    generator: GeneratorResource,
) -> dg.MaterializeResult:
    """A generator fine-tuned (LoRA) on this generation's mix (train split; validation split for
    early stopping), or with ``objective: dpo`` on this generation's preference pairs (those a
    program or a calibrated judge ordered), in the prompt format the generator is prompted with;
    registered as a candidate whose parent is the model in service now."""
    generation = generation_of(context)
    wh = warehouse.get()
    registry = Registry(wh)
    # the run's generator (loaded by the generation steps, kept for the rest of the run) is not
    # needed while training: its weights go back first (the default run's training step peaked at
    # 5.00 GB with it resident, bench/RESULTS.md); a later step that wants it loads it again
    before = rss_bytes()
    if generator.release():
        context.log.info(
            f"released the generator's model before training: {before / 1e9:.2f} -> {rss_bytes() / 1e9:.2f} GB"
        )
    with user_errors():
        pairs = wh.read("preference_pairs", generation=generation) if config.objective == "dpo" else None
        row = train_candidate(
            mixed_training_set,
            generation,
            config,
            registry,
            _artefact_root(config, wh.path),
            log=context.log.info,
            pairs=pairs,
        )
    curve = row.get("loss_curve") or []
    plot_path = _artefact_root(config, wh.path) / row["model_id"] / "loss.png"
    png = loss_chart_png(curve)  # the chart the model card draws; written here for the asset's page
    if png:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot_path.write_bytes(png)
    everything = registry.models()
    df = everything.filter(pl.col("model_id") == row["model_id"])
    meta = table_meta(
        df,
        model_id=row["model_id"],
        parent_id=row["parent_id"],
        train_rows=row["train_rows"],
        train_tokens=row.get("train_tokens") or 0,
        wall_s=round(row["wall_s"], 1),
        **({"training_peak_rss_gb": row["peak_rss_gb"]} if "peak_rss_gb" in row else {}),
    )
    meta["loss_curve"] = dg.MetadataValue.md(
        markdown_table(pl.DataFrame(curve), rows=50) if curve else "(none reported)"
    )
    meta["registry"] = dg.MetadataValue.md(registry_markdown(everything))
    if png:
        meta["loss_plot"] = dg.MetadataValue.md(chart_markdown(png, "loss curve"))
        meta["loss_plot_file"] = dg.MetadataValue.path(str(plot_path))
    meta["adapter"] = dg.MetadataValue.path(str(row.get("adapter_path") or row.get("endpoint_base_url")))
    meta |= card_metadata(registry, row["model_id"], context.log.warning)
    return dg.MaterializeResult(
        value=df.with_columns(pl.lit(generation, dtype=pl.Int64).alias("generation")), metadata=meta
    )


class GateConfig(GateSettings, dg.Config):
    """The core's GateSettings: the paired tests' alpha and the diversity-loss rule."""


@generational_asset(group_name="training")
def model_eval(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    candidate_model: pl.DataFrame,
    heldout_reasoning: pl.DataFrame,
    capability_frontier: pl.DataFrame,
    mixed_training_set: pl.DataFrame,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The candidate and its parent on the same held-out and shifted items (decontaminated
    against the mix), paired: pass rates with 95% intervals, McNemar p-values, trivial
    baselines, answer entropy, and what blocks promotion. A candidate the gate refuses is
    recorded as rejected (the parent stays in service)."""
    generation = generation_of(context)
    if candidate_model.height == 0:
        raise step_failure(f"no candidate_model for generation {generation}; materialize it first")
    registry = Registry(warehouse.get())
    model_id = candidate_model["model_id"][0]
    with user_errors():
        items = heldout_at_chosen_levels(heldout_reasoning, capability_frontier)
        comparison, ok, reasons, dropped = evaluate_candidate(
            model_id, items, mixed_training_set, registry, config, log=context.log.info
        )
    if not ok:
        registry.decide(model_id, "rejected", "; ".join(reasons))
        context.log.warning(f"{model_id} rejected: " + "; ".join(reasons))
    macro = comparison.filter(pl.col("family") == MACRO)
    df = comparison.with_columns(
        pl.lit(model_id).alias("model_id"),
        pl.lit(candidate_model["parent_id"][0]).alias("parent_id"),
        pl.lit(generation, dtype=pl.Int64).alias("generation"),
    )
    cols = [
        "family",
        "variant",
        "n",
        "candidate_rate",
        "parent_rate",
        "most_common_rate",
        "last_shot_rate",
        "as_given_rate",
        "p_vs_parent",
        "significant_gain",
        "flag",
    ]
    return dg.MaterializeResult(
        value=df,
        metadata={
            **table_meta(df),
            "model_id": model_id,
            "gate_passed": ok,
            "reasons": dg.MetadataValue.json(reasons),
            "contaminated_items_dropped": dropped,
            "macro_candidate": float(macro["candidate_rate"][0]) if macro.height else 0.0,
            "macro_parent": float(macro["parent_rate"][0]) if macro.height else 0.0,
            "comparison": dg.MetadataValue.md(markdown_table(df, cols, rows=60)),
            **card_metadata(registry, model_id, context.log.warning),
        },
    )


class PromotionConfig(PromotionSettings, dg.Config):
    """PromotionSettings (the core's) as the asset's run config."""


@generational_asset(group_name="training", deps=[model_eval])
def promoted_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    candidate_model: pl.DataFrame,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The gate passed: the candidate serves the next generation (raw_candidates, the held-out
    evaluation, the judge and task synthesis resolve it from the registry), or waits as
    awaiting_approval until a person approves it."""
    registry = Registry(warehouse.get())
    model_id = candidate_model["model_id"][0]
    with user_errors():
        if config.require_approval:
            registry.decide(model_id, "awaiting_approval", "the gate passed; promotion.require_approval is on")
            context.log.info(f"{model_id} awaits approval: synth models approve {model_id}")
        else:
            registry.decide(model_id, "promoted", "the gate passed")
            context.log.info(f"{model_id} is now in service")
    everything = registry.models()
    df = everything.filter(pl.col("model_id") == model_id)
    return dg.MaterializeResult(
        value=df.with_columns(pl.lit(generation_of(context), dtype=pl.Int64).alias("generation")),
        metadata={
            "model_id": model_id,
            "status": df["status"][0],
            "in_service": registry.serving(),
            "registry": dg.MetadataValue.md(registry_markdown(everything)),
            **card_metadata(registry, model_id, context.log.warning),
        },
    )


def card_metadata(registry: Registry, model_id: str, warn: Callable[[str], None]) -> dict:
    """The model card's summary and its file (the registry rewrote it with this step's change;
    written again here, so the page shows exactly what the file says). A card is documentation:
    one that cannot be written is a warning on the step, never the step's failure."""
    try:
        card = registry.write_card(model_id)
    except Exception as exc:  # noqa: BLE001 - any failure of the card is reported, and the model stands
        warn(f"the model card of {model_id} was not written: {type(exc).__name__}: {exc}")
        return {"model_card": f"not written: {type(exc).__name__}: {exc}"}
    return {
        "model_card": dg.MetadataValue.path(str(card.markdown)),
        "model_card_summary": dg.MetadataValue.md(card.summary),
    }


def registry_markdown(models: pl.DataFrame) -> str:
    """The registry as the asset pages show it: lineage, counts, status and reason."""
    return markdown_table(
        models,
        ["model_id", "parent_id", "mix_generation", "train_rows", "train_tokens", "wall_s", "status", "reason"],
        rows=100,
        width=80,
    )


TRAINING_ASSETS = [candidate_model, model_eval, promoted_model]


# The promotion gate as a blocking check on model_eval: the decision is computed by the core
# (core/training/gate.py) and stored with the evaluation; this check reads the stored rows back,
# so the UI shows the gate beside the evaluation and a failure stops promoted_model and goes
# through the alerts sensor. The offending families are its rows.
@dg.asset_check(
    asset="model_eval",
    blocking=True,
    required_resource_keys={"warehouse"},
    description="The promotion gate: no family significantly worse than the parent (McNemar, alpha "
    "0.05), macro-average not lower, no shifted variant significantly worse, no DIVERSITY_LOSS, and "
    "(require_gain) a significant gain over the parent and the trivial baselines in some family.",
)
def promotion_gate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    wh = context.resources.warehouse.get()
    g = check_generation(context)
    df = wh.sql(f"select * from {wh.schema}.model_eval where generation = ?", [g])
    flagged = df.filter(pl.col("flag") != "")
    model_id = df["model_id"][0] if df.height else None
    return dg.AssetCheckResult(
        passed=df.height > 0 and flagged.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{model_id}: promoted only if better than its parent and not worse anywhere"
            if df.height
            else "no evaluation stored for this generation"
        ),
        metadata={
            "model_id": str(model_id),
            "offending": flagged.height,
            "offending_families": dg.MetadataValue.md(
                markdown_table(
                    flagged, ["family", "variant", "candidate_rate", "parent_rate", "p_vs_parent", "flag"], rows=50
                )
                if flagged.height
                else "(none)"
            ),
        },
    )
