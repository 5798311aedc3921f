"""The embedded model as an AI judge, calibrated where programs know the truth: what the
`judge_calibration` asset reports on a default run, on the same kind of data.

    .venv/bin/python bench/judge_calibration.py                 # 6 default families x 10 tasks + 12 HumanEval
    .venv/bin/python bench/judge_calibration.py --per-family 20 --samples 6

Candidates: the default families' reasoning-gym tasks (seed 42) and HumanEval tasks of the
generation split, sampled by the embedded model as raw_candidates does (batched), verified by
the platform's verifiers (reasoning-gym scorers, HumanEval tests in the bubblewrap sandbox).
Human rows: HumanEval's human split (prompt + canonical solution). Then the model judges them
with the default rubric and CalibrationSettings' defaults; printed: every figure with its
sample size and interval, the per-family table, whether it is trusted and why not, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.generation import SamplingPlan, run_generation
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.sources import (
    DEFAULT_FAMILIES,
    humaneval_references,
    humaneval_tasks,
    reasoning_gym_tasks,
)
from synth_assets.core.verify.ai_feedback import DEFAULT_RUBRIC, Judge, read_text_file
from synth_assets.core.verify.judge_calibration import CalibrationSettings, calibrate
from synth_assets.core.verify.verification import verify_candidates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=10)
    ap.add_argument("--humaneval", type=int, default=12)
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    tasks = pl.concat(
        [reasoning_gym_tasks(DEFAULT_FAMILIES, args.per_family, 42), humaneval_tasks(args.humaneval, 0.3, 0.2)],
        how="diagonal_relaxed",
    )
    gen = LlamaCppGenerator(parallel=16)
    t0 = time.perf_counter()
    cands = run_generation(tasks, gen, SamplingPlan(samples_per_task=args.samples), generation=1)
    verified = verify_candidates(cands, Sandbox())
    t_gen = time.perf_counter() - t0
    human = humaneval_references("human", 0.3, 0.2)
    t0 = time.perf_counter()
    cal = calibrate(
        Judge(gen, read_text_file(None, DEFAULT_RUBRIC, "rubric")), verified, human, 1, CalibrationSettings()
    )
    t_cal = time.perf_counter() - t0
    print(
        f"{verified.height} candidates ({tasks.height} tasks x {args.samples}) "
        f"generated and verified in {t_gen:.0f} s; "
        f"pass rate {float((verified['verdict'] == 'pass').mean()):.3f}"
    )
    print(f"calibration: {cal.rows.height} rows and {cal.pairs.height} pairs (x2 orders) judged in {t_cal:.0f} s")
    print(json.dumps({k: v for k, v in cal.summary.items() if k != "thresholds"}, indent=1))
    print(cal.per_family)
    print("trusted" if cal.trusted else "NOT trusted:\n  " + "\n  ".join(cal.reasons))
    gen.close()


if __name__ == "__main__":
    main()
