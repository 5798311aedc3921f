"""The promotion gate: a candidate replaces its parent only when it is not worse anywhere.

Paired on the same held-out items, per family and variant, with an exact McNemar test
(alpha 0.05 by default). A candidate is promoted only when:

* no family's held-out score is significantly lower than the parent's (REGRESSION);
* the macro-average over families of the held-out variant is not lower (MACRO_LOWER);
* no shifted variant (harder, rephrased) is significantly lower (SHIFT_REGRESSION);
* its answers did not collapse onto fewer values (DIVERSITY_LOSS): per family, the entropy of
  the answers it gives falls below ``diversity_floor`` times a reference: the smaller of the
  parent's and the reference answers' entropy (a parent that writes a different wrong answer to
  every item has no more diversity than the task has), or the reference answers' entropy alone
  when the parent itself copies (under ``min_parent_entropy`` bits). Judging a copying parent's
  candidate against the parent would wave the collapse through exactly when it has happened:
  the held-out scores of the base model were the counts of items whose answer was the last
  example's. A family whose reference answers carry under ``min_parent_entropy`` bits has no
  diversity to lose.

A gain is counted (``significant_gain``) only when the candidate beats both the parent and the
stronger trivial baseline (most common answer, last shot's answer), each significantly. With
``require_gain`` (the default) a candidate must also show such a gain in at least one family
(NO_GAIN otherwise): "not worse" alone let a model trained on its own unverified samples be
promoted for drifting toward the most common answer (bench/self_improvement.py, naive arm), and
the mission is to promote a model only when it is better.

A row's gain claim is a conjunction (better than the parent AND better than the stronger
baseline), so it is tested by p_row = max(p_vs_parent, p_vs_baseline). By the intersection-union
principle (Berger 1982) rejecting its null, the union "not better than one or not better than the
other", only when both tests reject at alpha is itself a level-alpha test: the conjunction needs no
adjustment. Many (family, variant) rows make many chances of a spurious gain, so the rows' p_row
(the macro row excluded) are corrected (``correction``, Holm's step-down by default) into
``p_gain_adj``, in two families fixed before the candidate is trained:

* the primary family, the ``heldout`` rows: the family-and-level pairs the capability frontier
  chose to train at. Only these decide NO_GAIN, so the chance that a spurious gain promotes a
  candidate stays under alpha;
* the secondary family, the shifted variants (harder, rephrased): reported gains, corrected among
  themselves; they never promote a candidate.

Correcting the promotion decision for the shifted rows as well took the second default run's
clearest gain (basic_arithmetic@1, p 0.007) to 0.066 over nine rows, although no shifted row can
promote (2026-12-07, bench/RESULTS.md). A row is a ``significant_gain`` when it beats both and
``p_gain_adj`` is under alpha. The regression rules
(REGRESSION, SHIFT_REGRESSION) stay uncorrected: a correction would make them fire less often, and
refusing a candidate on an uncorrected test is the conservative side. ``power_10pt`` is each row's
power to find a 10-point net gain over the parent at the level the correction leaves one row
(alpha / m under Holm, m the rows of its family: Holm's first step, a lower bound for the
procedure; alpha without it; the baseline test must pass too), from the observed discordant rate
between candidate and parent (at least ``POWER_DISCORDANT_FLOOR``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal

import polars as pl
from pydantic import Field

from synth_assets.core.settings import Settings
from synth_assets.core.stats import holm, mcnemar_p, mcnemar_power, wilson

MACRO = "_macro_"
POWER_GAIN = 0.10  # the net gain power_10pt is about
# The discordant rate power_10pt assumes at least: a 10-point gain needs 10% of the items
# discordant, and a lower observed rate (a candidate that nearly copies its parent, or none at
# all) says little about the rate a real gain would bring; a lower rate would report more power.
POWER_DISCORDANT_FLOOR = 0.2


class GateSettings(Settings):
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the paired tests")
    diversity_floor: float = Field(
        default=0.5, gt=0, le=1, description="answer entropy below this share of the parent's is DIVERSITY_LOSS"
    )
    min_parent_entropy: float = Field(
        default=0.5,
        ge=0,
        description="bits; a parent under it copies (its candidate is judged against the reference answers), "
        "a family whose reference answers are under it has no diversity to lose",
    )
    require_gain: bool = Field(
        default=True,
        description="promote only with a significant gain over the parent and "
        "the trivial baselines in at least one family (NO_GAIN otherwise)",
    )
    evaluation_chunks: int = Field(
        default=8,
        ge=1,
        description="the candidate is evaluated in this many parts and stops once the gate's decision is "
        "settled (every remaining answer right, or every one wrong, gives the same decision); 1 = every item",
    )
    correction: Literal["holm", "none"] = Field(
        default="holm",
        description="multiple-comparison correction of the gain tests: holm (step-down, each row's p "
        "the larger of its two gain p-values, within two families: the held-out rows, which decide "
        "NO_GAIN, and the shifted variants, which are reported) or none; the regression tests are "
        "never corrected (the conservative side)",
    )


def entropy(values: list[str]) -> float:
    n = len(values)
    return -sum(c / n * math.log2(c / n) for c in Counter(values).values()) if n else 0.0


def compare(
    candidate: pl.DataFrame, parent: pl.DataFrame, baselines: pl.DataFrame, settings: GateSettings
) -> pl.DataFrame:
    """One row per (family, variant) plus a macro row; ``flag`` names what blocks promotion."""
    cand = candidate.select(
        "item_id", "family", "variant", pl.col("correct").alias("c"), pl.col("answer_given").alias("ca")
    )
    par = parent.select("item_id", pl.col("correct").alias("p"), pl.col("answer_given").alias("pa"))
    joined = cand.join(par, on="item_id", how="inner").join(
        baselines.select("item_id", "answer", "most_common", "last_shot", "as_given"), on="item_id", how="inner"
    )
    rows = []
    for (family, variant), g in joined.group_by(["family", "variant"], maintain_order=True):
        c, p = g["c"].to_list(), g["p"].to_list()
        n, kc, kp = len(c), sum(c), sum(p)
        mc, ls, ag = g["most_common"].to_list(), g["last_shot"].to_list(), g["as_given"].to_list()
        best_base = max((mc, ls, ag), key=sum)  # the strongest trivial predictor on these items
        p_parent, p_base = mcnemar_p(c, p), mcnemar_p(c, best_base)
        worse = kc < kp and p_parent < settings.alpha  # uncorrected: the conservative side
        ec, ep = entropy(g["ca"].to_list()), entropy(g["pa"].to_list())
        truth = entropy(g["answer"].to_list())
        reference = min(ep, truth) if ep >= settings.min_parent_entropy else truth
        flag = ""
        if worse:
            flag = "REGRESSION" if variant == "heldout" else "SHIFT_REGRESSION"
        elif (
            variant == "heldout"
            and reference >= settings.min_parent_entropy
            and ec < settings.diversity_floor * reference
        ):
            flag = "DIVERSITY_LOSS"
        lo, hi = wilson(kc, n)
        plo, phi = wilson(kp, n)
        rows.append(
            {
                "family": family,
                "variant": variant,
                "n": n,
                "candidate_correct": kc,
                "parent_correct": kp,
                "candidate_rate": kc / n,
                "candidate_low": lo,
                "candidate_high": hi,
                "parent_rate": kp / n,
                "parent_low": plo,
                "parent_high": phi,
                "most_common_rate": sum(mc) / n,
                "last_shot_rate": sum(ls) / n,
                "as_given_rate": sum(ag) / n,
                "p_vs_parent": p_parent,
                "p_vs_baseline": p_base,
                "candidate_answer_entropy": ec,
                "parent_answer_entropy": ep,
                "significant_gain": False,
                "significantly_worse": worse,
                "flag": flag,
                "discordant_rate": sum(x != y for x, y in zip(c, p, strict=True)) / n,
                "beats_both": kc > kp and kc > sum(best_base),
            }
        )
    _correct_gains(rows, settings)
    out = pl.DataFrame(rows, schema=EVAL_SCHEMA) if rows else pl.DataFrame(schema=EVAL_SCHEMA)
    held = out.filter(pl.col("variant") == "heldout")
    if held.height:
        cm, pm = float(held["candidate_rate"].mean()), float(held["parent_rate"].mean())
        gained = bool(held["significant_gain"].any())
        flag = "MACRO_LOWER" if cm < pm else "NO_GAIN" if settings.require_gain and not gained else ""
        macro = dict.fromkeys(EVAL_SCHEMA) | {
            "family": MACRO,
            "variant": "heldout",
            "n": int(held["n"].sum()),
            "candidate_rate": cm,
            "parent_rate": pm,
            "significant_gain": gained,
            "significantly_worse": cm < pm,
            "flag": flag,
        }
        out = pl.concat([out, pl.DataFrame([macro], schema=EVAL_SCHEMA)])
    return out


PRIMARY_VARIANT = "heldout"  # the rows whose gains decide NO_GAIN (the primary family)


def _correct_gains(rows: list[dict], settings: GateSettings) -> None:
    """Fill each row's ``p_gain_adj``, ``significant_gain`` and ``power_10pt``. A row's gain p is
    max(p_vs_parent, p_vs_baseline), the intersection-union test of "better than both"; the rows of
    each family (primary: ``heldout``; secondary: the shifted variants) are Holm-adjusted together
    (``correction="holm"``) or left as they are (``"none"``). The power is at the level a single
    row of its family gets: alpha / m (Holm's first step) or alpha."""
    for primary in (True, False):
        family = [r for r in rows if (r["variant"] == PRIMARY_VARIANT) == primary]
        raw = [max(r["p_vs_parent"], r["p_vs_baseline"]) for r in family]
        adjusted = holm(raw) if settings.correction == "holm" else raw
        level = settings.alpha / len(raw) if settings.correction == "holm" and raw else settings.alpha
        for r, p_gain in zip(family, adjusted, strict=True):
            r["p_gain_adj"] = p_gain
            r["significant_gain"] = r.pop("beats_both") and p_gain < settings.alpha
            discordant = max(r.pop("discordant_rate"), POWER_DISCORDANT_FLOOR)
            r["power_10pt"] = mcnemar_power(r["n"], discordant, POWER_GAIN, level)


# the flags more right answers can only clear: a refusal by one of these in the best case stands
MONOTONE_FLAGS = ("REGRESSION", "SHIFT_REGRESSION", "MACRO_LOWER", "NO_GAIN")


def completed(candidate: pl.DataFrame, items: pl.DataFrame, right: bool) -> pl.DataFrame:
    """The candidate's answers on every item: its own where evaluated, and on the rest every
    answer right (the reference answer) or every answer wrong (its most common answer of that
    family and variant so far: the lowest answer entropy the rest could give)."""
    rest = items.join(candidate.select("item_id"), on="item_id", how="anti")
    if rest.height == 0:
        return candidate
    if right:
        fill = rest.select(
            "item_id", "family", "variant", pl.lit(True).alias("correct"), pl.col("answer").alias("answer_given")
        )
    else:
        modes = candidate.group_by("family", "variant").agg(pl.col("answer_given").mode().sort().first().alias("m"))
        fill = rest.join(modes, on=["family", "variant"], how="left").select(
            "item_id",
            "family",
            "variant",
            pl.lit(False).alias("correct"),
            pl.col("m").fill_null("").alias("answer_given"),
        )
    cols = ["item_id", "family", "variant", "correct", "answer_given"]
    return pl.concat([candidate.select(cols), fill.select(cols)], how="vertical_relaxed")


def settled(
    candidate: pl.DataFrame, parent: pl.DataFrame, items: pl.DataFrame, baselines: pl.DataFrame, settings: GateSettings
) -> tuple[bool, list[str]] | None:
    """The gate's decision on every item, known from the candidate's answers on some of them, or
    None while the remaining items could still change it. The decision can only move toward
    promotion as answers turn right, except the diversity rule, whose worst case is every
    remaining answer the same: so promotion is settled when the worst completion (every remaining
    answer wrong and alike) promotes, and refusal when the best one (every remaining answer
    right) is refused by a flag more right answers cannot clear. The decision is then exactly
    the one evaluating every item would give: stopping early costs no error rate."""
    worst = decision(compare(completed(candidate, items, right=False), parent, baselines, settings))
    if worst[0]:
        return worst
    ok, reasons = decision(compare(completed(candidate, items, right=True), parent, baselines, settings))
    if not ok and any(r.startswith(MONOTONE_FLAGS) for r in reasons):
        # the rates in these reasons are the best case, not what was seen: say so, or a refused
        # candidate reads as better than its parent ("0.180 vs parent 0.070")
        bound = (
            f" at best: settled after {candidate.height} of {items.height} held-out items, "
            f"the {items.height - candidate.height} not evaluated counted right"
        )
        return ok, [r + bound for r in reasons if r.startswith(MONOTONE_FLAGS)]
    return None


def decision(comparison: pl.DataFrame) -> tuple[bool, list[str]]:
    """(promote?, reasons): every flagged row is a reason."""
    if comparison.height == 0:
        return False, ["no held-out item was evaluated"]
    flagged = comparison.filter(pl.col("flag") != "")
    reasons = [
        f"{r['flag']}: {r['family']}/{r['variant']} {r['candidate_rate']:.3f} vs parent {r['parent_rate']:.3f}"
        + (f" (McNemar p={r['p_vs_parent']:.4f})" if r["p_vs_parent"] is not None else "")
        for r in flagged.iter_rows(named=True)
    ]
    return not reasons, reasons


EVAL_SCHEMA: dict[str, pl.DataType] = {
    "family": pl.String,
    "variant": pl.String,
    "n": pl.Int64,
    "candidate_correct": pl.Int64,
    "parent_correct": pl.Int64,
    "candidate_rate": pl.Float64,
    "candidate_low": pl.Float64,
    "candidate_high": pl.Float64,
    "parent_rate": pl.Float64,
    "parent_low": pl.Float64,
    "parent_high": pl.Float64,
    "most_common_rate": pl.Float64,
    "last_shot_rate": pl.Float64,
    "as_given_rate": pl.Float64,  # the question's own list, as given (families where that is a strategy)
    "p_vs_parent": pl.Float64,
    "p_vs_baseline": pl.Float64,
    "candidate_answer_entropy": pl.Float64,
    "parent_answer_entropy": pl.Float64,
    "significant_gain": pl.Boolean,
    "significantly_worse": pl.Boolean,
    "flag": pl.String,
    # the row's gain p, max(p_vs_parent, p_vs_baseline) (intersection-union), after the
    # correction across the rows (GateSettings.correction; itself without one)
    "p_gain_adj": pl.Float64,
    # power to find a 10-point net gain over the parent (core/stats.py mcnemar_power)
    "power_10pt": pl.Float64,
}
