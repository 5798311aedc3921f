"""The AI judge's calibration: its agreement and biases where programs know the truth."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from synth_assets.assets._common import (
    generation_of,
    generational_asset,
    markdown_preview,
    table_meta,
    user_errors,
)
from synth_assets.core.markdown import markdown_table
from synth_assets.core.quality.charts import calibration_chart_png, chart_markdown
from synth_assets.core.verify.ai_feedback import DEFAULT_RUBRIC, Judge, read_text_file
from synth_assets.core.verify.judge_calibration import CalibrationSettings, calibrate
from synth_assets.resources import GeneratorResource

TRUST_CHECK = "judge_trusted"


class JudgeCalibrationConfig(CalibrationSettings, dg.Config):
    """The core's CalibrationSettings (sample sizes and trust thresholds), and the rubric."""

    rubric_file: str | None = Field(
        default=None,
        description="the judge's rubric, as verified_set.judge.rubric_file "
        "(default synth_assets/prompts/judge_rubric.txt)",
    )


def summary_markdown(summary: dict) -> str:
    def ci(v: list) -> str:
        return "" if not v or v[0] is None else f" (95% CI {v[0]:.2f} to {v[1]:.2f})"

    sp = summary["self_preference"]
    lines = [
        f"- agreement with the verifiers: **{summary['accuracy']}**{ci(summary['accuracy_ci'])}, "
        f"n = {summary['scored']} ({summary['unscored']} replies held no score)",
        f"- Cohen's kappa: **{summary['kappa']}**{ci(summary['kappa_ci'])} (0 = chance, 1 = perfect)",
        f"- position bias: **{summary['flip_rate']}** of {summary.get('pairs_answered', 0)} pairs flip with the order"
        f"{ci(summary['flip_rate_ci'])}",
        f"- length bias: Spearman rho of score vs length at equal correctness, worst **{summary['length_rho_worst']}**",
        f"- self-preference: own correct rows lead {sp['other']} correct rows by **{sp['lead']}**{ci(sp['ci'])} "
        f"(n = {sp['own_rows']} vs {sp['other_rows']})",
    ]
    if summary.get("stopped_early"):
        lines.append(f"- stopped early, distrust settled: {summary['stopped_early']}")
    return "\n".join(lines)


@generational_asset(
    group_name="reports",
    check_specs=[
        dg.AssetCheckSpec(
            TRUST_CHECK,
            asset="judge_calibration",
            description="the judge clears every calibration threshold; until it does, "
            "judge-only verdicts are not trusted",
        )
    ],
)
def judge_calibration(
    context: dg.AssetExecutionContext,
    config: JudgeCalibrationConfig,
    verified_set: pl.DataFrame,
    human_reference: pl.DataFrame,
    generator: GeneratorResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The LLM judge scored on rows whose verdict a program gave and on human-written rows:
    agreement (accuracy, kappa, per family), length, position and self-preference bias, each
    with its sample size and 95% interval, and whether it is trusted."""
    generation = generation_of(context)
    with user_errors():
        rubric = read_text_file(config.rubric_file, DEFAULT_RUBRIC, "judge_calibration.rubric_file")
        judge = Judge(generator.get(), rubric)
        cal = calibrate(
            judge,
            verified_set,
            human_reference,
            generation,
            CalibrationSettings(**config.model_dump(include=set(CalibrationSettings.model_fields))),
        )
    md = summary_markdown(cal.summary)
    context.log.info(
        f"judge calibration of generation {generation} ({cal.summary['judge']}):\n{md}\n"
        + ("trusted" if cal.trusted else "NOT trusted: " + "; ".join(cal.reasons))
    )
    png = calibration_chart_png(cal.per_family, config.min_accuracy)
    chart = chart_markdown(png, "judge agreement per family", "_no scored rows_")
    fam_md = markdown_table(cal.per_family, cal.per_family.columns, rows=50, width=40)
    yield dg.Output(
        cal.rows,
        metadata={
            **table_meta(cal.rows, generation=generation),
            "summary": dg.MetadataValue.json(cal.summary),
            "calibration": dg.MetadataValue.md(md),
            "per_family": dg.MetadataValue.md(fam_md),
            "agreement_chart": dg.MetadataValue.md(chart),
            "trusted": cal.trusted,
            "pairs_preview": dg.MetadataValue.md(markdown_preview(cal.pairs)),
        },
    )
    yield dg.AssetCheckResult(
        check_name=TRUST_CHECK,
        passed=cal.trusted,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "the judge clears every threshold"
            if cal.trusted
            else "not trusted, so judge-only verdicts go to the review queue: " + "; ".join(cal.reasons)
        ),
        metadata={
            "reasons": dg.MetadataValue.json(cal.reasons),
            "accuracy": cal.summary["accuracy"],
            "kappa": cal.summary["kappa"],
            "flip_rate": cal.summary["flip_rate"],
        },
    )
