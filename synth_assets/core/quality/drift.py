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

The held-out answers (corpus ``answers:<family>``): a model trained on its own output collapses
onto a few answers while its pass rate can even rise toward a trivial baseline (always the most
common answer), so the pass-rate test alone stays ``ok`` (issue 35, the self-improvement bench's
naive arm). Per family, on the greedy answers to the ``heldout`` variant, the report sets the
entropy of the model's answers against the entropy of the reference answers of the same items,
and the share of its commonest answer against that answer's share among the references
(``answer_rows``); ANSWER_COLLAPSE is flagged when both have moved far, and further than in the
first and the previous generation evaluated.
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
from pydantic import Field, ValidationInfo, field_validator
from scipy.sparse import csr_matrix
from scipy.stats import binom

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
    # accepted (synthetic rows of the mix) | generated (every raw completion) | eval | answers:<family>
    # (the greedy held-out answers of one family)
    "corpus": pl.String,
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
    # ANSWER_COLLAPSE (answer_rows). Each pair is [warn, fail]; every condition of a level must hold.
    # Why these sizes: the plug-in entropy of 100 reference answers has a delta-method standard
    # error of 0.03-0.14 bits in the default held-out families, at most 5% of its value (letter
    # counting: 2.47 +- 0.12 bits, where a quarter of the bits is 0.62); the difference of two such
    # estimates on 50 items has about 10% relative error, so a 25% drop is at least 2.5 of them
    # and 10% about one: the entropy cut is the effect's size, the binomial test its significance.
    answer_min_items: int = Field(
        default=20, ge=1, description="held-out items of a family below which its answers are insufficient_data"
    )
    answer_entropy_drop: list[float] = Field(
        default=[0.10, 0.25],
        description="[warn, fail]: the model's answer entropy at least this share below the reference answers'",
    )
    answer_odds_ratio: list[float] = Field(
        default=[2.0, 4.0],
        description="[warn, fail]: the odds of the model's commonest answer at least this many times its odds "
        "among the reference answers (4: a 10% answer at >= 31% of the model's, a 40% one at >= 73%)",
    )
    answer_alpha: list[float] = Field(
        default=[0.01, 0.001],
        description="[warn, fail]: one-sided exact binomial p of that share against the references', "
        "Bonferroni-corrected over the distinct answers the model gave",
    )
    answer_min_reference_entropy: float = Field(
        default=0.5, ge=0, description="bits; reference answers under it have no diversity to lose (as the gate's)"
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

    @field_validator("answer_entropy_drop", "answer_odds_ratio", "answer_alpha")
    @classmethod
    def _answer_pairs(cls, v: list[float], info: ValidationInfo) -> list[float]:
        if len(v) != 2 or min(v) <= 0:
            raise ValueError(f"{info.field_name}: give [warn, fail], both above 0")
        # a fail is stricter than a warn: a larger drop or odds ratio, a smaller p
        if (v[0] < v[1]) if info.field_name == "answer_alpha" else (v[0] > v[1]):
            raise ValueError(f"{info.field_name}: the fail level must be at least as strict as the warn level")
        if info.field_name != "answer_odds_ratio" and max(v) >= 1:
            raise ValueError(f"{info.field_name}: both below 1")
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
    budget: int | None,
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


def two_proportion_z(k: int, n: int, k_e: int, n_e: int) -> float:
    """z of the share k/n above k_e/n_e (pooled two-proportion test; 0 when the pooled share is 0 or 1)."""
    pooled = (k + k_e) / (n + n_e)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n_e)) if 0 < pooled < 1 else 0.0
    return (k / n - k_e / n_e) / se if se else 0.0


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
        z = two_proportion_z(k1, n1, k2, n2)  # the drop from the previous generation
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


# ------------------------------------------------------------------ held-out answers
ANSWER_TEMPLATE = "heldout_heldout"  # generator_eval's prompt_template of the held-out variant
ANSWER_COLUMNS: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "family": pl.String,
    "answer": pl.String,  # the reference answer
    "extracted_answer": pl.String,  # the model's (greedy) answer
}
ANSWER_METRICS = ("answer_entropy", "trivial_baseline_share", "top_answer_share", "ANSWER_COLLAPSE")
_PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "family": pl.String,
    "items": pl.Int64,
    "entropy": pl.Float64,
    "reference_entropy": pl.Float64,
    "mode": pl.String,
    "trivial_share": pl.Float64,
    "reference_trivial_share": pl.Float64,
    "top": pl.String,
    "top_share": pl.Float64,
    "reference_top_share": pl.Float64,
    "distinct_answers": pl.Int64,
}


def heldout_answers(generator_eval: pl.DataFrame) -> pl.DataFrame:
    """The greedy answers to the held-out reasoning items' ``heldout`` variant, one row per item
    and generation (ANSWER_COLUMNS), from generator_eval's rows.

    Why only that variant: its items are the family's own configuration, the distribution the
    generator trains on; the harder and rephrased variants ask other questions (the pass-rate rows
    judge them), and a HumanEval row has no single answer to count."""
    if generator_eval.height == 0 or "prompt_template" not in generator_eval.columns:
        return pl.DataFrame(schema=ANSWER_COLUMNS)
    return generator_eval.filter(pl.col("prompt_template") == ANSWER_TEMPLATE).select(
        pl.col(c).cast(t) for c, t in ANSWER_COLUMNS.items()
    )


def _normalised(answers: pl.DataFrame) -> pl.DataFrame:
    """generation, family, ref, got: answers compared with outer whitespace stripped; no answer is
    the empty answer, a value like any other (a model that stops answering has collapsed too)."""
    return answers.select(
        pl.col("generation").cast(pl.Int64),
        pl.col("family").cast(pl.String),
        pl.col("answer").cast(pl.String).fill_null("").str.strip_chars().alias("ref"),
        pl.col("extracted_answer").cast(pl.String).fill_null("").str.strip_chars().alias("got"),
    )


def answer_profile(answers: pl.DataFrame) -> pl.DataFrame:
    """Per generation and family (_PROFILE_SCHEMA): the items, the entropy in bits of the model's
    answers and of the reference answers of the same items, the family's most common reference
    answer (``mode``: what the trivial baseline always answers) with its share among the model's
    answers (``trivial_share``) and among the references, and the model's own commonest answer
    (``top``) with its share among its answers and among the references.

    Why both the mode and the top answer: a collapsing model need not collapse onto the right
    constant. The self-improvement bench's naive arm drifted toward letter_counting's most common
    count (the trivial share rises with the pass rate), but its chain_sum answers collapsed onto a
    few wrong values, which the trivial share never sees; the test judges the top answer."""
    a = _normalised(answers)
    if a.height == 0:
        return pl.DataFrame(schema=_PROFILE_SCHEMA)
    keys = ["generation", "family"]
    ref_counts = a.group_by([*keys, "ref"]).len("k")
    got_counts = a.group_by([*keys, "got"]).len("k")
    # ties: the smallest value, as trivial_baselines picks the mode, so the choice is stable
    mode = (
        ref_counts.sort(["k", "ref"], descending=[True, False])
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, pl.col("ref").alias("mode"))
    )
    # ties: the answer the references hold least (the strongest evidence), then the smallest
    top = (
        got_counts.join(ref_counts.rename({"ref": "got", "k": "rk"}), on=[*keys, "got"], how="left")
        .with_columns(pl.col("rk").fill_null(0))
        .sort(["k", "rk", "got"], descending=[True, False, False])
        .group_by(keys, maintain_order=True)
        .first()
        .select(*keys, pl.col("got").alias("top"))
    )

    def entropy(counts: pl.DataFrame, name: str) -> pl.DataFrame:
        return counts.group_by(keys).agg(pl.col("k").entropy(base=2).clip(lower_bound=0.0).alias(name))

    return (
        a.join(mode, on=keys)
        .join(top, on=keys)
        .group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("items"),
            pl.col("mode").first(),
            (pl.col("got") == pl.col("mode")).mean().alias("trivial_share"),
            (pl.col("ref") == pl.col("mode")).mean().alias("reference_trivial_share"),
            pl.col("top").first(),
            (pl.col("got") == pl.col("top")).mean().alias("top_share"),
            (pl.col("ref") == pl.col("top")).mean().alias("reference_top_share"),
            pl.col("got").n_unique().cast(pl.Int64).alias("distinct_answers"),
        )
        .join(entropy(got_counts, "entropy"), on=keys)
        .join(entropy(ref_counts, "reference_entropy"), on=keys)
        .select(pl.col(c).cast(t) for c, t in _PROFILE_SCHEMA.items())
        .sort(keys)
    )


@dataclass(frozen=True)
class CollapseTest:
    """The model's answers against the references' on the same items."""

    level: str  # fail | warn | ok
    entropy_drop: float  # 1 - H(model) / H(references)
    p_value: float  # one-sided exact binomial of the top answer's count, Bonferroni over distinct answers
    odds_ratio: float  # odds of the top answer among the model's answers / among the references'
    count: int  # items the model answered with its top answer
    reference_count: int  # items whose reference answer is that answer


def collapse_test(profile: Mapping[str, object], settings: DriftSettings) -> CollapseTest:
    """Has this generation's model collapsed onto its top answer, against the references?

    The null hypothesis is a model whose answers are spread like the references: then each of its
    answers lands on the top value with that value's reference share p0, and the count is
    Binomial(n, p0). The top answer is picked after looking, so the one-sided p is multiplied by
    the number of distinct answers the model gave (Bonferroni: any of them could have been the top
    one). A value no reference holds gets p0 = half an item (0.5 / n), so its test and odds stay
    finite. Significance alone would flag a tiny bias on many items, so each level also needs its
    size: the entropy lost against the references and the top answer's odds ratio. A model that
    copies the references, or answers like them, has drop 0 and odds ratio 1: never flagged."""
    n = int(profile["items"])  # type: ignore[arg-type]
    h, h_ref = float(profile["entropy"]), float(profile["reference_entropy"])  # type: ignore[arg-type]
    k = round(float(profile["top_share"]) * n)  # type: ignore[arg-type]
    k0 = round(float(profile["reference_top_share"]) * n)  # type: ignore[arg-type]
    drop = 1 - h / h_ref if h_ref > 0 else 0.0
    half = 0.5 / n
    p0 = min(max(k0 / n, half), 1 - half)
    share = min(k / n, 1 - half)
    p = min(1.0, int(profile["distinct_answers"]) * float(binom.sf(k - 1, n, p0)))  # type: ignore[arg-type]
    odds = (share / (1 - share)) / (p0 / (1 - p0))

    def meets(i: int) -> bool:
        return (
            drop >= settings.answer_entropy_drop[i]
            and p <= settings.answer_alpha[i]
            and odds >= settings.answer_odds_ratio[i]
        )

    level = "fail" if meets(1) else "warn" if meets(0) else "ok"
    return CollapseTest(level, drop, p, odds, k, k0)


def _shown(answer: str) -> str:
    return "(no answer)" if answer == "" else repr(answer if len(answer) <= 24 else answer[:21] + "...")


def answer_rows(answers: pl.DataFrame, generation: int, settings: DriftSettings) -> pl.DataFrame:
    """Per family evaluated at ``generation`` (corpus ``answers:<family>``): ``answer_entropy``
    (bits; ``human``: the reference answers' entropy), ``trivial_baseline_share`` (the share of
    the model's answers that are the family's most common reference answer; ``human``: that
    answer's share among the references), ``top_answer_share`` (the model's commonest answer;
    ``human``: its share among the references; previous and first: its share in those
    generations' answers) and ANSWER_COLLAPSE, each against the previous and the first generation
    this family was evaluated in.

    ANSWER_COLLAPSE is ``fail`` or ``warn`` when ``collapse_test`` finds the answers collapsed at
    that level against the references *and* they are worse than in the first or the previous
    generation (the top answer's share rose with z >= z_warn, the entropy fell by the warn size):
    the worse of the two counts, as in the other rows. Collapsed already and not worse is a
    ``notice`` (an earlier generation answered like this too: not drift, as FIDELITY_GAP is not
    diversity loss); the first generation is the ``baseline`` (or that ``notice``). Why the
    comparison: the base model copies its prompt's last example, whose answers are less spread
    than the references (on chain_sum 4.0 bits of 6.4), so the references alone would flag every
    model of the loop from the start."""
    a = _normalised(answers)
    prof = answer_profile(answers)
    rows: list[dict] = []
    for fam in sorted(prof.filter(pl.col("generation") == generation)["family"].to_list()):
        by_gen = {int(r["generation"]): r for r in prof.filter(pl.col("family") == fam).iter_rows(named=True)}
        cur = by_gen[generation]
        earlier = sorted(g for g in by_gen if g < generation)
        prev_g = earlier[-1] if earlier else None
        first_g = earlier[0] if earlier else None
        n = int(cur["items"])
        test = collapse_test(cur, settings)
        top = cur["top"]

        def top_count(g: int, top: str = top, fam: str = fam) -> int:
            return a.filter((pl.col("generation") == g) & (pl.col("family") == fam) & (pl.col("got") == top)).height

        earlier_share = {g: (top_count(g), int(by_gen[g]["items"])) for g in {prev_g, first_g} if g is not None}
        rise = {g: two_proportion_z(test.count, n, k_e, n_e) for g, (k_e, n_e) in earlier_share.items()}
        fell = {g: _rel(cur["entropy"], by_gen[g]["entropy"]) for g in earlier_share}
        # worse than an earlier generation: its top answer's share rose beyond noise and the
        # entropy fell by at least the warn size. Why both: a model that copies its prompt's last
        # example is collapsed against the references from the start, and one family's top-share
        # z moves past 1.96 by chance in 1 of 40 comparisons; a candidate that still copies keeps
        # the entropy, a collapsing one loses it
        risen = [
            g
            for g, z in rise.items()
            if z >= settings.z_warn and fell[g] is not None and -fell[g] >= settings.answer_entropy_drop[0]
        ]
        evidence = (
            f"{n} items: the model's answers {cur['entropy']:.2f} bits vs the references' "
            f"{cur['reference_entropy']:.2f} ({0.0 - test.entropy_drop:+.0%}); it answers {_shown(top)} on "
            f"{test.count}/{n} ({test.count / n:.0%}) where the references hold it {test.reference_count}/{n} "
            f"({test.reference_count / n:.0%}): binomial p {test.p_value:.2g} (one-sided, x{cur['distinct_answers']} "
            f"distinct answers), odds ratio {test.odds_ratio:.1f}"
        )
        role = {first_g: "first", prev_g: "previous"} | ({first_g: "first and previous"} if first_g == prev_g else {})
        against = "; ".join(
            f"vs generation {g} ({role[g]}): {_shown(top)} {earlier_share[g][0]}/{earlier_share[g][1]} "
            f"(rise z {rise[g]:.1f}), entropy {by_gen[g]['entropy']:.2f} bits"
            + (f" ({fell[g]:+.0%})" if fell[g] is not None else "")
            for g in sorted(rise)
        )
        rule = (
            f"fails at entropy >= {settings.answer_entropy_drop[1]:.0%} below, p <= "
            f"{settings.answer_alpha[1]:g}, odds ratio >= {settings.answer_odds_ratio[1]:g} (warn "
            f"{settings.answer_entropy_drop[0]:.0%}, {settings.answer_alpha[0]:g}, {settings.answer_odds_ratio[0]:g}) "
            f"and, against the first or the previous generation, a rise with z >= {settings.z_warn} and entropy "
            f"{settings.answer_entropy_drop[0]:.0%} lower"
        )
        if n < settings.answer_min_items:
            status, note = "insufficient_data", f"only {n} held-out items (need {settings.answer_min_items})"
        elif cur["reference_entropy"] < settings.answer_min_reference_entropy:
            status = "ok"
            note = f"the reference answers carry {cur['reference_entropy']:.2f} bits: no diversity to lose"
        elif first_g is None:
            status = "notice" if test.level != "ok" else "baseline"
            note = f"first evaluated generation{': already collapsed' if test.level != 'ok' else ''}; {evidence}"
        elif test.level != "ok" and risen:
            status = test.level
            note = f"collapsed onto {_shown(top)}: {evidence}; {against}; {rule}"
        elif test.level != "ok":
            status = "notice"
            note = f"collapsed as earlier generations were (not worse than either): {evidence}; {against}"
        else:
            status, note = "ok", f"{evidence}; {against}; {rule}"

        def col(g: int | None, key: str, by_gen: dict = by_gen) -> float | None:
            return float(by_gen[g][key]) if g is not None else None

        shares = {g: k_e / n_e for g, (k_e, n_e) in earlier_share.items()}
        corpus = f"answers:{fam}"
        metrics = {
            "answer_entropy": (
                cur["entropy"],
                col(prev_g, "entropy"),
                col(first_g, "entropy"),
                cur["reference_entropy"],
                f"bits over {n} items; human: the reference answers' entropy on the same items",
            ),
            "trivial_baseline_share": (
                cur["trivial_share"],
                col(prev_g, "trivial_share"),
                col(first_g, "trivial_share"),
                cur["reference_trivial_share"],
                f"answers equal to the family's most common reference answer {_shown(cur['mode'])}; "
                "human: its share among the references (the trivial baseline's pass rate)",
            ),
            "top_answer_share": (
                cur["top_share"],
                shares.get(prev_g),
                shares.get(first_g),
                cur["reference_top_share"],
                f"the model's commonest answer {_shown(top)}; previous, first: its share in those "
                f"generations' answers; human: among the references; binomial p {test.p_value:.2g}, "
                f"odds ratio {test.odds_ratio:.1f}",
            ),
        }
        for metric, (value, previous, first, reference, text) in metrics.items():
            rows.append(
                {
                    "generation": generation,
                    "corpus": corpus,
                    "metric": metric,
                    "current": value,
                    "previous": previous,
                    "first": first,
                    "human": reference,
                    "change_vs_previous": _rel(value, previous),
                    "change_vs_first": _rel(value, first),
                    "noise_floor": None,
                    "warn_threshold": None,
                    "fail_threshold": None,
                    "status": "info",
                    "note": text,
                    "budget_tokens": None,
                    "previous_generation": prev_g,
                    "first_generation": first_g if first_g is not None else generation,
                }
            )
        rows.append(
            _composite(
                generation,
                corpus,
                "ANSWER_COLLAPSE",
                status,
                note,
                None,
                prev_g,
                first_g if first_g is not None else generation,
            )
        )
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)


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
    answers: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The report for ``generation``: accepted rows, every generated completion (which holds far
    more text than the accepted rows when the generator is weak, and shows a collapsing
    generator first), and the held-out evaluation when given. ``history`` holds the earlier
    generations' stored reports: the state DIVERSITY_LOSS's hysteresis holds on to. ``answers``
    (ANSWER_COLUMNS, every generation up to this one: ``heldout_answers``) adds each family's
    answer rows (``answer_rows``): a collapse the pass rate does not show."""
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
    if answers is not None:
        frames.append(answer_rows(answers, generation, settings))
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
