"""Headless entry point: what the last generation produced, without opening the UI.

    synth summary   # tables, counts, pass rates, exports and the drift report of the newest generation
    synth drift     # the drift report as a markdown table
"""

import argparse
import json
import sys

import polars as pl

from quality_checks.drift import report_markdown
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.warehouse import Warehouse, default_duckdb_path

TABLES = ["task_pool", "human_reference", "heldout_eval", "raw_candidates", "verified_set", "preference_pairs",
          "filtered_set", "filter_drops", "mixed_training_set", "generator_eval", "drift_report", "alerts"]


def summary(wh: Warehouse) -> str:
    g = wh.current_generation()
    s = wh.schema
    out = [f"DuckDB warehouse: {wh.path}", f"newest generation: {g}", "", "table                 rows (this generation / all)"]
    for t in TABLES:
        if not wh.table_exists(t):
            out.append(f"{t:<22}missing")
            continue
        cols = wh.sql(f"select * from {s}.{t} limit 0").columns
        total = wh.sql(f"select count(*) n from {s}.{t}")["n"][0]
        if "generation" in cols and t not in ("task_pool", "human_reference", "heldout_eval", "alerts"):
            cur = wh.sql(f"select count(*) n from {s}.{t} where generation = ?", [g])["n"][0]
            out.append(f"{t:<22}{cur} / {total}")
        else:
            out.append(f"{t:<22}{total}")
    if wh.table_exists("verified_set"):
        rates = wh.sql(
            f"select family, count(*) n, round(avg((verdict = 'pass')::int), 3) pass_rate "
            f"from {s}.verified_set where generation = ? group by family order by family", [g])
        out += ["", "pass rate by family (this generation):"]
        out += [f"  {r['family']:<20}{r['pass_rate']:.3f}  ({r['n']} candidates)" for r in rates.iter_rows(named=True)]
    if wh.table_exists("filter_drops"):
        reasons = wh.sql(f"select drop_reason, count(*) n from {s}.filter_drops where generation = ? "
                         "group by 1 order by 2 desc", [g])
        out += ["", "drop reasons (this generation): " + json.dumps(dict(reasons.iter_rows()))]
    if wh.table_exists("mixed_training_set"):
        mix = wh.sql(f"select source, split, count(*) n from {s}.mixed_training_set where generation = ? "
                     "group by 1, 2 order by 1, 2", [g])
        out += ["", "training set (this generation): " + ", ".join(f"{a}/{b}: {n}" for a, b, n in mix.iter_rows())]
        from pathlib import Path
        export = Path(wh.path).parent / "exports" / f"generation_{g:04d}"
        out += [f"exported to: {export}/train.jsonl and validation.jsonl"]
    if wh.table_exists("drift_report"):
        flags = wh.sql(f"select corpus, metric, status, note from {s}.drift_report where generation = ? "
                       "and metric in ('DIVERSITY_LOSS', 'FIDELITY_GAP', 'heldout_pass_rate')", [g])
        out += [""] + [f"{r['metric']} ({r['corpus']}): {r['status']}  {r['note']}" for r in flags.iter_rows(named=True)]
        out += ["", f"drift report (generation {g}; query: select * from {s}.drift_report where generation = {g}):",
                drift(wh)]
    return "\n".join(out)


def drift(wh: Warehouse) -> str:
    g = wh.current_generation()
    rep = wh.sql(f"select * from {wh.schema}.drift_report where generation = ? order by corpus", [g])
    if rep.height == 0:
        return f"no drift report for generation {g}: materialize drift_report"
    return report_markdown(rep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["summary", "drift"])
    parser.add_argument("--db", default=None, help="DuckDB file (default: $SYNTH_DUCKDB_PATH or $DAGSTER_HOME/warehouse.duckdb)")
    args = parser.parse_args(argv)
    try:
        wh = Warehouse(args.db or default_duckdb_path())
        print(summary(wh) if args.command == "summary" else drift(wh))
    except SynthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    pl.Config.set_tbl_rows(50)
    sys.exit(main())
