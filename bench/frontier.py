"""The capability frontier of the embedded model: per family and difficulty level, greedy pass
rate, pass@k at the sampling temperature, and what the trivial guessers reach; which level the
loop would generate at (core/training/frontier.py).

    .venv/bin/python bench/frontier.py                       # the default families, levels 1-3
    .venv/bin/python bench/frontier.py --families chain_sum,gcd --max-level 2 --items 20
    .venv/bin/python bench/frontier.py --all-levels          # every level up to --max-level, mastered or not

Prints a table and writes bench/results/frontier_<date>.json.
"""

import argparse
import json
import time
from datetime import date
from pathlib import Path
from typing import get_args

from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.generators.llama_backend import MODEL_ID, LlamaCppGenerator
from synth_assets.core.tasks.sources import levels_of, with_level
from synth_assets.core.training.frontier import FrontierSettings, chosen_levels, measure_frontier, measure_level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="chain_sum,leg_counting,basic_arithmetic,gcd")
    ap.add_argument("--max-level", type=int, default=3)
    ap.add_argument("--items", type=int, default=30)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--few-shot", type=int, default=PromptSettings().few_shot)
    ap.add_argument("--pool", type=int, default=PromptSettings().few_shot_pool)
    ap.add_argument("--parallel", type=int, default=16, help="sequences decoded together")
    ap.add_argument("--all-levels", action="store_true", help="measure every level, not only up to the frontier")
    ap.add_argument(
        "--form",
        choices=get_args(PromptSettings.model_fields["form"].annotation),
        default=PromptSettings().form,
        help="the prompt form (PromptSettings.form)",
    )
    ap.add_argument("--out", default="", help="results file (default bench/results/frontier_<date>.json)")
    args = ap.parse_args()
    families = args.families.split(",")
    settings = FrontierSettings(items_per_level=args.items, samples=args.samples)
    top = dict.fromkeys(families, args.max_level)
    prompts = PromptSettings(few_shot=args.few_shot, few_shot_pool=args.pool, form=args.form)
    gen = LlamaCppGenerator(parallel=args.parallel)  # batched, as raw_candidates generates
    t0 = time.perf_counter()
    if args.all_levels:
        import polars as pl

        from synth_assets.core.training.frontier import FRONTIER_SCHEMA

        rows = []
        for f in families:
            for lvl in range(1, min(args.max_level, levels_of(f)) + 1):
                rows.append(measure_level(gen, MODEL_ID, with_level(f, lvl), settings, prompts))
                r = rows[-1]
                print(
                    f"{r['family']}: greedy {r['greedy_rate']:.2f} pass@k {r['pass_at_k']:.2f} "
                    f"guess@k {r['guess_pass_at_k']:.2f} {r['status']} ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
        frontier = pl.DataFrame(rows, schema=FRONTIER_SCHEMA)
    else:
        frontier = measure_frontier(gen, MODEL_ID, families, settings, prompts, top, log=print)
    wall = time.perf_counter() - t0
    print(
        f"\n{MODEL_ID}, {args.items} items a level, {args.samples} samples at T={settings.temperature}, "
        f"{args.few_shot} shots from a pool of {args.pool}, {args.form} form; {wall:.0f} s"
    )
    print(
        f"{'family':<22}{'greedy [95% CI]':>22}{'pass@k':>8}{'samples':>9}{'guess@k':>9}{'mode':>7}{'last':>7}  status"
    )
    for r in frontier.iter_rows(named=True):
        print(
            f"{r['family']:<22}{r['greedy_rate']:>6.2f} [{r['greedy_low']:.2f}, {r['greedy_high']:.2f}]{'':>4}"
            f"{r['pass_at_k']:>8.2f}{r['sample_rate']:>9.2f}{r['guess_pass_at_k']:>9.2f}"
            f"{r['most_common_rate']:>7.2f}{r['last_shot_rate']:>7.2f}  {r['status']}"
        )
    print(f"levels to generate at: {chosen_levels(frontier, settings, top)}")
    out = Path(args.out or Path(__file__).parent / "results" / f"frontier_{date.today().isoformat()}.json")
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "wall_s": wall,
                "rows": frontier.to_dicts(),
                "chosen": chosen_levels(frontier, settings, top),
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
