"""One round of the loop on chosen family levels, with the platform's core functions: does a
round trained on a level's verified samples beat its parent there?

The capability frontier (bench/frontier.py) predicts where a round can teach from greedy, pass@k
and the guessers; this measures it for a level the frontier doubts, such as a family in rationale
form whose checked steps hold the knowledge (leg_counting's leg lookups) while its few distinct
answers let a guesser find them too. The base model samples the level's tasks, the verifier keeps
the passes (one row per task and answer; a worked rationale is kept whole, its steps checked), the
default human rows join them, a LoRA is trained from the base model, and the gate compares it with
the base model on the level's held-out, harder and rephrased items (paired, Holm-corrected, beside
the trivial predictors).

    .venv/bin/python bench/family_round.py --families leg_counting@2 --form rationale --tasks 200
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.self_improvement import human_rows, mix_rows  # noqa: E402
from synth_assets.core.curate.curation import training_text_expr  # noqa: E402
from synth_assets.core.generators.generation import PromptSettings, SamplingPlan, run_generation  # noqa: E402
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits  # noqa: E402
from synth_assets.core.tasks.sources import reasoning_gym_tasks  # noqa: E402
from synth_assets.core.training.gate import GateSettings  # noqa: E402
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items  # noqa: E402
from synth_assets.core.training.loop import (  # noqa: E402
    CandidateSettings,
    evaluate_candidate,
    load_generator,
    train_candidate,
)
from synth_assets.core.training.registry import Registry  # noqa: E402
from synth_assets.core.verify.verification import verify_candidates  # noqa: E402
from synth_assets.core.warehouse import Warehouse  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", required=True, help="family@level list, comma-separated")
    ap.add_argument(
        "--form", choices=get_args(PromptSettings.model_fields["form"].annotation), default=PromptSettings().form
    )
    ap.add_argument("--tasks", type=int, default=200, help="tasks a family")
    ap.add_argument("--samples", type=int, default=SamplingPlan().samples_per_task, help="samples a task")
    ap.add_argument("--heldout", type=int, default=100, help="held-out items a family and variant")
    ap.add_argument("--human-rows", type=int, default=56, help="human rows in the mix (the default run's count)")
    ap.add_argument("--out", default="", help="also write the results as JSON here")
    args = ap.parse_args()
    families = args.families.split(",")
    started = time.monotonic()

    def log(m: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {m}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="family_round_"))
    reg = Registry(Warehouse(work / "warehouse.duckdb"))
    tasks = reasoning_gym_tasks(families, args.tasks, 42)
    gen = load_generator(reg.get(reg.serving()))
    try:
        samples = run_generation(tasks, gen, SamplingPlan(form=args.form, samples_per_task=args.samples), 1, log=log)
    finally:
        gen.close()
    verified = verify_candidates(samples, Sandbox(SandboxLimits()))
    passed = verified.filter(pl.col("verdict") == "pass")
    keep = passed.unique(["task_id", "extracted_answer"], keep="first", maintain_order=True).with_columns(
        pl.col("candidate_id").alias("row_id"),
        pl.col("source").alias("task_source"),
        training_text_expr().alias("response"),
    )
    mix = pl.concat([mix_rows(keep, "synthetic", 1), mix_rows(human_rows(args.human_rows), "human", 1)])
    log(
        f"{samples.height} samples, {passed.height} passed, {keep.height} rows from "
        f"{keep['task_id'].n_unique()} of {tasks.height} tasks, + {args.human_rows} human rows"
    )
    t_train = time.monotonic()
    row = train_candidate(mix, 1, CandidateSettings(form=args.form, seed=1), reg, work / "models", log=log)
    train_s = time.monotonic() - t_train
    items = heldout_items(
        HeldoutSettings(families=families, levels_above=0, items_per_family=args.heldout),
        PromptSettings(form=args.form),
    )
    comparison, ok, reasons, _ = evaluate_candidate(row["model_id"], items, mix, reg, GateSettings(), log)
    print(f"\n{args.families}, {args.form} form: {'PROMOTED' if ok else 'refused: ' + '; '.join(reasons)}")
    print(
        "| family@level | variant | items | parent | candidate | gain p (Holm) | flag |\n|---|---|---|---|---|---|---|"
    )
    for c in comparison.filter(pl.col("family") != "_macro_").iter_rows(named=True):
        print(
            f"| {c['family']} | {c['variant']} | {c['n']} | {c['parent_rate']:.2f} | {c['candidate_rate']:.2f} | "
            f"{c['p_gain_adj']:.2g}{' (gain)' if c['significant_gain'] else ''} | {c['flag'] or ''} |"
        )
    total_min = (time.monotonic() - started) / 60
    print(f"\ntraining {train_s / 60:.1f} min ({row['train_rows']} rows); total {total_min:.1f} min")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "samples": samples.height,
                    "passed": passed.height,
                    "rows": keep.height,
                    "promoted": ok,
                    "reasons": reasons,
                    "comparison": comparison.to_dicts(),
                    "train_s": train_s,
                    "wall_s": time.monotonic() - started,
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
