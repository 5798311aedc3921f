"""The science family on the embedded model: how often its proposals survive the simulation.

    .venv/bin/python bench/science_family.py                 # 30 projectile_design tasks x 6 samples

Tasks as the task pool draws them (seed 42), sampled as raw_candidates does on the defaults
(3-shot prompt, temperatures 0.7/1.0, batched decoding), verified by the platform's verifier
(the family's simulation). Printed: pass rate with its 95% Wilson interval, how many of the
four constraints the proposals met, the most common violations, and the reference designs'
pass rate (all must pass: the constraints are satisfiable).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.generation import SamplingPlan, run_generation
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.science import PROJECTILE
from synth_assets.core.tasks.sources import reasoning_gym_dataset, reasoning_gym_tasks
from synth_assets.core.verify.verification import verify_candidates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--samples", type=int, default=6)
    args = ap.parse_args()
    tasks = reasoning_gym_tasks([PROJECTILE], args.tasks, 42)
    gen = LlamaCppGenerator(parallel=16)
    cands = run_generation(tasks, gen, SamplingPlan(samples_per_task=args.samples), generation=1)
    out = verify_candidates(cands, Sandbox())
    k = int((out["verdict"] == "pass").sum())
    lo, hi = wilson(k, out.height)
    print(
        f"{out.height} proposals ({args.tasks} tasks x {args.samples}): pass {k} = {k / out.height:.3f} "
        f"(95% CI {lo:.3f}-{hi:.3f})"
    )
    met = (
        out.group_by((pl.col("score") * 4).round().cast(pl.Int64).alias("constraints_met"))
        .len()
        .sort("constraints_met")
    )
    print("constraints met (of 4):", dict(met.iter_rows()))
    kinds = {"lands": "range", "highest": "ceiling", "speed": "speed limit", "angle": "angle", "no": "no design"}
    why = Counter(
        kinds.get(part.split(" ")[0], part[:30])
        for d in out["verdict_detail"].to_list()
        if "violated: " in d or "no design" in d
        for part in d.split("violated: ")[-1].split("; ")
    )
    print("violations by constraint:", dict(why.most_common()))
    print("examples:", out.select("extracted_answer", "verdict_detail").head(4).rows())
    ds = reasoning_gym_dataset(PROJECTILE, args.tasks, 42)
    print(
        "reference designs passing:",
        sum(ds.check(ds[i]["answer"], ds[i])[0] == 1.0 for i in range(args.tasks)),
        "of",
        args.tasks,
    )
    gen.close()


if __name__ == "__main__":
    main()
