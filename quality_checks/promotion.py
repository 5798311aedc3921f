"""The promotion gate as a blocking asset check: the offending families are its rows.

The decision itself is computed by the core (``synth_assets.core.training.gate``) and stored
with the evaluation; this check reads the stored rows back, so the UI shows the gate beside
the evaluation and a failure stops ``promoted_model`` and goes through the alerts sensor.
"""

import dagster as dg
import polars as pl

from quality_checks.gx_checks import check_generation
from synth_assets.core.markdown import markdown_table


@dg.asset_check(asset="model_eval", blocking=True, required_resource_keys={"warehouse"},
                description="The promotion gate: no family significantly worse than the parent (McNemar, alpha "
                "0.05), macro-average not lower, no shifted variant significantly worse, no DIVERSITY_LOSS, and "
                "(require_gain) a significant gain over the parent and the trivial baselines in some family.")
def promotion_gate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    wh = context.resources.warehouse.get()
    g = check_generation(context)
    df = wh.sql(f"select * from {wh.schema}.model_eval where generation = ?", [g])
    flagged = df.filter(pl.col("flag") != "")
    model_id = df["model_id"][0] if df.height else None
    return dg.AssetCheckResult(
        passed=df.height > 0 and flagged.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{model_id}: promoted only if better than its parent and not worse anywhere" if df.height
                     else "no evaluation stored for this generation"),
        metadata={"model_id": str(model_id), "offending": flagged.height,
                  "offending_families": dg.MetadataValue.md(markdown_table(
                      flagged, ["family", "variant", "candidate_rate", "parent_rate", "p_vs_parent", "flag"],
                      rows=50) if flagged.height else "(none)")})
