"""The drift report: is this generation less diverse than the ones before it?"""


import dagster as dg
import polars as pl
from pydantic import Field

from quality_checks.drift import DriftSettings, drift_report as build_drift_report, generated_by_generation, report_markdown
from synth_assets.assets._common import GENERATIONAL, KINDS, counts, table_meta
from synth_assets.resources import WarehouseResource


class DriftConfig(dg.Config):
    token_budget: int = Field(default=40_000, ge=10, description="tokens compared per corpus (all equal)")
    min_tokens: int = Field(default=100, ge=1, description="below this many comparable tokens: insufficient_data")
    warn_threshold: float = Field(default=0.10, gt=0, description="relative change (collapse direction) that warns")
    fail_threshold: float = Field(default=0.20, gt=0, description="relative change (collapse direction) that fails")


@dg.asset(
    group_name="reports",
    kinds=KINDS,
    metadata=GENERATIONAL,
    ins={"raw_candidates": dg.AssetIn(metadata={"generations": "all"})},
)
def drift_report(
    context: dg.AssetExecutionContext, config: DriftConfig, mixed_training_set: pl.DataFrame,
    raw_candidates: pl.DataFrame, warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """One row per diversity metric: this generation against the previous one, the first
    synthetic generation and the human data, with change, thresholds and status."""
    generation = warehouse.get().current_generation()
    settings = DriftSettings(config.token_budget, config.min_tokens, config.warn_threshold, config.fail_threshold)
    report = build_drift_report(
        mixed_training_set, generation, settings, generated_by_generation(raw_candidates)
    )
    md = report_markdown(report)
    context.log.info(f"drift report for generation {generation}:\n{md}")
    numeric = {
        f"{r['corpus']}/{r['metric']}": float(r["current"])
        for r in report.iter_rows(named=True) if r["current"] is not None
    }
    return dg.MaterializeResult(
        value=report,
        metadata={
            **table_meta(report, generation=generation, statuses=counts(report, "status")),
            "report": dg.MetadataValue.md(md),
            "previous_generation": int(report["previous_generation"][0]) if report["previous_generation"][0] is not None else 0,
            **numeric,
        },
    )
