"""Calibration of the drift report's thresholds on the model-collapse scenario.

A word bigram model is retrained on its own samples for several generations (replace),
retrained on human data plus all earlier samples (accumulate), or replaced by fresh human
text (human control); the drift report runs on every generation. Prints, per mode and seed,
the core metrics' change against the first generation and whether DIVERSITY_LOSS fired.

    .venv/bin/python bench/collapse_calibration.py [--seeds 3] [--generations 6] [--budget 20000]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from synth_assets.core.quality.drift import DriftSettings
from tests.collapse_sim import Scenario, alerts, human_sentences


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--budget", type=int, default=20_000)
    ap.add_argument("--sentences", type=int, default=1500)
    ap.add_argument("--order", type=int, default=2, help="word n-gram order of the model (3 collapses more slowly)")
    args = ap.parse_args()
    corpus = human_sentences()
    print(
        f"human corpus: {len(corpus)} sentences, {sum(len(s.split()) for s in corpus)} tokens "
        f"(stdlib docstrings); budget {args.budget} tokens; {args.sentences} sentences per generation; "
        f"order-{args.order} word model"
    )
    rules = {
        "bootstrap": DriftSettings(token_budget=args.budget),
        "relative (old)": DriftSettings(token_budget=args.budget, decline_test="relative"),
    }
    summary: dict[tuple[str, str], tuple[int, int, list, int]] = {}
    t0 = time.perf_counter()
    print(
        f"{'mode':<11}{'seed':>4}{'gen':>4}{'distinct-2':>12}{'rare cov':>10}{'gzip':>8}{'JS->H':>8}"
        f"  {'DIVERSITY_LOSS (bootstrap / old)':<34} FIDELITY_GAP"
    )
    for mode in ("replace", "accumulate", "human"):
        for seed in range(args.seeds):
            sc = Scenario(
                generations=args.generations, sentences_per_generation=args.sentences, seed=seed, order=args.order
            )
            by_rule = {name: alerts(mode, sc, st, corpus) for name, st in rules.items()}
            for name, rows in by_rule.items():
                fired, checked, firsts, gaps = summary.get((mode, name), (0, 0, [], 0))
                fired += sum(r["DIVERSITY_LOSS"] == "alert" for r in rows)
                gaps += sum(r["FIDELITY_GAP"] == "notice" for r in rows)
                firsts = firsts + [next((r["generation"] for r in rows if r["DIVERSITY_LOSS"] == "alert"), None)]
                summary[(mode, name)] = (fired, checked + len(rows), firsts, gaps)
            for r, old in zip(by_rule["bootstrap"], by_rule["relative (old)"]):
                print(
                    f"{mode:<11}{seed:>4}{r['generation']:>4}{r['distinct_2']:>+12.1%}{r['rare_type_coverage']:>+10.1%}"
                    f"{r['compression_ratio']:>+8.1%}{r['js_distance_to_human']:>+8.1%}  "
                    f"{r['DIVERSITY_LOSS'] + ' / ' + old['DIVERSITY_LOSS']:<34} {r['FIDELITY_GAP']}",
                    flush=True,
                )
    print()
    print(f"{'mode':<11} {'rule':<15} {'alerts':>8} {'first alert by seed':<28} {'FIDELITY_GAP notices':>20}")
    for (mode, name), (fired, checked, firsts, gaps) in summary.items():
        print(f"{mode:<11} {name:<15} {f'{fired}/{checked}':>8} {str(firsts):<28} {f'{gaps}/{checked}':>20}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
