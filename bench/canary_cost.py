"""What the verifier canaries cost against the verification stage of the default run.

The default run's task pool (task_pool's defaults: 100 tasks of each default family, 8 HumanEval
tasks of the generation split, seed 42), plus a few tasks shaped as the synthesized ones (math
and exact answers, here real reasoning-gym items), 6 samples a task, verified by
``verify_candidates`` as ``verified_set`` does; and ``prove_verifiers`` on the same candidates,
as ``verified_set`` runs it before them. The completions are real answers and code built from
the items: sample 0 the item's true answer (HumanEval's canonical solution), the others wrong
answers built from it (off by one, another item's answer, an empty answer; for code the body
returning None and the first return negated), which is what the verifiers see from a weak model:
mostly wrong answers, some right ones. The two alternate ``--rounds`` times in one process, with
one sandbox (two workers, as on the 2-core machine); medians are reported. The canaries' cost is
the wall time ``verified_set`` waits for them before it verifies (every canary but the one that
never ends, which times out beside the verification), and their CPU time (this process and the
sandboxes'), each against the verification's.

    .venv/bin/python bench/canary_cost.py [--rounds 3] [--tasks-per-family 100] [--samples 6] [--out FILE]
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import polars as pl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from synth_assets.core.generators.generation import CANDIDATE_SCHEMA
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.sources import (
    DEFAULT_FAMILIES,
    conform,
    humaneval_tasks,
    reasoning_gym_tasks,
)
from synth_assets.core.verify.canaries import _humaneval, most_different, off_by_one, prove_verifiers, start_canaries
from synth_assets.core.verify.verification import verify_candidates


def synthesized_like(n_math: int, n_exact: int) -> pl.DataFrame:
    """Tasks shaped as synthesized ones (math for numeric answers, exact otherwise), from real items."""
    math = reasoning_gym_tasks(["gcd"], n_math, 4242).with_columns(verifier=pl.lit("math"), verifier_spec=pl.lit("{}"))
    exact = reasoning_gym_tasks(["spell_backward"], n_exact, 4242).with_columns(
        verifier=pl.lit("exact"), verifier_spec=pl.lit("{}")
    )
    return pl.concat([math, exact]).with_columns(source=pl.lit("synthesized"))


def completions(task: dict, others: list[str], samples: int) -> list[str]:
    if task["verifier"] == "python_tests":
        right = _humaneval()[task["task_id"]]["canonical_solution"]
        wrong = ["    return None\n", right.replace("return ", "return not ", 1)]
    else:
        right = task["answer"]
        wrong = [w for w in (off_by_one(right), most_different(right, others), "") if w is not None]
        right, wrong = f" {right}", [f" {w}" for w in wrong]
    return [right if i == 0 else wrong[(i - 1) % len(wrong)] for i in range(samples)]


def candidates(tasks: pl.DataFrame, samples: int) -> pl.DataFrame:
    rows = []
    by_family = {f: part["answer"].drop_nulls().to_list() for (f,), part in tasks.group_by("family")}
    for t in tasks.iter_rows(named=True):
        others = [a for a in by_family[t["family"]] if a != t["answer"]][:20]
        for i, text in enumerate(completions(t, others, samples)):
            rows.append(
                {**t, "candidate_id": f"{t['task_id']}/{i}", "generation": 1, "sample_index": i, "completion": text}
            )
    return conform(rows, CANDIDATE_SCHEMA)


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process and its finished children, result)."""
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(
        getattr(b, f) - getattr(a, f) for a, b in ((self0, self1), (kids0, kids1)) for f in ("ru_utime", "ru_stime")
    )
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks-per-family", type=int, default=100)
    ap.add_argument("--humaneval", type=int, default=8)
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    tasks = pl.concat(
        [
            reasoning_gym_tasks(DEFAULT_FAMILIES, args.tasks_per_family, 42),
            humaneval_tasks(args.humaneval, 0.3, 0.2),
            synthesized_like(3, 2),
        ],
        how="diagonal",
    )
    frame = candidates(tasks, args.samples)
    box = Sandbox(workers=2)
    print(
        f"{tasks.height} tasks, {frame.height} candidates ({frame['verifier'].value_counts().sort('verifier').rows()})"
    )
    verify_candidates(frame.head(50), box)  # warm caches (datasets, math-verify's import) for both paths
    prove_verifiers(frame, box)
    runs = []
    for r in range(args.rounds):
        v_wall, v_cpu, verdicts = timed(lambda: verify_candidates(frame, box))
        # as verified_set runs them: every canary before the verification, but the one that never ends,
        # which times out beside it (finish() waits for it only when nothing else took that long)
        s_wall, s_cpu, run = timed(lambda: start_canaries(frame, box))
        f_wall, f_cpu, report = timed(run.finish)
        wrong = report.filter(pl.col("ok").not_()).height
        runs.append({"verify_wall": v_wall, "verify_cpu": v_cpu, "canary_wall": s_wall, "canary_cpu": s_cpu + f_cpu})
        runs[-1]["never_ends_wall"] = s_wall + f_wall
        print(
            f"round {r + 1}: verification {v_wall:.2f} s wall / {v_cpu:.2f} s CPU "
            f"({int((verdicts['verdict'] == 'pass').sum())} pass); canaries {s_wall:.2f} s before it "
            f"({s_wall / v_wall:.1%}), {s_cpu + f_cpu:.2f} s CPU ({(s_cpu + f_cpu) / v_cpu:.1%}); "
            f"{report.height} canaries, {wrong} wrong; the one that never ends done at {s_wall + f_wall:.2f} s"
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    per = report.group_by("verifier").agg(pl.len().alias("canaries"), pl.col("seconds").sum().round(3)).sort("verifier")
    print(per)
    print(
        f"median of {args.rounds}: verification {med['verify_wall']:.2f} s wall, {med['verify_cpu']:.2f} s CPU; "
        f"canaries {med['canary_wall']:.2f} s wall = {med['canary_wall'] / med['verify_wall']:.1%}, "
        f"{med['canary_cpu']:.2f} s CPU = {med['canary_cpu'] / med['verify_cpu']:.1%}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"args": vars(args), "tasks": tasks.height, "candidates": frame.height, "runs": runs}, f, indent=1
            )


if __name__ == "__main__":
    main()
