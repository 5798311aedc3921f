"""The drift report: this generation's synthetic data against the previous generation, the
first synthetic generation (G1) and the human reference, each metric with a status.

Rules follow the model-collapse literature as summarised in shared/research/drift-metrics.md
and were calibrated on the collapse scenario in ``tests/collapse_sim.py`` (figures in
docs/monitoring.md and bench/RESULTS.md):

* thresholds are *relative* changes in the direction that signals collapse, against G1 and
  against the previous generation (the worse of the two counts);
* a noise floor is measured between two halves of the human data at the same token budget;
  a change must also exceed twice that floor to count;
* the first generation is the baseline: its distance from human data is a FIDELITY_GAP
  notice, never diversity loss;
* core metrics (distinct-2, rare-type coverage, gzip ratio, JS distance to human) fail when
  they decline by at least the rule's size *and* beyond resampling noise: a bootstrap over
  documents gives each its interval (``decline_test: relative`` restores the fixed rule);
* the composite's evidence: two or more core signals fail together, one is severe, or a
  direct diversity signal (distinct-2, rare-type coverage) fails and another core signal
  declines significantly (z >= z_fail) with it;
* DIVERSITY_LOSS is an ``alert`` when that evidence stands and the diversity is still sliding:
  a direct signal's trend over this and the last ``trend_generations`` generations loses at
  least ``slide_rate`` of its rule's size a generation (one-sided z >= z_warn), or a signal is
  severe. Evidence without a slide is a plateau, a ``warn`` ("settled N% below generation 1"):
  accumulation's decline levels off near a threshold, and an alarm that turned on and off there
  taught users to ignore it (issue 35). Hysteresis: a raised alert, or a plateau warn, holds
  while a core decline vs G1 stays at ``hysteresis`` of its rule's size (z >= z_warn); the
  state is the previous report's status (``previous_status``; the asset passes its history).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator
from scipy.sparse import csr_matrix

from synth_assets.core.markdown import markdown_table
from synth_assets.core.quality.metrics import (
    compression_ratio,
    distinct_n,
    js_distance,
    lexical_profile,
    n_tokens,
    rare_type_coverage,
    rare_types,
    take_budget,
    tokenize,
    unigram_distribution,
)
from synth_assets.core.settings import Settings


@dataclass(frozen=True)
class Rule:
    direction: int  # +1: higher is healthier (a drop warns); -1: lower is healthier
    warn: float  # relative change in the collapse direction
    fail: float
    critical: float | None = None  # one signal this bad is enough for DIVERSITY_LOSS
    core: bool = False  # counts towards the composite alert
    lead: bool = False  # a direct diversity signal: failing alone, it needs only corroboration


DEFAULT_RULES: dict[str, Rule] = {
    "distinct_2": Rule(+1, 0.10, 0.15, 0.30, core=True, lead=True),
    "rare_type_coverage": Rule(+1, 0.10, 0.15, core=True, lead=True),
    "compression_ratio": Rule(-1, 0.03, 0.05, 0.15, core=True),
    "js_distance_to_human": Rule(-1, 0.05, 0.10, core=True),
    "distinct_1": Rule(+1, 0.10, 0.20),
    "distinct_3": Rule(+1, 0.10, 0.20),
    "vocabulary_size": Rule(+1, 0.10, 0.20),
    "hapax_ratio": Rule(+1, 0.10, 0.20),
    "opening_concentration": Rule(-1, 0.15, 0.30),
    "near_duplicate_rate": Rule(-1, 0.50, 1.00),  # x1.5 warns, x2 fails (plus an absolute cut below)
}
CORE_METRICS = tuple(m for m, r in DEFAULT_RULES.items() if r.core)
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
    noise_multiplier: float = Field(
        default=2.0, ge=0, description="a change must exceed this many human-half noise floors"
    )
    thresholds: dict[str, list[float]] = Field(
        default={}, description="per metric [warn, fail] relative changes, overriding the calibrated defaults"
    )
    decline_test: Literal["bootstrap", "relative"] = Field(
        default="bootstrap",
        description="core metrics: 'bootstrap' (a decline of the rule's size beyond resampling "
        "noise) or 'relative' (the earlier rule: fixed relative thresholds and the human-halves noise floor)",
    )
    bootstrap_samples: int = Field(default=200, ge=20, description="resamples of documents behind each core interval")
    z_warn: float = Field(default=1.96, gt=0, description="core metrics: decline z (bootstrap) that warns")
    z_fail: float = Field(default=3.0, gt=0, description="core metrics: decline z (bootstrap) that fails")
    trend_generations: int = Field(
        default=3,
        ge=0,
        description="core metrics: earlier generations in the trend that tells a slide from a plateau "
        "(0: every significant decline raises DIVERSITY_LOSS, the earlier rule)",
    )
    slide_rate: float = Field(
        default=0.5,
        gt=0,
        description="a decline is still sliding while its trend loses at least this share of the rule's size "
        "a generation (z >= z_warn); a decline that has stopped is a plateau, a warn",
    )
    hysteresis: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="once raised, DIVERSITY_LOSS (or the plateau warn) holds while a core decline vs G1 stays "
        "at least this share of the rule's size (z >= z_warn)",
    )
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
        return {
            m: replace(r, warn=self.thresholds[m][0], fail=self.thresholds[m][1]) if m in self.thresholds else r
            for m, r in DEFAULT_RULES.items()
        }


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
    """The accepted corpus: every synthetic row of the mix as it is trained on (prompt and
    response), by the generation that made it, and the human rows alike.

    Why the prompt too: accepted responses are mostly short answers ("4", a name), so two default
    generations held 28 and 8 rows, too few tokens for any metric; the training example is what
    a model learns from, and which tasks' examples survive verification and curation is itself
    what narrows when a generator collapses."""

    def text(df: pl.DataFrame) -> list[str]:
        if "prompt" not in df.columns:  # a frame of responses alone (older exports, hand-made mixes)
            return df["response"].fill_null("").to_list()
        return (df["prompt"].fill_null("") + "\n\n" + df["response"].fill_null("")).to_list()

    synth = mix.filter(pl.col("source") == "synthetic")
    by_gen: dict[int, list[str]] = {}
    for g, t in zip(synth["origin_generation"].to_list(), text(synth)):
        by_gen.setdefault(int(g), []).append(t)
    return by_gen, text(mix.filter(pl.col("source") == "human"))


def generated_by_generation(candidates: pl.DataFrame) -> dict[int, list[str]]:
    by_gen: dict[int, list[str]] = {}
    for g, text in zip(candidates["generation"].to_list(), candidates["completion"].to_list()):
        by_gen.setdefault(int(g), []).append(text or "")
    return by_gen


# ------------------------------------------------------------------ resampling intervals
def _draws(n_docs: int, b: int, seed: int) -> np.ndarray:
    """(b, n_docs) multinomial counts: each row a bootstrap resample of the documents."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_docs, np.full(n_docs, 1 / n_docs), size=b).astype(np.float64)


def _incidence(docs: list[list[str]], items: Callable[[list[str]], Mapping]) -> tuple[csr_matrix, dict]:
    vocab: dict = {}
    rows, cols, vals = [], [], []
    for d, toks in enumerate(docs):
        for it, c in items(toks).items():
            rows.append(d)
            cols.append(vocab.setdefault(it, len(vocab)))
            vals.append(c)
    return csr_matrix((np.asarray(vals, float), (rows, cols)), shape=(len(docs), max(len(vocab), 1))), vocab


def bootstrap_core(
    docs: list[list[str]], rare: set[str], human_dist: dict[str, float], b: int, seed: int
) -> dict[str, np.ndarray]:
    """Each core metric recomputed on ``b`` resamples of the documents (with replacement).

    Why resample documents: a text's tokens are not independent draws, so the interval must come
    from the unit that was sampled. distinct-2, rare-type coverage and the JS distance are
    computed for all resamples at once from sparse document x n-gram counts; the gzip ratio
    needs the text itself, so it gets a quarter of the resamples."""
    if not docs:
        return {}
    w = _draws(len(docs), b, seed)
    out: dict[str, np.ndarray] = {}
    bigrams, _ = _incidence(docs, lambda t: Counter(zip(t, t[1:])))
    present = csr_matrix(w > 0) @ (bigrams > 0).astype(np.float64)
    total = w @ np.asarray(bigrams.sum(axis=1)).ravel()
    out["distinct_2"] = np.asarray((present > 0).sum(axis=1)).ravel() / np.maximum(total, 1)
    if rare:
        hits, _ = _incidence(docs, lambda t: dict.fromkeys(set(t) & rare, 1))
        out["rare_type_coverage"] = np.asarray(((csr_matrix(w > 0) @ hits) > 0).sum(axis=1)).ravel() / len(rare)
    if human_dist:
        uni, vocab = _incidence(docs, Counter)
        counts = np.asarray((csr_matrix(w) @ uni).todense())
        words = list(vocab)
        q_in = np.array([human_dist.get(x, 0.0) for x in words])
        q_out = max(0.0, 1.0 - q_in.sum())  # human mass on words this corpus never uses
        p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        m = (p + q_in) / 2

        def kl(a: np.ndarray, c: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(a > 0, a * np.log2(a / np.where(c > 0, c, 1)), 0.0).sum(axis=1)

        js = 0.5 * kl(p, m) + 0.5 * (kl(np.broadcast_to(q_in, p.shape), m) + q_out)  # q_out: log2(q/(q/2)) = 1
        out["js_distance_to_human"] = np.sqrt(np.clip(js, 0, 1))
    # gzip would compress a resample's repeated documents against each other, so its spread
    # comes from half-samples without replacement, which for a mean-like statistic have the
    # full sample's variance (sigma^2 / m * (1 - m / n) with m = n / 2)
    rng = np.random.default_rng(seed + 1)
    half = max(1, len(docs) // 2)
    out["compression_ratio"] = np.asarray(
        [
            compression_ratio([docs[i] for i in np.sort(rng.choice(len(docs), half, replace=False))])
            for _ in range(max(10, b // 4))
        ]
    )
    return out


def decline_z(
    rule: Rule, cur: float | None, ref: float | None, se_cur: float | None, se_ref: float | None
) -> float | None:
    """How many standard errors the change from ``ref`` to ``cur`` goes in the collapse direction."""
    if cur is None or ref is None or se_cur is None or se_ref is None:
        return None
    se = math.hypot(se_cur, se_ref)
    return -rule.direction * (cur - ref) / se if se > 0 else None


def trend(points: Sequence[tuple[float, float, float]]) -> tuple[float, float] | None:
    """The weighted least-squares slope of (generation, value, standard error) points, and its
    standard error; None for fewer than two generations.

    Why the scale-up: each point's error is its own resampling noise, but every generation also
    has a model of its own, which moves its value by more than that noise; where the points
    scatter around the line more than their errors say, the slope's error grows to match."""
    pts = [(t, v, s) for t, v, s in points if v is not None and s is not None and not math.isnan(v)]
    if len(pts) < 2:
        return None
    t, y, se = (np.asarray(c, dtype=np.float64) for c in zip(*pts))
    w = 1 / np.maximum(se, 1e-12) ** 2
    tb, yb = (w * t).sum() / w.sum(), (w * y).sum() / w.sum()
    sxx = (w * (t - tb) ** 2).sum()
    if sxx <= 0:
        return None
    slope = float((w * (t - tb) * (y - yb)).sum() / sxx)
    var = 1 / sxx
    if len(pts) > 2:
        var *= max(1.0, float((w * (y - yb - slope * (t - tb)) ** 2).sum()) / (len(pts) - 2))
    return slope, math.sqrt(var)


def core_values(docs: list[list[str]], rare: set[str], human_docs: list[list[str]]) -> dict[str, float]:
    """The core metrics of budgeted documents, as ``lexical_profile`` computes them."""
    return {
        "distinct_2": distinct_n(docs, 2),
        "rare_type_coverage": rare_type_coverage(docs, rare),
        "compression_ratio": compression_ratio(docs),
        "js_distance_to_human": js_distance(docs, human_docs),
    }


def corpus_report(
    corpus: str,
    by_gen: dict[int, list[str]],
    human: list[str],
    generation: int,
    settings: DriftSettings,
    previous_status: str | None = None,
) -> pl.DataFrame:
    """Every metric of one corpus for ``generation``, plus the composite rows.

    ``previous_status`` is DIVERSITY_LOSS of this corpus in the latest earlier report (``alert``,
    ``warn``, ...): the state the hysteresis holds on to; None reads as no earlier report."""
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
    boots: dict[str, dict[str, np.ndarray]] = {}
    # the trend that tells a slide from a plateau: this generation and the last few before it,
    # each measured at this report's budget (an earlier generation too small for it is left out)
    sliding_on = settings.decline_test == "bootstrap" and settings.trend_generations > 0
    window = earlier[-settings.trend_generations :] if sliding_on else []
    series: dict[str, list[tuple[float, float, float]]] = {}
    human_rare_cov = None
    if budget:
        # rare types from one human half, the human baseline from the other: a corpus always
        # covers its own rare types, so measuring human data against itself would call every
        # other sample (even fresh human text) a gap
        rare = rare_types(take_budget(half_a or human, budget))
        human_docs = take_budget(human, budget)
        human_dist = unigram_distribution(human_docs)
        human_rare_cov = rare_type_coverage(take_budget(half_b or human, budget), rare)
        seed = int(hashlib.sha1(f"{corpus}/{generation}".encode()).hexdigest()[:8], 16)
        for k, texts in corpora.items():
            if not texts:
                prof[k] = None
            elif k in ("half_a", "half_b"):  # the noise floor: one human half against the other
                prof[k] = lexical_profile(texts, budget)
            else:
                prof[k] = lexical_profile(texts, budget, reference=human, rare=rare)
                if k in ("current", "previous", "first") and settings.decline_test == "bootstrap":
                    boots[k] = bootstrap_core(
                        take_budget(texts, budget), rare, human_dist, settings.bootstrap_samples, seed + len(boots)
                    )
        if prof.get("human"):
            prof["human"]["rare_type_coverage"] = human_rare_cov
        points: dict[int, tuple[dict[str, float], dict[str, np.ndarray]]] = {}
        for g in [*window, generation] if window else []:
            key = {generation: "current", prev_g: "previous", first_g: "first"}.get(g)
            if key in boots:
                points[g] = (prof[key], boots[key])
                continue
            docs = take_budget(by_gen[g], budget)
            if n_tokens(docs) >= budget:
                b = bootstrap_core(docs, rare, human_dist, settings.bootstrap_samples, seed + 10 + generation - g)
                points[g] = (core_values(docs, rare, human_docs), b)
        for metric in CORE_METRICS:
            series[metric] = [
                (float(g), v[metric], float(np.std(b[metric], ddof=1)))
                for g, (v, b) in sorted(points.items())
                if metric in b
            ]
    enough = budget >= settings.min_tokens and bool(current)
    rows, fails, severe, significant = [], [], [], []
    slides: dict[str, bool] = {}  # core metric -> still declining
    holds: dict[str, float] = {}  # core metric -> its decline vs G1, where it still holds the alert
    trend_text: dict[str, str] = {}
    for metric in [*settings.rules, *INFO_METRICS]:
        rule = settings.rules.get(metric)
        val = {k: (p.get(metric) if p else None) for k, p in prof.items()}
        cur = val.get("current")
        d_prev, d_first = _rel(cur, val.get("previous")), _rel(cur, val.get("first"))
        noise = None  # the reference-based metrics have no half-vs-half analogue here
        if val.get("half_a") is not None and val.get("half_b") is not None:
            noise = abs(_rel(val["half_a"], val["half_b"]) or 0.0)
        se = {k: float(np.std(b[metric], ddof=1)) for k, b in boots.items() if metric in b}
        status, note = "info", ""
        warn_t = fail_t = None
        if rule:
            tested = "current" in se  # a bootstrap interval replaces the noise floor
            warn_t = rule.warn if tested else max(rule.warn, settings.noise_multiplier * (noise or 0.0))
            fail_t = rule.warn if tested else max(rule.fail, warn_t)
            if not enough:
                status = "insufficient_data"
                note = f"only {budget} comparable tokens (need {settings.min_tokens})"
            elif val.get("previous") is None and val.get("first") is None:
                status, note = "baseline", "first synthetic generation: the reference for later ones"
            elif tested:
                # core metrics: a decline counts when it is at least the rule's size *and* beyond
                # resampling noise (bootstrap over documents), against the previous or the first
                z = {
                    ref: decline_z(rule, cur, val.get(ref), se.get("current"), se.get(ref))
                    for ref in ("previous", "first")
                }
                rel = {"previous": d_prev, "first": d_first}
                sized = {ref: -rule.direction * rel[ref] for ref in rel if rel[ref] is not None}
                worst = max(sized.values(), default=0.0)
                zs = {ref: z[ref] for ref in sized if z[ref] is not None and sized[ref] >= rule.warn}
                best_z = max(zs.values(), default=0.0)
                status = "fail" if best_z >= settings.z_fail else "warn" if best_z >= settings.z_warn else "ok"
                z_text = ", ".join(
                    f"vs {ref} {sized[ref]:+.1%} (z {z[ref]:.1f})" for ref in sized if z[ref] is not None
                )
                note = (
                    f"decline in the collapse direction {z_text}; counts at >= {rule.warn:.0%} with "
                    f"z >= {settings.z_warn} (warn) / {settings.z_fail} (fail)"
                )
                if rule.core and status == "fail":
                    fails.append(metric)
                if rule.core and max([v for v in z.values() if v is not None], default=0.0) >= settings.z_fail:
                    significant.append(metric)  # a decline beyond noise, whatever its size
                if rule.core and rule.critical is not None and best_z >= settings.z_fail and worst >= rule.critical:
                    severe.append(metric)
                fit = trend(series.get(metric, []))
                if rule.core and sliding_on and fit and val.get("first"):
                    # the slope in the collapse direction, as a share of G1's value a generation
                    rate = -rule.direction * fit[0] / abs(val["first"])
                    z_slope = -rule.direction * fit[0] / fit[1]
                    slides[metric] = rate >= settings.slide_rate * rule.warn and z_slope >= settings.z_warn
                    gens = [int(p[0]) for p in series[metric]]
                    trend_text[metric] = (
                        f"{fit[0] / abs(val['first']):+.1%} of G1 a generation over generations "
                        f"{gens[0]}-{gens[-1]} (z {z_slope:.1f})"
                    )
                    note += (
                        f"; trend {trend_text[metric]}: {'still declining' if slides[metric] else 'not sliding'} "
                        f"(a slide loses >= {settings.slide_rate * rule.warn:.1%} a generation, z >= {settings.z_warn})"
                    )
                    if (
                        "first" in sized
                        and z["first"] is not None
                        and sized["first"] >= settings.hysteresis * rule.warn
                        and z["first"] >= settings.z_warn
                    ):
                        holds[metric] = sized["first"]
            else:
                # a change from 0 has no relative size: it counts as none (absolute cuts still apply)
                worst = max([-rule.direction * d for d in (d_prev, d_first) if d is not None], default=0.0)
                status = "fail" if worst >= fail_t else "warn" if worst >= warn_t else "ok"
                if (
                    metric == "near_duplicate_rate"
                    and cur is not None
                    and cur > NEAR_DUP_ABSOLUTE_FAIL
                    and (worst > 0 or not max(val.get("previous") or 0, val.get("first") or 0))
                ):
                    status = "fail"
                note = f"worst change in the collapse direction {worst:+.1%}"
                if rule.core and status == "fail":
                    fails.append(metric)
                if rule.core and rule.critical is not None and worst >= rule.critical:
                    severe.append(metric)
        rows.append(
            {
                "generation": generation,
                "corpus": corpus,
                "metric": metric,
                "current": cur,
                "previous": val.get("previous"),
                "first": val.get("first"),
                "human": val.get("human"),
                "change_vs_previous": d_prev,
                "change_vs_first": d_first,
                "noise_floor": noise,
                "warn_threshold": warn_t,
                "fail_threshold": fail_t,
                "status": status,
                "note": note,
                "budget_tokens": budget,
                "previous_generation": prev_g,
                "first_generation": first_g,
            }
        )
    # composite rows
    declined = (
        len(fails) >= 2
        or bool(severe)
        or (any(settings.rules[m].lead for m in fails) and len(set(fails) | set(significant)) >= 2)
    )
    evidence = (
        f"failing core signals: {', '.join(fails) or '-'}; corroborated by a significant decline of: "
        f"{', '.join(m for m in significant if m not in fails) or '-'}; severe: {', '.join(severe) or '-'}"
    )
    # a slide is the diversity itself still falling: gzip alone creeps for generations under
    # accumulation with a trigram model, so only a direct signal's trend can carry the alert
    sliding = [m for m in slides if slides[m] and settings.rules[m].lead]
    if not enough:
        loss_status, loss_note = "insufficient_data", "not enough comparable tokens"
    elif not sliding_on:  # the earlier rules: every corroborated decline is diversity loss
        loss_status = "alert" if declined else "ok"
        loss_note = evidence if declined else f"failing core signals: {', '.join(fails) or 'none'}"
    elif declined and (severe or sliding):
        loss_status = "alert"
        loss_note = f"{evidence}; still declining: {', '.join(sliding) or '-'}"
    elif previous_status == "alert" and (declined or holds):
        loss_status = "alert"
        loss_note = f"raised earlier and held: diversity {_settled(holds, trend_text) or evidence}"
    elif declined or (previous_status in ("alert", "warn") and holds):
        loss_status = "warn"
        loss_note = (
            f"plateau: diversity settled {_settled(holds, trend_text) or evidence}; "
            "neither distinct_2 nor rare_type_coverage is still sliding"
        )
    else:
        loss_status, loss_note = "ok", f"failing core signals: {', '.join(fails) or 'none'}"
    if loss_status != "alert":
        for r in rows:  # a core decline that has stopped is a plateau: a warn, not a failure
            if r["status"] == "fail" and slides.get(r["metric"]) is False:
                r["status"] = "warn"
    if current:
        measured = n_tokens(take_budget(current, budget)) if budget else 0
        loss_note += (
            f"; rests on {len(current)} rows ({sum(len(tokenize(t)) for t in current)} "
            f"tokens), compared at {measured} tokens each"
        )
    rows.append(_composite(generation, corpus, "DIVERSITY_LOSS", loss_status, loss_note, budget, prev_g, first_g))
    gap_note, gap = "", False
    if enough and prof.get("current") and prof.get("human"):
        c, h = prof["current"], prof["human"]
        r2 = c["distinct_2"] / h["distinct_2"] if h["distinct_2"] else None
        rr = c["rare_type_coverage"] / h["rare_type_coverage"] if h["rare_type_coverage"] else None
        gap = (r2 is not None and r2 < settings.fidelity_distinct2_ratio) or (
            rr is not None and rr < settings.fidelity_rare_ratio
        )
        gap_note = (
            f"distinct-2 at {r2:.0%} of human, rare-type coverage at {rr:.0%} of human"
            if r2 is not None and rr is not None
            else ""
        )
    rows.append(
        _composite(
            generation,
            corpus,
            "FIDELITY_GAP",
            "notice" if gap else "ok" if enough else "insufficient_data",
            gap_note + (" (informational: synthetic data always differs from human data)" if gap else ""),
            budget,
            prev_g,
            first_g,
        )
    )
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)


def _settled(holds: dict[str, float], trend_text: dict[str, str]) -> str:
    """'N% below generation 1' with the metrics behind it and their trends."""
    if not holds:
        return ""
    lead = [m for m in holds if DEFAULT_RULES[m].lead] or list(holds)
    top = max(lead, key=lambda m: holds[m])
    others = "".join(f"; {m} {holds[m]:.1%}" for m in holds if m != top)
    trends = "; ".join(f"{m} {trend_text[m]}" for m in holds if m in trend_text)
    return f"{holds[top]:.1%} below generation 1 ({top}{others}); trend: {trends or '-'}"


def _composite(
    generation: int,
    corpus: str,
    metric: str,
    status: str,
    note: str,
    budget: int,
    prev_g: int | None,
    first_g: int | None,
) -> dict:
    return {
        "generation": generation,
        "corpus": corpus,
        "metric": metric,
        "current": None,
        "previous": None,
        "first": None,
        "human": None,
        "change_vs_previous": None,
        "change_vs_first": None,
        "noise_floor": None,
        "warn_threshold": None,
        "fail_threshold": None,
        "status": status,
        "note": note,
        "budget_tokens": budget,
        "previous_generation": prev_g,
        "first_generation": first_g,
    }


def eval_rows(generation: int, scores: dict[int, tuple[int, int]], metric: str = "heldout_pass_rate") -> pl.DataFrame:
    """Degradation: the generator's pass rate on held-out tasks (HumanEval: ``heldout_pass_rate``;
    held-out reasoning items: ``heldout_reasoning_pass_rate``; their harder and rephrased
    variants: ``shifted_pass_rate``), this generation against the previous one, flagged when the
    drop exceeds sampling noise (two-proportion z-test)."""
    cur = scores.get(generation)
    earlier = sorted(g for g in scores if g < generation)
    prev_g = earlier[-1] if earlier else None
    first_g = earlier[0] if earlier else generation

    def rate(t: tuple[int, int] | None) -> float | None:
        return t[0] / t[1] if t and t[1] else None

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
    return pl.DataFrame(
        [
            {
                "generation": generation,
                "corpus": "eval",
                "metric": metric,
                "current": rate(cur),
                "previous": rate(scores.get(prev_g)) if prev_g else None,
                "first": rate(scores.get(first_g)),
                "human": None,
                "change_vs_previous": None,
                "change_vs_first": None,
                "noise_floor": None,
                "warn_threshold": 1.96,
                "fail_threshold": 2.58,
                "status": status,
                "note": note,
                "budget_tokens": None,
                "previous_generation": prev_g,
                "first_generation": first_g,
            }
        ],
        schema=REPORT_SCHEMA,
    )


def last_status(history: pl.DataFrame | None, corpus: str, generation: int) -> str | None:
    """DIVERSITY_LOSS of ``corpus`` in the latest stored report before ``generation``."""
    if history is None or history.height == 0:
        return None
    rows = history.filter(
        (pl.col("corpus") == corpus) & (pl.col("metric") == "DIVERSITY_LOSS") & (pl.col("generation") < generation)
    ).sort("generation")
    return rows["status"][-1] if rows.height else None


def drift_report(
    mix: pl.DataFrame,
    generation: int,
    settings: DriftSettings,
    generated: dict[int, list[str]] | None = None,
    eval_scores: dict[str, dict[int, tuple[int, int]]] | None = None,
    history: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The report for ``generation``: accepted rows, every generated completion (which holds far
    more text than the accepted rows when the generator is weak, and shows a collapsing
    generator first), and the held-out evaluation when given. ``history`` holds the earlier
    generations' stored reports: the state DIVERSITY_LOSS's hysteresis holds on to."""
    accepted, human = texts_by_generation(mix)
    frames = [
        corpus_report("accepted", accepted, human, generation, settings, last_status(history, "accepted", generation))
    ]
    if generated is not None:
        frames.append(
            corpus_report(
                "generated", generated, human, generation, settings, last_status(history, "generated", generation)
            )
        )
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
        shown,
        ["corpus", "metric", "current", "previous", "first", "human", "Δ prev", "Δ first", "noise", "status"],
        fmt={
            "current": num,
            "previous": num,
            "first": num,
            "human": num,
            "Δ prev": pct,
            "Δ first": pct,
            "noise": pct,
            "status": status,
        },
    )
