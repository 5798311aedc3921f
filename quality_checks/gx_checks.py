"""Great Expectations 1.x suites, run as Dagster asset checks.

One suite per asset, kept as JSON in ``quality_checks/suites/``; each expectation becomes one
Dagster check, so the UI lists them one by one with their severity. ``critical``
expectations are ERROR checks that block downstream assets; ``warning`` ones are WARN checks.
All of an asset's expectations run in one step, so GX (about 5 s to import) is imported once
per step and never at module level (code-server loads stay fast).

A failed check's metadata holds the expectation, what GX observed, and a markdown table of a
sample of offending rows, so a reviewer sees in the UI what went wrong. An expectation GX
cannot compute (a missing column, say) reports ``success=False`` with an exception flag; that
is shown as ``gx_error`` so broken setup is not mistaken for bad data.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl

from synth_assets.assets._common import stored_frame
from synth_assets.core.markdown import markdown_table

SUITES = Path(__file__).parent / "suites"


def load_suite(asset: str) -> dict:
    return json.loads((SUITES / f"{asset}.json").read_text())


def check_name(exp: dict) -> str:
    kw = exp["kwargs"]
    pair = [kw[k] for k in ("column_A", "column_B") if k in kw]
    col = kw.get("column") or "_".join(kw.get("column_list", []) or pair) or "table"
    return f"gx_{exp['type'].removeprefix('expect_')}__{col}"


def _rows_md(df: pl.DataFrame, key: str, column: str | None, indices: list[int]) -> str:
    if not indices or df.height == 0:
        return ""
    cols = [c for c in dict.fromkeys([key, column]) if c and c in df.columns]
    sample = df.with_row_index("_row").filter(pl.col("_row").is_in(indices[:10]))
    return markdown_table(sample, cols, width=80)


def _gx_exception(info: dict | None) -> tuple[bool, str | None]:
    """GX reports a failed computation either flat or keyed by metric: find it in both shapes."""
    if not info:
        return False, None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if hasattr(v, "keys")]
    for entry in entries:  # dicts, or GX ExceptionInfo objects (mapping-like)
        if entry.get("raised_exception"):
            return True, entry.get("exception_message", "GX could not compute this")
    return False, None


def run_suite(df: pl.DataFrame, suite: dict) -> list[dict]:
    """Validate a frame; one outcome dict per expectation, in suite order."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    exps = []
    for e in suite["expectations"]:
        e = json.loads(json.dumps(e))
        e["meta"] = {**(e.get("meta") or {}), "check": check_name(e)}  # results are matched by this, not order
        exps.append(e)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=exps))
    batch = (
        ctx.data_sources.add_pandas("frame")
        .add_dataframe_asset(suite["name"])
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df.to_pandas()})
    )
    res = batch.validate(gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 10})
    by_check = {(r.expectation_config.meta or {}).get("check"): r for r in res.results}
    out = []
    for e in exps:
        r = by_check.get(e["meta"]["check"])
        if r is None:  # GX dropped it (seen when a column is missing): broken setup, not bad data
            out.append(
                {
                    "expectation": e,
                    "success": False,
                    "gx_error": True,
                    "observed": {},
                    "unexpected_index": [],
                    "exception": "GX returned no result for this expectation (does the column exist?)",
                }
            )
            continue
        raised, message = _gx_exception(r.exception_info)
        result = r.result or {}
        out.append(
            {
                "expectation": e,
                "success": bool(r.success),
                "gx_error": raised,
                "exception": message,
                "observed": {
                    k: result[k]
                    for k in (
                        "observed_value",
                        "element_count",
                        "unexpected_count",
                        "unexpected_percent",
                        "partial_unexpected_list",
                    )
                    if k in result
                },
                "unexpected_index": list(result.get("partial_unexpected_index_list") or []),
            }
        )
    return out


def gx_suite_checks(asset: str, storage: str) -> dg.AssetChecksDefinition:
    """One Dagster check per expectation of the asset's suite; ``storage`` is the asset's own
    metadata (``snapshot``: the whole table is checked; ``generational``: the run's generation)."""
    if storage not in ("snapshot", "generational"):
        raise ValueError(f"suite {asset}: the asset declares no storage metadata (snapshot or generational)")
    suite = load_suite(asset)
    specs = [
        dg.AssetCheckSpec(
            check_name(e),
            asset=asset,
            blocking=e.get("severity", "critical") == "critical",
            description=(e.get("meta") or {}).get("description")
            or f"{e['type']} {json.dumps(e['kwargs'])} ({e.get('severity', 'critical')})",
        )
        for e in suite["expectations"]
    ]
    names = [s.name for s in specs]
    assert len(set(names)) == len(names), f"suite {asset}: two expectations share a check name"

    @dg.multi_asset_check(specs=specs, name=f"gx_suite_{asset}", required_resource_keys={"warehouse"})
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        frame = stored_frame(context, asset, snapshot=storage == "snapshot")
        for outcome in run_suite(frame, suite):
            e = outcome["expectation"]
            critical = e.get("severity", "critical") == "critical"
            metadata = {
                "expectation": dg.MetadataValue.json(e),
                "observed": dg.MetadataValue.json(json.loads(json.dumps(outcome["observed"], default=str))),
                "gx_error": outcome["gx_error"],
            }
            if outcome["exception"]:
                metadata["gx_exception"] = str(outcome["exception"])[:500]
            rows = _rows_md(frame, suite["key"], e["kwargs"].get("column"), outcome["unexpected_index"])
            if rows:
                metadata["offending_rows"] = dg.MetadataValue.md(rows)
            yield dg.AssetCheckResult(
                asset_key=asset,
                check_name=check_name(e),
                passed=outcome["success"],
                severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
                metadata=metadata,
            )

    return _checks


SUITE_ASSETS = sorted(p.stem for p in SUITES.glob("*.json"))
