"""How far the AI judge can be trusted, measured where the truth is known.

A judge that agrees with programs where programs can decide earns some trust where they
cannot; one that does not must not decide anything alone. On rows whose verdict a program gave
(reasoning-gym scorers, sandboxed tests, math-verify) and on human-written rows (correct by
construction) the judge is scored and compared:

- agreement with the verifier: accuracy and Cohen's kappa (chance-corrected), per family;
- length bias: Spearman's rho between judge score and response length among rows of the same
  correctness (a judge that rewards length at equal correctness is biased);
- position bias: a correct and an incorrect response of one task shown as A/B in both orders;
  a preference that follows the order, not the content, flips;
- self-preference: the judge's scores of its own generator's correct rows against another
  writer's equally correct rows (another generator's, else human-written).

Every figure comes with its sample size and a 95% interval (Wilson for proportions, bootstrap
for kappa, Fisher's z for rho). ``trusted`` is True only while every threshold clears.

Rows are scored in shuffled chunks, and scoring stops once distrust is settled (agreement could
not clear ``min_accuracy`` even if every row left agreed): trust needs the whole sample, distrust
does not, and the embedded 270M judge is never trusted, so a first run spends its time elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from pydantic import Field
from scipy.stats import spearmanr

from synth_assets.core.settings import Settings
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.sources import conform
from synth_assets.core.verify.ai_feedback import Judge
from synth_assets.core.verify.verification import response_text

CALIBRATION_SCHEMA: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "row_kind": pl.String,  # verified | human
    "candidate_id": pl.String,
    "task_id": pl.String,
    "family": pl.String,
    "writer": pl.String,  # the model that wrote the response, or "human"
    "truth": pl.Boolean,  # the program's verdict (pass), or True for human rows
    "judge_score": pl.Float64,  # 0-1; null when the reply held no score
    "judge_pass": pl.Boolean,
    "length": pl.Int64,  # characters of the response
    "trusted": pl.Boolean,  # the calibration's conclusion, the same on every row of a generation
}

PAIR_CHECK_SCHEMA: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "task_id": pl.String,
    "family": pl.String,
    "correct_candidate_id": pl.String,
    "wrong_candidate_id": pl.String,
    "prefers_correct_first": pl.Boolean,  # correct shown as A
    "prefers_correct_second": pl.Boolean,  # correct shown as B
    "flipped": pl.Boolean,  # the preference followed the position; null when a reply named neither
}


class CalibrationSettings(Settings):
    """How many rows the judge is calibrated on, and what it must clear to be trusted."""

    rows_per_cell: int = Field(default=12, ge=1, description="rows per family x (pass, fail) scored by the judge")
    human_rows: int = Field(default=12, ge=0, description="human-written rows scored (correct by construction)")
    pairs: int = Field(default=24, ge=0, description="correct/incorrect pairs shown in both orders (position bias)")
    threshold: float = Field(default=0.6, ge=0, le=1, description="judge score at which the judge says 'pass'")
    min_accuracy: float = Field(default=0.7, ge=0, le=1, description="lowest agreement with the verifiers to trust it")
    min_kappa: float = Field(default=0.4, ge=-1, le=1, description="lowest Cohen's kappa (0 = chance) to trust it")
    max_flip_rate: float = Field(
        default=0.2, ge=0, le=1, description="highest share of pairs whose preference follows position"
    )
    max_length_rho: float = Field(
        default=0.3, ge=0, le=1, description="highest |Spearman rho| of score vs length at equal correctness"
    )
    max_self_preference: float = Field(
        default=0.1, ge=0, le=1, description="highest mean score lead of its own correct rows over another writer's"
    )
    seed: int = Field(default=0)
    stop_when_settled: bool = Field(
        default=True,
        description="stop scoring once agreement cannot reach min_accuracy whatever the rows left say "
        "(the verdict 'not trusted' is then final; position bias is not measured); false scores every row and pair",
    )


# rows scored between looks at the agreement: one wave of the batched decoder's 16 sequences
CHUNK_ROWS = 16


@dataclass
class Calibration:
    rows: pl.DataFrame
    pairs: pl.DataFrame
    summary: dict
    per_family: pl.DataFrame
    trusted: bool
    reasons: list[str] = field(default_factory=list)


def is_trusted(calibration: pl.DataFrame) -> bool:
    """A generation's stored calibration rows say whether its judge is trusted; none at all (nothing
    the judge could be checked on) means it is not."""
    return calibration.height > 0 and bool(calibration["trusted"][0])


def sample_rows(verified: pl.DataFrame, human: pl.DataFrame, settings: CalibrationSettings) -> pl.DataFrame:
    """Rows whose truth is known: programmatically verified candidates, up to ``rows_per_cell``
    per family and verdict (deterministic by seed), and human-written rows."""
    prog = verified.filter(
        pl.col("verdict").is_in(["pass", "fail"])
        & (pl.col("verifier") != "judge")
        & ~pl.col("verifier").str.starts_with("custom:")
    )
    prog = (
        prog.with_columns(pl.col("candidate_id").hash(settings.seed).alias("_h"))
        .sort("_h")
        .group_by("family", "verdict", maintain_order=True)
        .head(settings.rows_per_cell)
        .drop("_h")
    )
    rows = [
        {
            "row_kind": "verified",
            "candidate_id": r["candidate_id"],
            "task_id": r["task_id"],
            "family": r["family"],
            "writer": r["model"] or r["generator"] or "?",
            "truth": r["verdict"] == "pass",
            "prompt": r["prompt"],
            "response": response_text(r),
        }
        for r in prog.iter_rows(named=True)
    ]
    hum = human.with_columns(pl.col("ref_id").hash(settings.seed).alias("_h")).sort("_h").head(settings.human_rows)
    rows += [
        {
            "row_kind": "human",
            "candidate_id": f"h/{r['ref_id']}",
            "task_id": r["ref_id"],
            "family": r["family"],
            "writer": "human",
            "truth": True,
            "prompt": r["prompt"],
            "response": f"{r['prompt']}{r['response']}" if r["domain"] == "code" else r["response"],
        }
        for r in hum.iter_rows(named=True)
    ]
    return pl.DataFrame(
        rows,
        schema={
            "row_kind": pl.String,
            "candidate_id": pl.String,
            "task_id": pl.String,
            "family": pl.String,
            "writer": pl.String,
            "truth": pl.Boolean,
            "prompt": pl.String,
            "response": pl.String,
        },
    )


def sample_pairs(verified: pl.DataFrame, settings: CalibrationSettings) -> list[tuple[dict, dict]]:
    """(correct, incorrect) responses of one task, with different text, up to ``pairs``."""
    prog = verified.filter(pl.col("verdict").is_in(["pass", "fail"]) & (pl.col("verifier") != "judge"))
    out = []
    for (_task,), g in prog.sort("candidate_id").group_by(["task_id"], maintain_order=True):
        good = g.filter(pl.col("verdict") == "pass").to_dicts()
        bad = g.filter(pl.col("verdict") == "fail").to_dicts()
        if good and bad and (good[0]["completion"] or "").strip() != (bad[0]["completion"] or "").strip():
            out.append((good[0], bad[0]))
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(out))[: settings.pairs]
    return [out[i] for i in sorted(order)]


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two boolean labelings; 0 when chance agreement is total (one class only)."""
    if len(a) == 0:
        return float("nan")
    po = float(np.mean(a == b))
    pa, pb = float(np.mean(a)), float(np.mean(b))
    pe = pa * pb + (1 - pa) * (1 - pb)
    return 0.0 if pe >= 1.0 else (po - pe) / (1 - pe)


def kappa_interval(a: np.ndarray, b: np.ndarray, samples: int = 1000, seed: int = 0) -> tuple[float, float]:
    if len(a) < 2:
        return (-1.0, 1.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(samples, len(a)))
    ks = np.array([kappa(a[i], b[i]) for i in idx])
    return float(np.nanpercentile(ks, 2.5)), float(np.nanpercentile(ks, 97.5))


def rho_interval(rho: float, n: int) -> tuple[float, float]:
    if n < 4 or not math.isfinite(rho):
        return (-1.0, 1.0)
    z, se = math.atanh(max(-0.999999, min(0.999999, rho))), 1 / math.sqrt(n - 3)
    return math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)


def _r(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def measure(
    rows: pl.DataFrame, pairs: pl.DataFrame, own_writer: str | None, settings: CalibrationSettings
) -> tuple[dict, pl.DataFrame, list[str]]:
    """The summary, the per-family table and the reasons the judge is not trusted (empty: trusted)."""
    scored = rows.filter(pl.col("judge_score").is_not_null())
    t, j = scored["truth"].to_numpy(), scored["judge_pass"].to_numpy()
    n = len(t)
    k_acc = int((t == j).sum())
    acc_lo, acc_hi = wilson(k_acc, n)
    kap = kappa(t, j)
    kap_lo, kap_hi = kappa_interval(t, j, seed=settings.seed)
    summary: dict = {
        "rows": rows.height,
        "scored": n,
        "unscored": rows.height - n,
        "accuracy": _r(k_acc / n) if n else None,
        "accuracy_ci": [_r(acc_lo), _r(acc_hi)],
        "kappa": _r(kap),
        "kappa_ci": [_r(kap_lo), _r(kap_hi)],
    }
    # length bias: within each correctness class, then the larger |rho|
    worst = None
    for truth in (True, False):
        part = scored.filter(pl.col("truth") == truth)
        if part.height >= 4 and part["judge_score"].n_unique() > 1 and part["length"].n_unique() > 1:
            rho = float(spearmanr(part["length"].to_numpy(), part["judge_score"].to_numpy()).statistic)
            lo, hi = rho_interval(rho, part.height)
            summary[f"length_rho_{'correct' if truth else 'incorrect'}"] = {
                "rho": _r(rho),
                "ci": [_r(lo), _r(hi)],
                "n": part.height,
            }
            if worst is None or abs(rho) > abs(worst):
                worst = rho
    summary["length_rho_worst"] = _r(worst) if worst is not None else None
    # position bias, over the pairs where both replies named A or B
    answered = pairs.filter(pl.col("flipped").is_not_null())
    if answered.height:
        flips = int(answered["flipped"].sum())
        lo, hi = wilson(flips, answered.height)
        both = int((answered["prefers_correct_first"] & answered["prefers_correct_second"]).sum())
        summary |= {
            "pairs": pairs.height,
            "pairs_answered": answered.height,
            "flip_rate": _r(flips / answered.height),
            "flip_rate_ci": [_r(lo), _r(hi)],
            "prefers_correct_in_both_orders": both,
        }
    else:
        summary |= {"pairs": pairs.height, "pairs_answered": 0, "flip_rate": None, "flip_rate_ci": [None, None]}
    # self-preference: own correct rows vs another writer's correct rows
    correct = scored.filter(pl.col("truth"))
    own = correct.filter(pl.col("writer") == own_writer)["judge_score"].to_numpy() if own_writer else np.array([])
    others = correct.filter(pl.col("writer") != own_writer) if own_writer else correct.head(0)
    other_kind = "another generator" if others.filter(pl.col("writer") != "human").height else "human-written"
    others = others.filter(pl.col("writer") != "human") if other_kind == "another generator" else others
    oth = others["judge_score"].to_numpy()
    if len(own) >= 2 and len(oth) >= 2:
        lead = float(own.mean() - oth.mean())
        rng = np.random.default_rng(settings.seed)
        boot = [
            own[rng.integers(0, len(own), len(own))].mean() - oth[rng.integers(0, len(oth), len(oth))].mean()
            for _ in range(1000)
        ]
        summary["self_preference"] = {
            "lead": _r(lead),
            "ci": [_r(np.percentile(boot, 2.5)), _r(np.percentile(boot, 97.5))],
            "own_rows": len(own),
            "other_rows": len(oth),
            "other": other_kind,
        }
    else:
        summary["self_preference"] = {
            "lead": None,
            "ci": [None, None],
            "own_rows": len(own),
            "other_rows": len(oth),
            "other": other_kind,
        }
    fam = (
        scored.group_by("family")
        .agg(
            pl.len().alias("rows"),
            (pl.col("truth") == pl.col("judge_pass")).mean().alias("accuracy"),
            pl.col("truth").mean().alias("verifier_pass_rate"),
            pl.col("judge_pass").mean().alias("judge_pass_rate"),
        )
        .sort("family")
    )
    kappas = {
        f: _r(kappa(g["truth"].to_numpy(), g["judge_pass"].to_numpy())) for (f,), g in scored.group_by(["family"])
    }
    fam = fam.with_columns(
        pl.col("family").replace_strict(kappas, default=None, return_dtype=pl.Float64).alias("kappa")
    )
    reasons = []
    if n == 0:
        reasons.append("no row with a known verdict got a score from the judge")
    else:
        if acc_lo < settings.min_accuracy:
            reasons.append(
                f"agreement with the verifiers {k_acc / n:.2f} (95% CI {acc_lo:.2f} to {acc_hi:.2f}, n={n}) "
                f"is not clearly above min_accuracy {settings.min_accuracy}"
            )
        if not kap >= settings.min_kappa:
            reasons.append(
                f"Cohen's kappa {kap:.2f} (95% CI {kap_lo:.2f} to {kap_hi:.2f}) is under min_kappa {settings.min_kappa}"
            )
    if summary["flip_rate"] is not None and summary["flip_rate"] > settings.max_flip_rate:
        reasons.append(
            f"{summary['flip_rate']:.0%} of {answered.height} pairs flip with the order shown "
            f"(max_flip_rate {settings.max_flip_rate:.0%})"
        )
    if worst is not None and abs(worst) > settings.max_length_rho:
        reasons.append(
            f"score follows length at equal correctness (Spearman rho {worst:.2f}, "
            f"max_length_rho {settings.max_length_rho})"
        )
    lead = summary["self_preference"]["lead"]
    if lead is not None and lead > settings.max_self_preference:
        reasons.append(
            f"it scores its own generator's correct rows {lead:.2f} higher than {other_kind} correct rows "
            f"(max_self_preference {settings.max_self_preference})"
        )
    return summary, fam, reasons


def distrust_settled(agree: int, scored: int, remaining: int, min_accuracy: float) -> bool:
    """Whether the judge cannot be trusted whatever the rows not yet scored say: even if each of
    them got a score agreeing with its verifier, agreement's 95% lower bound would stay under
    ``min_accuracy``. Deterministic curtailment: the decision is the one the whole sample would
    give, so stopping adds no error; it only leaves the intervals wider."""
    return wilson(agree + remaining, scored + remaining)[0] < min_accuracy


def score_rows(judge: Judge, sample: pl.DataFrame, settings: CalibrationSettings) -> tuple[pl.DataFrame, list]:
    """The judge's scores of ``sample`` in a shuffled order (so every chunk mixes families and
    verdicts), chunk by chunk, stopping once distrust is settled when ``stop_when_settled``.
    Returns the rows asked (in the order asked) and their scores."""
    sample = sample.sample(fraction=1.0, shuffle=True, seed=settings.seed)
    scores: list[float | None] = []
    agree = scored = 0
    for start in range(0, sample.height, CHUNK_ROWS):
        chunk = sample.slice(start, CHUNK_ROWS)
        got = [r.score for r in judge.score(list(zip(chunk["prompt"].to_list(), chunk["response"].to_list())))]
        scores += got
        for truth, score in zip(chunk["truth"].to_list(), got, strict=True):
            if score is not None:
                scored += 1
                agree += truth == (score >= settings.threshold)
        if settings.stop_when_settled and distrust_settled(
            agree, scored, sample.height - len(scores), settings.min_accuracy
        ):
            break
    return sample.head(len(scores)), scores


def calibrate(
    judge: Judge, verified: pl.DataFrame, human: pl.DataFrame, generation: int, settings: CalibrationSettings
) -> Calibration:
    full = sample_rows(verified, human, settings)
    sample, scores = score_rows(judge, full, settings)
    stopped = sample.height < full.height
    rows = conform(
        sample.with_columns(
            pl.lit(generation, dtype=pl.Int64).alias("generation"),
            pl.Series("judge_score", scores, dtype=pl.Float64),
            pl.Series("judge_pass", [None if s is None else s >= settings.threshold for s in scores], dtype=pl.Boolean),
            pl.col("response").str.len_chars().cast(pl.Int64).alias("length"),
        ),
        CALIBRATION_SCHEMA,
    )
    pairs = [] if stopped else sample_pairs(verified, settings)
    shown = []
    for good, bad in pairs:
        g, b = response_text(good), response_text(bad)
        shown += [(good["prompt"], g, b), (good["prompt"], b, g)]
    prefs = judge.prefer(shown) if shown else []
    pair_rows = []
    for i, (good, bad) in enumerate(pairs):
        first, second = prefs[2 * i], prefs[2 * i + 1]  # "A" or "B" or None
        pair_rows.append(
            {
                "generation": generation,
                "task_id": good["task_id"],
                "family": good["family"],
                "correct_candidate_id": good["candidate_id"],
                "wrong_candidate_id": bad["candidate_id"],
                "prefers_correct_first": first == "A",
                "prefers_correct_second": second == "B",
                "flipped": None if first is None or second is None else first == second,
            }
        )
    pair_df = conform(pair_rows, PAIR_CHECK_SCHEMA)
    own = judge.generator.model
    summary, fam, reasons = measure(rows, pair_df, own, settings)
    rows = rows.with_columns(pl.lit(not reasons, dtype=pl.Boolean).alias("trusted"))
    if stopped:
        summary["stopped_early"] = (
            f"after {sample.height} of {full.height} rows: agreement could not reach min_accuracy "
            f"{settings.min_accuracy} whatever the other {full.height - sample.height} said; position bias not measured"
        )
    summary |= {
        "judge": judge.name,
        "thresholds": settings.model_dump(
            exclude={"rows_per_cell", "human_rows", "pairs", "seed", "stop_when_settled"}
        ),
    }
    return Calibration(rows, pair_df, summary, fam, not reasons, reasons)
