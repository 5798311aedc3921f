"""Replay the gate's curtailed evaluation (core/training/gate.py ``settled``) on the answers a
warehouse stored: for each candidate, after how many held-out items the gate's decision was
settled when the candidate is evaluated in N parts, and that the settled decision is the one
every item gives.

    .venv/bin/python bench/curtailed_evaluation.py --chunks 8    # the 2026-12-07 default runs

The defaults are the warehouse and models of the two default runs of 2026-12-07 (bench/RESULTS.md,
"Two default runs, the frontier steering"); pass --db and --runs for others.
"""

import argparse

import polars as pl

from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.generators.llama_backend import MODEL_ID
from synth_assets.core.training.gate import GateSettings, compare, decision, settled
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items, trivial_baselines
from synth_assets.core.warehouse import Warehouse

FAMILIES = ["chain_sum@1", "basic_arithmetic@1", "projectile_design"]
# candidate, parent, the families@level it was gated on
RUNS = [
    ("g1-4611faad6c", MODEL_ID, FAMILIES),
    ("g2-02a7cc291f", "g1-4611faad6c", ["chain_sum@1", "basic_arithmetic@1", "basic_arithmetic@2"]),
    ("g2-2087762d14", "g1-4611faad6c", ["chain_sum@1", "basic_arithmetic@1", "basic_arithmetic@2"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="/tmp/loop2/home/warehouse.duckdb")
    ap.add_argument("--chunks", type=int, default=GateSettings().evaluation_chunks)
    args = ap.parse_args()
    wh = Warehouse(args.db)
    scores = wh.sql(f"select * from {wh.schema}.model_item_scores")
    every = heldout_items(HeldoutSettings(families=FAMILIES), PromptSettings())  # each family's ladder
    gate = GateSettings(evaluation_chunks=args.chunks)
    for model, parent, families in RUNS:
        cand = scores.filter(pl.col("model_id") == model)
        par = scores.filter(pl.col("model_id") == parent)
        items = every.filter(
            pl.col("item_id").is_in(cand["item_id"].to_list())
            & pl.col("item_id").is_in(par["item_id"].to_list())
            & pl.col("family").is_in(families)
        )
        cand = cand.filter(pl.col("item_id").is_in(items["item_id"].to_list()))
        baselines = trivial_baselines(items)
        full = decision(compare(cand, par, baselines, gate))
        # the order core/training/loop.py's curtailed_scores evaluates in
        order = items.with_columns(pl.col("item_id").hash(seed=11).alias("_h")).sort("_h")["item_id"].to_list()
        part = -(-len(order) // gate.evaluation_chunks)
        stop = len(order)
        for end in range(part, len(order), part):
            verdict = settled(cand.filter(pl.col("item_id").is_in(order[:end])), par, items, baselines, gate)
            if verdict is not None:
                assert verdict[0] == full[0], "a settled decision differs from the full one"
                stop = end
                break
        print(
            f"{model} against {parent[:16]}: {len(order)} items, {'promote' if full[0] else 'refuse'}; "
            f"settled after {stop} ({stop / len(order):.0%}) in {args.chunks} parts"
        )


if __name__ == "__main__":
    main()
