"""The drift report: is this generation less diverse than the ones before it?"""

import dagster as dg
import polars as pl

from synth_assets.assets._common import (
    UP_TO_THIS_GENERATION,
    counts,
    generation_of,
    generational_asset,
    stored_frame,
    table_meta,
)
from synth_assets.core.quality.charts import chart_markdown, diversity_chart_png
from synth_assets.core.quality.drift import DriftSettings, generated_by_generation, heldout_answers, report_markdown
from synth_assets.core.quality.drift import drift_report as build_drift_report


class DriftConfig(DriftSettings, dg.Config):
    """quality_checks' DriftSettings: token budget, noise floor weight, per-metric thresholds."""


def eval_scores(generator_eval: pl.DataFrame) -> dict[str, dict[int, tuple[int, int]]]:
    """(passed, evaluated) per generation for each held-out metric of the drift report."""
    if generator_eval.height == 0:
        return {"heldout_pass_rate": {}}
    template = pl.col("prompt_template").fill_null("")
    parts = {
        "heldout_pass_rate": ~template.str.starts_with("heldout_"),
        "heldout_reasoning_pass_rate": template == "heldout_heldout",
        "shifted_pass_rate": template.is_in(["heldout_harder", "heldout_rephrased"]),
    }
    out = {}
    for metric, where in parts.items():
        part = generator_eval.filter(where)
        if part.height or metric == "heldout_pass_rate":
            out[metric] = {
                int(g): (int(k), int(n))
                for g, k, n in part.group_by("generation")
                .agg((pl.col("verdict") == "pass").sum().alias("k"), pl.len().alias("n"))
                .iter_rows()
            }
    return out


@generational_asset(
    group_name="reports",
    ins={
        "raw_candidates": dg.AssetIn(partition_mapping=UP_TO_THIS_GENERATION),
        "generator_eval": dg.AssetIn(partition_mapping=UP_TO_THIS_GENERATION),
    },
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    mixed_training_set: pl.DataFrame,
    raw_candidates: pl.DataFrame,
    generator_eval: pl.DataFrame,
    drift_history: pl.DataFrame,
) -> dg.MaterializeResult:
    """One row per diversity metric: this generation against the previous one, the first
    synthetic generation and the human data, with change, thresholds and status; and per
    held-out family the generator's answers against the reference answers (corpus
    ``answers:<family>``, ANSWER_COLLAPSE): a model eating its own output collapses onto a few
    answers while its pass rate can rise toward the trivial baseline."""
    generation = generation_of(context)
    settings = config
    scores = eval_scores(generator_eval)
    earlier = drift_history.filter(pl.col("generation") < generation) if drift_history.height else None
    report = build_drift_report(
        mixed_training_set,
        generation,
        settings,
        generated_by_generation(raw_candidates),
        scores,
        history=earlier,
        answers=heldout_answers(generator_eval),
    )
    alert = report.filter(pl.col("metric") == "DIVERSITY_LOSS")["status"].to_list()
    collapsed = report.filter((pl.col("metric") == "ANSWER_COLLAPSE") & pl.col("status").is_in(["fail", "warn"]))
    md = report_markdown(report)
    earlier = earlier if earlier is not None else report.clear()
    history = pl.concat([earlier.select(report.columns), report], how="vertical_relaxed")
    chart = chart_markdown(diversity_chart_png(history))
    context.log.info(f"drift report for generation {generation}:\n{md}")
    numeric = {
        f"{r['corpus']}/{r['metric']}": float(r["current"])
        for r in report.iter_rows(named=True)
        if r["current"] is not None and r["metric"] not in ("documents",)
    }
    return dg.MaterializeResult(
        value=report,
        metadata={
            **table_meta(report, generation=generation, statuses=counts(report, "status")),
            "diversity_loss_alert": "alert" in alert,
            # families whose held-out answers collapsed (fail or warn), with the status
            "answer_collapse": dg.MetadataValue.json(
                {c.removeprefix("answers:"): s for c, s in collapsed.select("corpus", "status").iter_rows()}
            ),
            "report": dg.MetadataValue.md(md),
            "diversity_chart": dg.MetadataValue.md(chart),
            "previous_generation": int(report["previous_generation"][0])
            if report["previous_generation"][0] is not None
            else 0,
            **numeric,
        },
    )


@dg.asset_check(
    asset="drift_report",
    required_resource_keys={"warehouse"},
    description="No diversity metric changed past its fail threshold in the collapse direction.",
)
def no_failed_drift_metric(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    drift_report = stored_frame(context, "drift_report")
    if drift_report.height == 0:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"why": "no drift report stored for this generation"},
        )
    failed = drift_report.filter(pl.col("status") == "fail")
    warned = drift_report.filter(pl.col("status") == "warn")
    return dg.AssetCheckResult(
        passed=failed.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed_metrics": dg.MetadataValue.json(failed["metric"].to_list()),
            "warned_metrics": dg.MetadataValue.json(warned["metric"].to_list()),
        },
    )
