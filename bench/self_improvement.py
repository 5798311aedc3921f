"""The loop, measured: several rounds of generate -> (verify) -> train -> evaluate -> gate, in two
arms on the same tasks and seeds, with the platform's own core functions.

* default: verified synthetic rows (reasoning-gym's scorer) accumulated across rounds, mixed
  with human rows (HumanEval canonical solutions, the platform's default human reference);
* naive: every sample, unverified, no human data, each round replacing the last;
* dpo: the default arm's supervised candidate, then direct preference optimisation started from
  it on the same round's preference pairs (verified chosen vs failed rejected, the platform's
  ``preference_pairs``); the DPO model is gated against the model in service, and its held-out
  results are compared item by item with the supervised model it started from (the paired
  difference with a bootstrap 95% interval and McNemar's exact p): did preference optimisation help.

Each arm has its own DuckDB registry; a candidate is promoted only through the gate, and the
next round generates with whatever serves. Per round and arm it prints the held-out pass rate
per family and variant with 95% intervals (and the trivial baselines), the gate's decision
and reasons, the diversity of the round's samples (distinct answers per task, answer entropy),
the drift report's held-out degradation test on the candidate against the previous round, the
drift report's answer rows per family (``answer_rows``: the entropy of the candidate's held-out
answers against the reference answers', the trivial-baseline share, i.e. how many of its answers
are the family's most common reference answer, against the references' share, and
ANSWER_COLLAPSE with its evidence, against round 0, the base model, and the previous round), the
yield (verified candidates per CPU-minute of generation and verification), and wall time.

    .venv/bin/python bench/self_improvement.py [--rounds 3] [--tasks-per-family 30] [--samples 4]
        [--heldout 50] [--families letter_counting,gcd,chain_sum,basic_arithmetic] [--arms default,naive,dpo]
        [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synth_assets.core.curate.preferences import preference_pairs
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import PromptSettings, SamplingPlan, run_generation
from synth_assets.core.quality.drift import ANSWER_COLUMNS, DriftSettings, answer_rows, eval_rows
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from synth_assets.core.stats import mcnemar_p
from synth_assets.core.tasks.sources import humaneval_references, reasoning_gym_tasks
from synth_assets.core.training.gate import GateSettings
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items
from synth_assets.core.training.loop import (
    CandidateSettings,
    evaluate_candidate,
    load_generator,
    pass_rates,
    scores_for,
    train_candidate,
)
from synth_assets.core.training.registry import Registry
from synth_assets.core.verify.verification import verify_candidates
from synth_assets.core.warehouse import Warehouse


def entropy(values: list[str]) -> float:
    n = len(values)
    return -sum(c / n * math.log2(c / n) for c in Counter(values).values()) if n else 0.0


def paired_difference(a: pl.DataFrame, b: pl.DataFrame, seed: int = 0, resamples: int = 10_000) -> dict:
    """Model a's held-out accuracy minus model b's on the same items: the mean of per-item
    differences with a percentile bootstrap 95% interval, the items only one got right, and
    McNemar's exact p (the same test the gate uses per family)."""
    import numpy as np

    j = a.select("item_id", pl.col("correct").alias("a")).join(
        b.select("item_id", pl.col("correct").alias("b")), on="item_id"
    )
    x, y = j["a"].to_list(), j["b"].to_list()
    d = np.array(x, dtype=float) - np.array(y, dtype=float)
    means = np.random.default_rng(seed).choice(d, size=(resamples, d.size)).mean(axis=1)
    return {
        "n": int(d.size),
        "diff": float(d.mean()),
        "low": float(np.percentile(means, 2.5)),
        "high": float(np.percentile(means, 97.5)),
        "only_a": int((d > 0).sum()),
        "only_b": int((d < 0).sum()),
        "p": mcnemar_p(x, y),
    }


def answer_frame(scores: pl.DataFrame, items: pl.DataFrame, round_: int) -> pl.DataFrame:
    """A model's greedy answers to the held-out variant as the drift report reads them
    (ANSWER_COLUMNS, the rows generator_eval stores): round as the generation."""
    return (
        scores.filter(pl.col("variant") == "heldout")
        .select("item_id", "family", "answer_given")
        .join(items.select("item_id", "answer"), on="item_id")
        .select(
            pl.lit(round_, dtype=pl.Int64).alias("generation"),
            "family",
            "answer",
            pl.col("answer_given").alias("extracted_answer"),
        )
        .select(pl.col(c).cast(t) for c, t in ANSWER_COLUMNS.items())
    )


STATUS_ORDER = ("fail", "warn", "notice", "insufficient_data", "ok", "baseline")


def answer_drift(answers: pl.DataFrame, round_: int) -> tuple[list[dict], str]:
    """The drift report's answer rows for ``round_`` (every round so far in ``answers``), one
    dict per family, and the worst ANSWER_COLLAPSE status among the families."""
    rows = answer_rows(answers, round_, DriftSettings())
    out = []
    for (corpus,), part in rows.group_by(["corpus"], maintain_order=True):
        m = {r["metric"]: r for r in part.iter_rows(named=True)}
        out.append(
            {
                "family": corpus.removeprefix("answers:"),
                "entropy": m["answer_entropy"]["current"],
                "reference_entropy": m["answer_entropy"]["human"],
                "trivial_share": m["trivial_baseline_share"]["current"],
                "reference_trivial_share": m["trivial_baseline_share"]["human"],
                "top_share": m["top_answer_share"]["current"],
                "reference_top_share": m["top_answer_share"]["human"],
                "status": m["ANSWER_COLLAPSE"]["status"],
                "note": m["ANSWER_COLLAPSE"]["note"],
            }
        )
    worst = min((f["status"] for f in out), key=STATUS_ORDER.index, default="insufficient_data")
    return out, worst


def mix_rows(df: pl.DataFrame, source: str, round_: int) -> pl.DataFrame:
    """Mix rows (the columns training reads) from candidates or human references."""
    from synth_assets.core.curate.mixing import split_for

    return df.select(
        pl.col("row_id"),
        pl.lit(round_, dtype=pl.Int64).alias("generation"),
        pl.lit(source).alias("source"),
        "task_id",
        "family",
        "domain",
        pl.col("task_source"),
        "prompt",
        "response",
    ).with_columns(pl.col("task_id").map_elements(lambda t: split_for(t, 0.1), return_dtype=pl.String).alias("split"))


def human_rows(n: int) -> pl.DataFrame:
    ref = humaneval_references("human", 0.3, 0.2).head(n)
    return pl.DataFrame(
        {
            "row_id": ref["ref_id"],
            "task_id": ref["ref_id"],
            "family": ref["family"],
            "domain": ref["domain"],
            "task_source": "humaneval",
            "prompt": ref["prompt"],
            "response": ref["response"],
        }
    )


def run_arm(
    arm: str, args: argparse.Namespace, tasks: pl.DataFrame, items: pl.DataFrame, work: Path, log
) -> list[dict]:
    wh = Warehouse(work / arm / "warehouse.duckdb")
    reg = Registry(wh)
    sandbox = Sandbox(SandboxLimits())
    accumulated = pl.DataFrame()
    humans = mix_rows(human_rows(args.human_rows), "human", 0) if arm == "default" else pl.DataFrame()
    out = []
    serving = reg.get(reg.serving())
    base_scores = scores_for(serving, items, reg, log)
    held0 = base_scores.filter(pl.col("variant") == "heldout")
    series = {0: (int(held0["correct"].sum()), held0.height)}  # the drift report's held-out series, round 0 = base
    held_answers = answer_frame(base_scores, items, 0)  # the drift report's answer series, round 0 = base
    families0, worst0 = answer_drift(held_answers, 0)
    out.append(
        {
            "arm": arm,
            "round": 0,
            "model": "base",
            "rates": pass_rates(base_scores).to_dicts(),
            "answer_drift": families0,
            "answer_collapse": worst0,
        }
    )
    for r in range(1, args.rounds + 1):
        t_round = time.monotonic()
        serving = reg.get(reg.serving())
        gen = load_generator(serving)
        cpu0, t0 = time.process_time(), time.monotonic()
        plan = SamplingPlan(samples_per_task=args.samples, temperatures=[0.7, 1.0], seed=0)
        samples = run_generation(tasks, gen, plan, r, log=log)
        gen.close()
        verified = verify_candidates(samples, sandbox)
        cpu_min = (time.process_time() - cpu0) / 60
        gen_wall = time.monotonic() - t0
        passed = verified.filter(pl.col("verdict") == "pass")
        answers = [a.strip() for a in samples["completion"].fill_null("").to_list()]
        # answers are a few tokens: diversity is how many different answers a task gets, and how
        # spread the answers are overall (distinct-n of one-token texts would be 0 every round)
        per_task = (
            samples.with_columns(pl.col("completion").fill_null("").str.strip_chars().alias("a"))
            .group_by("task_id")
            .agg((pl.col("a").n_unique() / pl.len()).alias("u"))
        )
        distinct_answers = float(per_task["u"].mean())
        if arm == "default":
            keep = passed.unique(["task_id", "extracted_answer"]).with_columns(
                pl.col("candidate_id").alias("row_id"),
                pl.col("source").alias("task_source"),
                pl.col("extracted_answer").alias("response"),
            )
            accumulated = (
                pl.concat([accumulated, mix_rows(keep, "synthetic", r)], how="vertical_relaxed")
                if accumulated.height
                else mix_rows(keep, "synthetic", r)
            )
            mix = pl.concat(
                [accumulated, humans.with_columns(pl.lit(r, dtype=pl.Int64).alias("generation"))],
                how="vertical_relaxed",
            )
        else:
            naive = samples.with_columns(
                pl.col("candidate_id").alias("row_id"),
                pl.col("source").alias("task_source"),
                pl.col("completion").str.strip_chars().str.split("\n").list.first().alias("response"),
            )
            mix = mix_rows(naive.filter(pl.col("response").fill_null("") != ""), "synthetic", r)
        t1 = time.monotonic()
        settings = CandidateSettings(epochs=args.epochs, max_train_rows=args.max_train_rows, min_train_rows=4, seed=r)
        row = train_candidate(mix, r, settings, reg, work / arm / "models", log=log)
        extra: dict = {}
        if arm == "dpo":
            row, extra = preference_stage(row, mix, verified, r, args, reg, items, work, log)
        train_wall = time.monotonic() - t1
        comparison, ok, reasons, dropped = evaluate_candidate(
            row["model_id"], items, mix, reg, GateSettings(), log, against=serving.model_id
        )
        reg.decide(row["model_id"], "promoted" if ok else "rejected", "the gate passed" if ok else "; ".join(reasons))
        cand_scores = scores_for(reg.get(row["model_id"]), items, reg, log)
        held = cand_scores.filter(pl.col("variant") == "heldout")
        series[r] = (int(held["correct"].sum()), held.height)
        drift = eval_rows(r, series, "heldout_reasoning_pass_rate").row(0, named=True)
        held_answers = pl.concat([held_answers, answer_frame(cand_scores, items, r)])
        families, worst = answer_drift(held_answers, r)
        out.append(
            {
                "arm": arm,
                "round": r,
                "model": row["model_id"],
                "parent": serving.model_id,
                "promoted": ok,
                "reasons": reasons,
                "mix_rows": mix.height,
                "train_rows": row["train_rows"],
                "samples": samples.height,
                "verified": passed.height,
                "yield_per_cpu_min": passed.height / max(cpu_min, 1e-9),
                "cpu_min": cpu_min,
                "gen_wall_s": gen_wall,
                "train_wall_s": train_wall,
                "round_wall_s": time.monotonic() - t_round,
                "distinct_answers_per_task": distinct_answers,
                "answer_entropy": entropy(answers),
                "contaminated_dropped": dropped,
                **extra,
                "rates": pass_rates(cand_scores).to_dicts(),
                "drift_status": drift["status"],
                "drift_note": drift["note"],
                "answer_drift": families,
                "answer_collapse": worst,
                "comparison": comparison.select(
                    "family",
                    "variant",
                    "candidate_rate",
                    "parent_rate",
                    "most_common_rate",
                    "last_shot_rate",
                    "p_vs_parent",
                    "p_vs_baseline",
                    "significant_gain",
                    "flag",
                ).to_dicts(),
            }
        )
        log(
            f"[{arm}] round {r}: {'PROMOTED' if ok else 'rejected'} {row['model_id']} "
            f"({'; '.join(reasons) or 'gate passed'}); {passed.height}/{samples.height} verified; "
            f"ANSWER_COLLAPSE {worst} ({', '.join(f['family'] + ' ' + f['status'] for f in families)})"
        )
    sandbox.close()
    return out


def preference_stage(
    sft: dict,
    mix: pl.DataFrame,
    verified: pl.DataFrame,
    r: int,
    args: argparse.Namespace,
    reg: Registry,
    items: pl.DataFrame,
    work: Path,
    log,
) -> tuple[dict, dict]:
    """DPO started from the round's supervised candidate on the round's pairs; returns the model
    the arm gates (the DPO model, or the supervised one when there are too few pairs) and what
    the report shows of the stage."""
    pairs = preference_pairs(verified)
    sft_scores = scores_for(reg.get(sft["model_id"]), items, reg, log)
    settings = CandidateSettings(
        epochs=args.epochs,
        max_train_rows=args.max_train_rows,
        min_train_rows=4,
        seed=r,
        objective="dpo",
        init_from="parent",
        dpo_beta=args.dpo_beta,
    )
    t0 = time.monotonic()
    try:
        dpo = train_candidate(
            mix, r, settings, reg, work / "dpo" / "models", log=log, pairs=pairs, start_from=sft["model_id"]
        )
    except SynthConfigError as e:  # too few pairs this round: the supervised candidate is gated alone
        log(f"[dpo] round {r}: no preference stage ({e})")
        return sft, {"pairs": pairs.height, "dpo": None, "sft_model": sft["model_id"]}
    reg.decide(sft["model_id"], "rejected", f"the dpo arm's supervised stage; {dpo['model_id']} was trained from it")
    dpo_scores = scores_for(reg.get(dpo["model_id"]), items, reg, log)
    paired = paired_difference(dpo_scores, sft_scores)
    log(
        f"[dpo] round {r}: {pairs.height} pairs; DPO - SFT held-out accuracy {paired['diff']:+.3f} "
        f"[{paired['low']:+.3f}, {paired['high']:+.3f}] on {paired['n']} items, p={paired['p']:.3f}"
    )
    return dpo, {
        "pairs": pairs.height,
        "dpo_train_pairs": dpo["train_rows"],
        "dpo_wall_s": time.monotonic() - t0,
        "sft_model": sft["model_id"],
        "sft_rates": pass_rates(sft_scores).to_dicts(),
        "dpo_vs_sft": paired,
    }


def answer_cell(res: dict) -> str:
    """Per family: the held-out answers' entropy / the references' (bits), the trivial-baseline
    share / the references' share of that answer, and ANSWER_COLLAPSE."""
    return "<br>".join(
        f"{f['family']} {f['entropy']:.2f}/{f['reference_entropy']:.2f} bits, trivial "
        f"{f['trivial_share']:.2f}/{f['reference_trivial_share']:.2f}: "
        + (f"**{f['status'].upper()}**" if f["status"] in ("fail", "warn") else f["status"])
        for f in res.get("answer_drift", [])
    )


def report(results: list[dict]) -> str:
    lines = [
        "| arm | round | model | promoted | family/variant: rate [95% CI] (parent; most common / last shot) "
        "| verified/CPU-min | distinct answers/task | answer entropy "
        "| drift: held-out pass rate vs previous round "
        "| drift: held-out answers per family (entropy / references' bits, trivial share / references'; "
        "ANSWER_COLLAPSE) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        cmp_ = {f"{c['family']}/{c['variant']}": c for c in res.get("comparison", [])}
        cells = []
        for rate in res["rates"]:
            key = f"{rate['family']}/{rate['variant']}"
            c = cmp_.get(key)
            extra = (
                (
                    f" (parent {c['parent_rate']:.2f}; {c['most_common_rate']:.2f}/{c['last_shot_rate']:.2f}"
                    f"{', GAIN' if c['significant_gain'] else ''}{', ' + c['flag'] if c['flag'] else ''})"
                )
                if c
                else ""
            )
            cells.append(f"{key} {rate['rate']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}]{extra}")
        lines.append(
            f"| {res['arm']} | {res['round']} | {res['model']} | {res.get('promoted', '-')} | "
            + "<br>".join(cells)
            + f" | {res.get('yield_per_cpu_min', 0):.1f} | {res.get('distinct_answers_per_task', 0):.3f} | "
            f"{res.get('answer_entropy', 0):.2f} | {res.get('drift_status', '-')} {res.get('drift_note', '')} | "
            f"{answer_cell(res)} | {res.get('round_wall_s', 0):.0f} |"
        )
    flagged = [(res, f) for res in results for f in res.get("answer_drift", []) if f["status"] in ("fail", "warn")]
    if flagged:
        lines += ["", "ANSWER_COLLAPSE evidence (the drift report's note):"]
        lines += [
            f"- {res['arm']} round {res['round']}, {f['family']}: {f['status']}: {f['note']}" for res, f in flagged
        ]
    dpo = [res for res in results if "dpo_vs_sft" in res]
    if dpo:
        lines += [
            "",
            "| round | pairs (trained on) | supervised model | DPO model | DPO - supervised held-out accuracy "
            "[95% CI] | items only DPO / only supervised got right | McNemar p |",
            "|---|---|---|---|---|---|---|",
        ]
        for res in dpo:
            d = res["dpo_vs_sft"]
            lines.append(
                f"| {res['round']} | {res['pairs']} ({res['dpo_train_pairs']}) | {res['sft_model']} | "
                f"{res['model']} | {d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (n={d['n']}) | "
                f"{d['only_a']} / {d['only_b']} | {d['p']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--families", default="letter_counting,gcd,chain_sum,basic_arithmetic")
    ap.add_argument("--tasks-per-family", type=int, default=30)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--heldout", type=int, default=50, help="held-out items per family and variant")
    ap.add_argument("--human-rows", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-train-rows", type=int, default=300)
    ap.add_argument("--arms", default="default,naive,dpo")
    ap.add_argument("--dpo-beta", type=float, default=0.1)
    ap.add_argument("--out", default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    families = args.families.split(",")
    started = time.monotonic()

    def log(m: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {m}", flush=True)

    tasks = reasoning_gym_tasks(families, args.tasks_per_family, 42)
    items = heldout_items(HeldoutSettings(families=families, items_per_family=args.heldout), PromptSettings())
    work = Path(tempfile.mkdtemp(prefix="self_improvement_"))
    results = []
    for arm in args.arms.split(","):
        results += run_arm(arm, args, tasks, items, work, log)
        print(report([r for r in results if r["arm"] == arm]), flush=True)
    print("\n" + report(results))
    print(f"\ntotal wall time {time.monotonic() - started:.0f}s; work dir {work}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
