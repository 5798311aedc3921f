"""The drift report: this generation's synthetic data against the previous one, the first one
and the human reference, each metric with a change, a threshold and a status.

Thresholds are relative changes in the direction that signals collapse (diversity down,
redundancy up). The first synthetic generation is the baseline: its distance from human data
is a fidelity gap, not diversity loss, so it never fails on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quality_checks.metrics import lexical_profile, take_budget, n_tokens

# +1: higher is healthier (a drop is a warning sign); -1: lower is healthier; 0: report only
DIRECTION: dict[str, int] = {
    "distinct_1": 1,
    "distinct_2": 1,
    "distinct_3": 1,
    "vocabulary_size": 1,
    "hapax_ratio": 1,
    "compression_ratio": -1,
    "mean_length_tokens": 0,
    "documents": 0,
    "tokens_measured": 0,
}

REPORT_SCHEMA: dict[str, pl.DataType] = {
    "generation": pl.Int64,
    "corpus": pl.String,  # accepted (synthetic rows of the mix) | generated (every raw completion)
    "metric": pl.String,
    "current": pl.Float64,
    "previous": pl.Float64,
    "first": pl.Float64,
    "human": pl.Float64,
    "change_vs_previous": pl.Float64,
    "change_vs_first": pl.Float64,
    "warn_threshold": pl.Float64,
    "fail_threshold": pl.Float64,
    "status": pl.String,  # ok | warn | fail | baseline | insufficient_data | info
    "note": pl.String,
    "budget_tokens": pl.Int64,
    "previous_generation": pl.Int64,
    "first_generation": pl.Int64,
}


@dataclass(frozen=True)
class DriftSettings:
    token_budget: int = 40_000
    min_tokens: int = 100
    warn_threshold: float = 0.10
    fail_threshold: float = 0.20


def _rel(cur: float | None, ref: float | None) -> float | None:
    if cur is None or ref is None or ref == 0:
        return None
    return (cur - ref) / abs(ref)


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


def drift_report(
    mix: pl.DataFrame, generation: int, settings: DriftSettings, generated: dict[int, list[str]] | None = None
) -> pl.DataFrame:
    """Metrics for ``generation`` on two corpora: the accepted synthetic rows of the mix and,
    when given, every completion the generator produced (which holds far more text than the
    accepted rows when the generator is weak, and shows a collapsing generator first)."""
    accepted, human = texts_by_generation(mix)
    frames = [_corpus_report("accepted", accepted, human, generation, settings)]
    if generated is not None:
        frames.append(_corpus_report("generated", generated, human, generation, settings))
    return pl.concat(frames)


def _corpus_report(
    corpus: str, by_gen: dict[int, list[str]], human: list[str], generation: int, settings: DriftSettings
) -> pl.DataFrame:
    current = by_gen.get(generation, [])
    earlier = sorted(g for g in by_gen if g < generation)
    prev_g = earlier[-1] if earlier else None
    first_g = min(by_gen) if by_gen else None
    corpora = {"current": current, "human": human}
    if prev_g is not None:
        corpora["previous"] = by_gen[prev_g]
    if first_g is not None and first_g != generation:
        corpora["first"] = by_gen[first_g]
    # one budget for all: the smallest corpus sets it, so every metric sees the same token count
    sizes = [n_tokens(take_budget(t, settings.token_budget)) for t in corpora.values() if t]
    budget = min([settings.token_budget, *sizes]) if sizes else 0
    prof = {k: lexical_profile(v, budget) if v else None for k, v in corpora.items()}
    enough = budget >= settings.min_tokens and bool(current)
    rows = []
    for metric, direction in DIRECTION.items():
        val = {k: (p[metric] if p else None) for k, p in prof.items()}
        cur = val.get("current")
        d_prev, d_first = _rel(cur, val.get("previous")), _rel(cur, val.get("first"))
        status, note = "info", ""
        if direction:
            if not enough:
                status = "insufficient_data"
                note = f"only {budget} comparable tokens (need {settings.min_tokens}); generate more or check pass rates"
            elif d_prev is None and d_first is None:
                status, note = "baseline", "first synthetic generation"
                gap = _rel(cur, val.get("human"))
                if gap is not None:
                    note += f"; fidelity gap vs human {gap:+.1%}"
            else:
                worst = max(-direction * d for d in (d_prev, d_first) if d is not None)
                status = "fail" if worst >= settings.fail_threshold else "warn" if worst >= settings.warn_threshold else "ok"
                note = f"worst change in the collapse direction {worst:+.1%}"
        rows.append({
            "generation": generation, "corpus": corpus, "metric": metric, "current": cur, "previous": val.get("previous"),
            "first": val.get("first"), "human": val.get("human"), "change_vs_previous": d_prev,
            "change_vs_first": d_first,
            "warn_threshold": settings.warn_threshold if direction else None,
            "fail_threshold": settings.fail_threshold if direction else None,
            "status": status, "note": note, "budget_tokens": budget,
            "previous_generation": prev_g, "first_generation": first_g,
        })
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)


def report_markdown(report: pl.DataFrame) -> str:
    def f(x: float | None) -> str:
        return "" if x is None else f"{x:.4g}"

    def pct(x: float | None) -> str:
        return "" if x is None else f"{x:+.1%}"

    lines = ["| corpus | metric | current | previous | first | human | Δ prev | Δ first | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report.iter_rows(named=True):
        lines.append(
            f"| {r['corpus']} | {r['metric']} | {f(r['current'])} | {f(r['previous'])} | {f(r['first'])} | {f(r['human'])} "
            f"| {pct(r['change_vs_previous'])} | {pct(r['change_vs_first'])} | {r['status']} |"
        )
    return "\n".join(lines)
