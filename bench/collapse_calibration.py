"""Calibration of the drift report's rules on the model-collapse scenario.

A word n-gram model is retrained on its own samples for several generations (replace),
retrained on human data plus all earlier samples (accumulate), or replaced by fresh human
text (human control); the drift report runs on every generation, each report holding the last
one's DIVERSITY_LOSS status as the asset does. Three rules judge the same reports: ``slide``
(the default: a decline must still be sliding to raise DIVERSITY_LOSS, a settled one is a
plateau warn), ``bootstrap`` (the earlier default: every corroborated significant decline
alerts) and ``relative`` (the first rule: fixed relative thresholds).

    .venv/bin/python bench/collapse_calibration.py [--seeds 3] [--generations 6] [--budget 20000]
    .venv/bin/python bench/collapse_calibration.py --preset plateau --seeds 20 --generations 10

``--preset plateau`` runs the regimes of issue 35: replacement, accumulation as it is,
accumulation that settles near the core thresholds (each model trained on a capped draw from
the pool, or on less human data), and the human control. ``--rows`` prints every generation.
"""

import argparse
import os
import sys
import time
from collections import Counter
from fractions import Fraction

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import synth_assets.core.quality.drift as drift
from synth_assets.core.quality.drift import DriftSettings
from tests.collapse_sim import Scenario, alerts, human_sentences, run

# name: (mode, scenario options); the accumulation variants settle near the core thresholds
PLATEAU = {
    "replace": ("replace", {}),
    "accumulate": ("accumulate", {}),
    "accumulate, pool cap 4,000": ("accumulate", {"train_cap": 4000}),
    "accumulate, pool cap 3,000": ("accumulate", {"train_cap": 3000}),
    "accumulate, 1,000 human": ("accumulate", {"train_sentences": 1000}),
    "accumulate, trigram": ("accumulate", {"order": 3}),
    "accumulate, trigram, cap 3,000": ("accumulate", {"order": 3, "train_cap": 3000}),
    "human": ("human", {}),
}
# a slow slide for contrast (not in the preset): sampling at temperature 0.9 sharpens every
# generation, which accumulation does not level off within ten generations
EXTRA = {"accumulate, T 0.9": ("accumulate", {"temperature": 0.9})}
CORE = ("distinct_2", "rare_type_coverage", "compression_ratio", "js_distance_to_human")


def memoize_measurements() -> dict:
    """The rules judge the same corpora: each budgeted sample, profile and bootstrap is computed
    once per content (a hash of the texts and of every other argument). Returns the cache, to be
    cleared between runs.

    Only the bench does this, to run four rules in little more than the time of one; the report
    itself stays a pure function of its inputs."""
    cache: dict = {}
    take_budget, lexical_profile, bootstrap_core, core_values = (
        drift.take_budget,
        drift.lexical_profile,
        drift.bootstrap_core,
        drift.core_values,
    )

    def once(key, compute):
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def texts(t):
        return hash(tuple(t)), len(t)

    def docs(d):
        return hash(tuple(map(tuple, d))), len(d)

    def budgeted(t, budget):
        return once(("take", texts(t), budget), lambda: take_budget(t, budget))

    def profile(t, budget, reference=None, rare=None):
        ref, rr = None if reference is None else texts(reference), None if rare is None else hash(frozenset(rare))
        return dict(once(("profile", texts(t), budget, ref, rr), lambda: lexical_profile(t, budget, reference, rare)))

    def bootstrap(d, rare, human_dist, b, seed):
        key = ("boot", docs(d), hash(frozenset(rare)), hash(frozenset(human_dist.items())), b, seed)
        return once(key, lambda: bootstrap_core(d, rare, human_dist, b, seed))

    def core(d, rare, human):
        return once(("core", docs(d), hash(frozenset(rare)), docs(human)), lambda: core_values(d, rare, human))

    drift.take_budget, drift.lexical_profile, drift.bootstrap_core, drift.core_values = (
        budgeted,
        profile,
        bootstrap,
        core,
    )
    return cache


def toggles(statuses: list[str]) -> int:
    """How often DIVERSITY_LOSS came back on after going off."""
    on = [s == "alert" for s in statuses]
    return sum(1 for i in range(1, len(on)) if on[i] and not on[i - 1] and any(on[: i - 1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--budget", type=int, default=20_000)
    ap.add_argument("--sentences", type=int, default=1500)
    ap.add_argument("--order", type=int, default=2, help="word n-gram order of the model (3 collapses more slowly)")
    ap.add_argument("--preset", choices=["modes", "plateau"], default="modes", help="modes: replace, accumulate, human")
    ap.add_argument("--regimes", default="", help=f"--preset plateau: names split by ';' (or {', '.join(EXTRA)})")
    ap.add_argument("--slide-rates", default="1/2,1/3", help="slide_rate of each slide rule (the default rule: 1/2)")
    ap.add_argument("--rows", action="store_true", help="print every generation of every seed")
    args = ap.parse_args()
    corpus = human_sentences()
    cache = memoize_measurements()
    print(
        f"human corpus: {len(corpus)} sentences, {sum(len(s.split()) for s in corpus)} tokens "
        f"(stdlib docstrings); budget {args.budget} tokens; {args.sentences} sentences per generation; "
        f"{args.generations} generations, seeds 0-{args.seeds - 1}"
    )
    if args.preset == "plateau":
        regimes = {k: (m, {"order": args.order, **o}) for k, (m, o) in (PLATEAU | EXTRA).items()}
        regimes = {k: regimes[k] for k in args.regimes.split(";")} if args.regimes else {k: regimes[k] for k in PLATEAU}
    else:
        regimes = {m: (m, {"order": args.order}) for m in ("replace", "accumulate", "human")}
    rules = {
        **{
            f"slide {rate}": DriftSettings(token_budget=args.budget, slide_rate=float(Fraction(rate)))
            for rate in args.slide_rates.split(",")
        },
        "bootstrap": DriftSettings(token_budget=args.budget, trend_generations=0),
        "relative": DriftSettings(token_budget=args.budget, decline_test="relative"),
    }
    t0 = time.perf_counter()
    if args.rows:
        print(
            f"{'regime':<28}{'seed':>4}{'gen':>4}{'distinct-2':>11}{'rare cov':>9}{'gzip':>7}{'JS->H':>7}"
            f"  DIVERSITY_LOSS {' / '.join(rules)}"
        )
    summary = {}
    levels: dict[str, list[dict]] = {}
    for name, (mode, opts) in regimes.items():
        for seed in range(args.seeds):
            sc = Scenario(generations=args.generations, sentences_per_generation=args.sentences, seed=seed, **opts)
            texts = run(mode, sc, corpus)
            by_rule = {rule: alerts(mode, sc, st, texts=texts) for rule, st in rules.items()}
            cache.clear()
            for rule, rows in by_rule.items():
                s = summary.setdefault((name, rule), {"fired": 0, "checked": 0, "firsts": [], "warns": 0, "flips": 0})
                statuses = [r["DIVERSITY_LOSS"] for r in rows]
                s["fired"] += statuses.count("alert")
                s["warns"] += statuses.count("warn")
                s["checked"] += len(rows)
                s["firsts"].append(next((r["generation"] for r in rows if r["DIVERSITY_LOSS"] == "alert"), None))
                s["flips"] += toggles(statuses)
            levels.setdefault(name, []).append(next(iter(by_rule.values()))[-1])
            if args.rows:
                for same in zip(*by_rule.values()):
                    r = same[0]
                    print(
                        f"{name:<28}{seed:>4}{r['generation']:>4}{r['distinct_2']:>+11.1%}"
                        f"{r['rare_type_coverage']:>+9.1%}{r['compression_ratio']:>+7.1%}"
                        f"{r['js_distance_to_human']:>+7.1%}  {' / '.join(x['DIVERSITY_LOSS'] for x in same)}",
                        flush=True,
                    )
        print(f"  {name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    print()
    print(
        f"{'regime':<30} {'rule':<11} {'alerts':>8} {'seeds alerted':>13} {'first alert (generation: seeds)':<32} "
        f"{'re-raised':>9} {'plateau warns':>13}"
    )
    for (name, rule), s in summary.items():
        firsts = Counter(g for g in s["firsts"] if g is not None)
        first_text = ", ".join(f"{g}: {n}" for g, n in sorted(firsts.items())) or "-"
        fired, seeds, warns = (
            f"{s['fired']}/{s['checked']}",
            f"{sum(firsts.values())}/{len(s['firsts'])}",
            f"{s['warns']}/{s['checked']}",
        )
        print(f"{name:<30} {rule:<11} {fired:>8} {seeds:>13} {first_text:<32} {s['flips']:>9} {warns:>13}")
    print()
    print(f"change vs G1 at generation {args.generations}, lowest to highest over the seeds:")
    for name, rows in levels.items():
        ranges = "  ".join(f"{m} {min(r[m] for r in rows):+.1%} to {max(r[m] for r in rows):+.1%}" for m in CORE)
        print(f"  {name:<30} {ranges}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
