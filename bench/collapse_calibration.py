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

from quality_checks.drift import DriftSettings  # noqa: E402
from tests.collapse_sim import Scenario, alerts, human_sentences  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--budget", type=int, default=20_000)
    ap.add_argument("--sentences", type=int, default=1500)
    args = ap.parse_args()
    corpus = human_sentences()
    print(f"human corpus: {len(corpus)} sentences, {sum(len(s.split()) for s in corpus)} tokens "
          f"(stdlib docstrings); budget {args.budget} tokens; {args.sentences} sentences per generation")
    settings = DriftSettings(token_budget=args.budget)
    first_alert: dict[str, list] = {}
    alerts_total: dict[str, tuple[int, int]] = {}
    t0 = time.perf_counter()
    print(f"{'mode':<11}{'seed':>4}{'gen':>4}{'distinct-2':>12}{'rare cov':>10}{'gzip':>8}{'JS->H':>8}  DIVERSITY_LOSS")
    for mode in ("replace", "accumulate", "human"):
        fired = checked = 0
        for seed in range(args.seeds):
            sc = Scenario(generations=args.generations, sentences_per_generation=args.sentences, seed=seed)
            rows = alerts(mode, sc, settings, corpus)
            for r in rows:
                checked += 1
                fired += r["DIVERSITY_LOSS"] == "alert"
                print(f"{mode:<11}{seed:>4}{r['generation']:>4}{r['distinct_2']:>+12.1%}{r['rare_type_coverage']:>+10.1%}"
                      f"{r['compression_ratio']:>+8.1%}{r['js_distance_to_human']:>+8.1%}  {r['DIVERSITY_LOSS']}")
            first_alert.setdefault(mode, []).append(
                next((r["generation"] for r in rows if r["DIVERSITY_LOSS"] == "alert"), None))
        alerts_total[mode] = (fired, checked)
    print()
    for mode, (fired, checked) in alerts_total.items():
        print(f"{mode:<11} DIVERSITY_LOSS in {fired}/{checked} generation checks; first alert by seed: {first_alert[mode]}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
