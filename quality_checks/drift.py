"""The drift report: this generation's synthetic data against the previous generation, the
first synthetic generation (G1) and the human reference, each metric with a status.

Rules follow the model-collapse literature as summarised in shared/research/drift-metrics.md
and were calibrated on the collapse scenario in ``tests/collapse_sim.py`` (figures in
the README):

* thresholds are *relative* changes in the direction that signals collapse, against G1 and
  against the previous generation (the worse of the two counts);
* a noise floor is measured between two halves of the human data at the same token budget;
  a change must also exceed twice that floor to count;
* the first generation is the baseline: its distance from human data is a FIDELITY_GAP
  notice, never diversity loss;
* DIVERSITY_LOSS fires when two or more core signals fail together, or one is severe.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import polars as pl
from pydantic import Field, field_validator

from quality_checks.metrics import lexical_profile, n_tokens, rare_types, take_budget
from synth_assets.core.markdown import markdown_table
from synth_assets.core.settings import Settings


@dataclass(frozen=True)
class Rule:
    direction: int  # +1: higher is healthier (a drop warns); -1: lower is healthier
    warn: float  # relative change in the collapse direction
    fail: float
    critical: float | None = None  # one signal this bad is enough for DIVERSITY_LOSS
    core: bool = False  # counts towards the composite alert


DEFAULT_RULES: dict[str, Rule] = {
    "distinct_2": Rule(+1, 0.10, 0.15, 0.30, core=True),
    "rare_type_coverage": Rule(+1, 0.10, 0.15, core=True),
    "compression_ratio": Rule(-1, 0.03, 0.05, 0.15, core=True),
    "js_distance_to_human": Rule(-1, 0.05, 0.10, core=True),
    "distinct_1": Rule(+1, 0.10, 0.20),
    "distinct_3": Rule(+1, 0.10, 0.20),
    "vocabulary_size": Rule(+1, 0.10, 0.20),
    "hapax_ratio": Rule(+1, 0.10, 0.20),
    "opening_concentration": Rule(-1, 0.15, 0.30),
    "near_duplicate_rate": Rule(-1, 0.50, 1.00),  # x1.5 warns, x2 fails (plus an absolute cut below)
}
INFO_METRICS = ("mean_length_tokens", "documents", "tokens_measured", "length_ks_vs_human")
NEAR_DUP_ABSOLUTE_FAIL = 0.05

REPORT_SCHEMA: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "corpus": pl.String,  # accepted (synthetic rows of the mix) | generated (every raw completion) | eval
    "metric": pl.String,
    "current": pl.Float64,
    "previous": pl.Float64,
    "first": pl.Float64,
    "human": pl.Float64,
    "change_vs_previous": pl.Float64,
    "change_vs_first": pl.Float64,
    "noise_floor": pl.Float64,  # relative difference between two halves of the human data
    "warn_threshold": pl.Float64,
    "fail_threshold": pl.Float64,
    "status": pl.String,  # ok | warn | fail | baseline | insufficient_data | info | alert | notice
    "note": pl.String,
    "budget_tokens": pl.Int64,
    "previous_generation": pl.Int64,
    "first_generation": pl.Int64,
}


class DriftSettings(Settings):
    """How generations are compared: the token budget, the noise floor's weight and, per metric,
    the [warn, fail] relative changes (calibrated defaults in DEFAULT_RULES)."""

    token_budget: int = Field(default=40_000, ge=10, description="tokens compared per corpus (all equal)")
    min_tokens: int = Field(default=100, ge=1, description="below this many comparable tokens: insufficient_data")
    noise_multiplier: float = Field(default=2.0, ge=0,
                                    description="a change must exceed this many human-half noise floors")
    thresholds: dict[str, list[float]] = Field(
        default={}, description="per metric [warn, fail] relative changes, overriding the calibrated defaults")
    fidelity_distinct2_ratio: float = Field(default=0.8, gt=0, description="G1/human distinct-2 under this: a gap")
    fidelity_rare_ratio: float = Field(default=0.85, gt=0, description="G1/human rare coverage under this: a gap")

    @field_validator("thresholds")
    @classmethod
    def _known_pairs(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for metric, pair in v.items():
            if metric not in DEFAULT_RULES:
                raise ValueError(f"thresholds: unknown metric {metric!r}; one of {', '.join(DEFAULT_RULES)}")
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                raise ValueError(f"thresholds.{metric}: give [warn, fail] with 0 < warn <= fail")
        return v

    @property
    def rules(self) -> dict[str, Rule]:
        return {m: replace(r, warn=self.thresholds[m][0], fail=self.thresholds[m][1]) if m in self.thresholds else r
                for m, r in DEFAULT_RULES.items()}


def _rel(cur: float | None, ref: float | None) -> float | None:
    if cur is None or ref is None or math.isnan(ref) or math.isnan(cur):
        return None
    if ref == 0:
        return 0.0 if cur == 0 else None
    return (cur - ref) / abs(ref)


def human_halves(human: list[str]) -> tuple[list[str], list[str]]:
    a, b = [], []
    for t in human:
        (a if int(hashlib.sha1(t.encode()).hexdigest()[:8], 16) % 2 == 0 else b).append(t)
    return a, b


def texts_by_generation(mix: pl.DataFrame) -> tuple[dict[int, list[str]], list[str]]:
    synth = mix.filter(pl.col("source") == "synthetic")
    by_gen: dict[int, list[str]] = {}
    for g, resp in zip(synth["origin_generation"].to_list(), synth["response"].to_list()):
        by_gen.setdefault(int(g), []).append(resp or "")
    human = mix.filter(pl.col("source") == "human")["response"].fill_null("").to_list()
    return by_gen, human


def generated_by_generation(candidates: pl.DataFrame) -> dict[int, list[str]]:
    by_gen: dict[int, list[str]] = {}
    for g, text in zip(candidates["generation"].to_list(), candidates["completion"].to_list()):
        by_gen.setdefault(int(g), []).append(text or "")
    return by_gen


def corpus_report(
    corpus: str, by_gen: dict[int, list[str]], human: list[str], generation: int, settings: DriftSettings
) -> pl.DataFrame:
    """Every metric of one corpus for ``generation``, plus the composite rows."""
    current = by_gen.get(generation, [])
    earlier = sorted(g for g in by_gen if g < generation and by_gen[g])
    prev_g = earlier[-1] if earlier else None
    first_g = earlier[0] if earlier else (generation if current else None)
    half_a, half_b = human_halves(human)
    corpora = {"current": current, "human": human, "half_a": half_a, "half_b": half_b}
    if prev_g is not None:
        corpora["previous"] = by_gen[prev_g]
    if first_g is not None and first_g != generation:
        corpora["first"] = by_gen[first_g]
    sizes = [n_tokens(take_budget(t, settings.token_budget)) for t in corpora.values() if t]
    budget = min([settings.token_budget, *sizes]) if sizes and all(corpora[k] for k in ("current", "human")) else 0
    prof: dict[str, dict[str, float] | None] = {}
    if budget:
        rare = rare_types(take_budget(human, budget))
        for k, texts in corpora.items():
            if not texts:
                prof[k] = None
            elif k in ("half_a", "half_b"):  # the noise floor: one human half against the other
                prof[k] = lexical_profile(texts, budget)
            else:
                prof[k] = lexical_profile(texts, budget, reference=human, rare=rare)
    enough = budget >= settings.min_tokens and bool(current)
    rows, fails, severe = [], [], []
    for metric in [*settings.rules, *INFO_METRICS]:
        rule = settings.rules.get(metric)
        val = {k: (p.get(metric) if p else None) for k, p in prof.items()}
        cur = val.get("current")
        d_prev, d_first = _rel(cur, val.get("previous")), _rel(cur, val.get("first"))
        noise = None  # the reference-based metrics have no half-vs-half analogue here
        if val.get("half_a") is not None and val.get("half_b") is not None:
            noise = abs(_rel(val["half_a"], val["half_b"]) or 0.0)
        status, note = "info", ""
        warn_t = fail_t = None
        if rule:
            warn_t = max(rule.warn, settings.noise_multiplier * (noise or 0.0))
            fail_t = max(rule.fail, warn_t)
            if not enough:
                status = "insufficient_data"
                note = f"only {budget} comparable tokens (need {settings.min_tokens})"
            elif val.get("previous") is None and val.get("first") is None:
                status, note = "baseline", "first synthetic generation: the reference for later ones"
            else:
                # a change from 0 has no relative size: it counts as none (absolute cuts still apply)
                worst = max([-rule.direction * d for d in (d_prev, d_first) if d is not None], default=0.0)
                status = "fail" if worst >= fail_t else "warn" if worst >= warn_t else "ok"
                if metric == "near_duplicate_rate" and cur is not None and cur > NEAR_DUP_ABSOLUTE_FAIL and (
                        worst > 0 or not max(val.get("previous") or 0, val.get("first") or 0)):
                    status = "fail"
                note = f"worst change in the collapse direction {worst:+.1%}"
                if rule.core and status == "fail":
                    fails.append(metric)
                if rule.core and rule.critical is not None and worst >= rule.critical:
                    severe.append(metric)
        rows.append({
            "generation": generation, "corpus": corpus, "metric": metric, "current": cur,
            "previous": val.get("previous"), "first": val.get("first"), "human": val.get("human"),
            "change_vs_previous": d_prev, "change_vs_first": d_first, "noise_floor": noise,
            "warn_threshold": warn_t, "fail_threshold": fail_t, "status": status, "note": note,
            "budget_tokens": budget, "previous_generation": prev_g, "first_generation": first_g,
        })
    # composite rows
    if not enough:
        loss_status, loss_note = "insufficient_data", "not enough comparable tokens"
    elif len(fails) >= 2 or severe:
        loss_status = "alert"
        loss_note = f"failing core signals: {', '.join(fails) or '-'}; severe: {', '.join(severe) or '-'}"
    else:
        loss_status, loss_note = "ok", f"failing core signals: {', '.join(fails) or 'none'}"
    rows.append(_composite(generation, corpus, "DIVERSITY_LOSS", loss_status, loss_note, budget, prev_g, first_g))
    gap_note, gap = "", False
    if enough and prof.get("current") and prof.get("human"):
        c, h = prof["current"], prof["human"]
        r2 = c["distinct_2"] / h["distinct_2"] if h["distinct_2"] else None
        rr = c["rare_type_coverage"] / h["rare_type_coverage"] if h["rare_type_coverage"] else None
        gap = (r2 is not None and r2 < settings.fidelity_distinct2_ratio) or (
            rr is not None and rr < settings.fidelity_rare_ratio)
        gap_note = (f"distinct-2 at {r2:.0%} of human, rare-type coverage at {rr:.0%} of human"
                    if r2 is not None and rr is not None else "")
    rows.append(_composite(generation, corpus, "FIDELITY_GAP", "notice" if gap else "ok" if enough else "insufficient_data",
                           gap_note + (" (informational: synthetic data always differs from human data)" if gap else ""),
                           budget, prev_g, first_g))
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)


def _composite(generation, corpus, metric, status, note, budget, prev_g, first_g) -> dict:  # noqa: ANN001
    return {"generation": generation, "corpus": corpus, "metric": metric, "current": None, "previous": None,
            "first": None, "human": None, "change_vs_previous": None, "change_vs_first": None, "noise_floor": None,
            "warn_threshold": None, "fail_threshold": None, "status": status, "note": note, "budget_tokens": budget,
            "previous_generation": prev_g, "first_generation": first_g}


def eval_rows(generation: int, scores: dict[int, tuple[int, int]], metric: str = "heldout_pass_rate") -> pl.DataFrame:
    """Degradation: the generator's pass rate on held-out tasks (HumanEval: ``heldout_pass_rate``;
    held-out reasoning items: ``heldout_reasoning_pass_rate``; their harder and rephrased
    variants: ``shifted_pass_rate``), this generation against the previous one, flagged when the
    drop exceeds sampling noise (two-proportion z-test)."""
    cur = scores.get(generation)
    earlier = sorted(g for g in scores if g < generation)
    prev_g = earlier[-1] if earlier else None
    first_g = earlier[0] if earlier else generation
    rate = lambda t: t[0] / t[1] if t and t[1] else None  # noqa: E731
    status, note, z = "baseline", "first evaluated generation", None
    if cur is None or not cur[1]:
        status, note = "insufficient_data", "no held-out evaluation this generation"
    elif prev_g is not None:
        (k1, n1), (k2, n2) = scores[prev_g], cur
        pooled = (k1 + k2) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
        drop = k1 / n1 - k2 / n2
        z = drop / se if se else 0.0
        status = "fail" if z >= 2.58 else "warn" if z >= 1.96 else "ok"
        note = f"pass rate {k2}/{n2} vs {k1}/{n1}; drop z = {z:.2f} (warn 1.96, fail 2.58)"
    return pl.DataFrame([{
        "generation": generation, "corpus": "eval", "metric": metric, "current": rate(cur),
        "previous": rate(scores.get(prev_g)) if prev_g else None, "first": rate(scores.get(first_g)),
        "human": None, "change_vs_previous": None, "change_vs_first": None, "noise_floor": None,
        "warn_threshold": 1.96, "fail_threshold": 2.58, "status": status, "note": note,
        "budget_tokens": None, "previous_generation": prev_g, "first_generation": first_g,
    }], schema=REPORT_SCHEMA)


def drift_report(
    mix: pl.DataFrame, generation: int, settings: DriftSettings,
    generated: dict[int, list[str]] | None = None,
    eval_scores: dict[str, dict[int, tuple[int, int]]] | None = None,
) -> pl.DataFrame:
    """The report for ``generation``: accepted rows, every generated completion (which holds far
    more text than the accepted rows when the generator is weak, and shows a collapsing
    generator first), and the held-out evaluation when given."""
    accepted, human = texts_by_generation(mix)
    frames = [corpus_report("accepted", accepted, human, generation, settings)]
    if generated is not None:
        frames.append(corpus_report("generated", generated, human, generation, settings))
    if eval_scores is not None:
        frames += [eval_rows(generation, scores, metric) for metric, scores in eval_scores.items()]
    return pl.concat(frames)


def report_markdown(report: pl.DataFrame) -> str:
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.4g}"

    def pct(x: float | None) -> str:
        return "" if x is None else f"{x:+.1%}"

    def status(s: str) -> str:
        return f"**{s.upper()}**" if s in ("fail", "alert") else s

    shown = report.rename({"change_vs_previous": "Δ prev", "change_vs_first": "Δ first", "noise_floor": "noise"})
    return markdown_table(
        shown, ["corpus", "metric", "current", "previous", "first", "human", "Δ prev", "Δ first", "noise", "status"],
        fmt={"current": num, "previous": num, "first": num, "human": num, "Δ prev": pct, "Δ first": pct,
             "noise": pct, "status": status})