"""Diversity metrics and the drift report."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.quality.drift import DriftSettings, drift_report
from synth_assets.core.quality.metrics import compression_ratio, distinct_n, lexical_profile, take_budget

words = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]), min_size=1, max_size=30)
texts = st.lists(words.map(" ".join), min_size=1, max_size=30)


@given(texts, st.integers(1, 3))
@settings(max_examples=100, deadline=None)
def test_distinct_n_is_a_share(corpus, n):
    d = distinct_n(take_budget(corpus, 10_000), n)
    assert 0.0 <= d <= 1.0


@given(texts, st.integers(1, 500))
@settings(max_examples=100, deadline=None)
def test_budget_is_respected_and_order_free(corpus, budget):
    docs = take_budget(corpus, budget)
    assert sum(map(len, docs)) <= budget
    assert docs == take_budget(list(reversed(corpus)), budget)


def test_repetition_lowers_distinct_2_and_raises_compression():
    varied = [f"sentence number {i} talks about topic {i * 7 % 13} and item {i * 3}" for i in range(200)]
    repetitive = ["the same sentence again and again"] * 200
    v, r = lexical_profile(varied, 1000), lexical_profile(repetitive, 1000)
    assert r["distinct_2"] < v["distinct_2"] / 3
    assert r["compression_ratio"] > v["compression_ratio"]
    assert compression_ratio([]) == 0.0


def mix_for(gen_texts: dict[int, list[str]], human: list[str], prompts: dict[str, str] | None = None) -> pl.DataFrame:
    """A mix's synthetic rows by generation and its human rows; ``prompts`` maps a response to
    the prompt it answers (none by default)."""
    p = prompts or {}
    rows = [
        {"source": "synthetic", "origin_generation": g, "prompt": p.get(t, ""), "response": t}
        for g, ts in gen_texts.items()
        for t in ts
    ]
    rows += [{"source": "human", "origin_generation": None, "prompt": p.get(t, ""), "response": t} for t in human]
    return pl.DataFrame(
        rows, schema={"source": pl.String, "origin_generation": pl.Int64, "prompt": pl.String, "response": pl.String}
    )


def test_drift_report_flags_a_collapsed_generation_and_baselines_the_first():
    varied = [f"sentence number {i} talks about topic {i * 7 % 13} and item {i * 3}" for i in range(300)]
    collapsed = ["the same sentence again and again"] * 300
    human = [f"a person wrote note {i} on subject {i % 17}" for i in range(300)]
    first = drift_report(mix_for({1: varied}, human), 1, DriftSettings(token_budget=2000))
    status = dict(zip(first["metric"], first["status"]))
    assert status["distinct_2"] == "baseline" and status["DIVERSITY_LOSS"] == "ok"
    assert status["FIDELITY_GAP"] == "ok"  # the varied text is more diverse than the human text: no gap
    second = drift_report(mix_for({1: varied, 2: collapsed}, human), 2, DriftSettings(token_budget=2000))
    d2 = second.filter(pl.col("metric") == "distinct_2").row(0, named=True)
    assert d2["status"] == "fail" and d2["previous_generation"] == 1 and d2["change_vs_previous"] < -0.2
    assert second.filter(pl.col("metric") == "DIVERSITY_LOSS")["status"][0] == "alert"
    assert second.filter(pl.col("metric") == "FIDELITY_GAP")["status"][0] == "notice"  # the collapsed one has a gap
    same = drift_report(mix_for({1: varied, 2: list(varied)}, human), 2, DriftSettings(token_budget=2000))
    assert set(same.filter(pl.col("warn_threshold").is_not_null())["status"]) == {"ok"}
    assert same.filter(pl.col("metric") == "DIVERSITY_LOSS")["status"][0] == "ok"


def test_reference_metrics_behave():
    from synth_assets.core.quality.metrics import (
        js_distance,
        near_duplicate_rate,
        opening_concentration,
        rare_type_coverage,
        rare_types,
    )

    a = [f"word{i} common text here" for i in range(100)]
    docs = take_budget(a, 10_000)
    assert js_distance(docs, docs) == 0.0
    assert 0 < js_distance(docs, take_budget(["entirely other vocabulary"] * 10, 100)) <= 1.0
    rare = rare_types(docs)
    assert rare_type_coverage(docs, rare) == 1.0 and rare_type_coverage(take_budget(["common text"], 10), rare) == 0.0
    assert opening_concentration(["the cat sat"] * 9 + ["a dog ran"]) == 1.0
    assert opening_concentration([f"x{i} y z" for i in range(20)], top=5) == 0.25
    dup = ["one two three four five six seven"] * 2 + ["alpha beta gamma delta epsilon zeta eta"]
    assert near_duplicate_rate(dup) == pytest.approx(2 / 3)


def test_tiny_corpora_are_insufficient_not_alarming():
    rep = drift_report(mix_for({1: ["4"], 2: ["5"]}, ["x y z"]), 2, DriftSettings())
    assert set(rep.filter(pl.col("warn_threshold").is_not_null())["status"]) == {"insufficient_data"}


def test_the_accepted_corpus_at_default_sizes_gets_a_real_status():
    """Two default generations accepted 28 and 8 short rows: answers alone are a few tokens, but
    the training examples (prompt and answer) are enough to measure, and the report says what it
    rests on."""
    import reasoning_gym

    ds = reasoning_gym.create_dataset("gcd", size=60, seed=5)
    items = [(ds[i]["question"], ds[i]["answer"]) for i in range(60)]
    prompts = {f"{a} #{i}": q for i, (q, a) in enumerate(items)}  # responses are distinct keys
    answers = list(prompts)
    mix = mix_for({1: answers[:28], 2: answers[28:36]}, answers[36:], prompts)
    rep = drift_report(mix, 2, DriftSettings()).filter(pl.col("corpus") == "accepted")
    assert set(rep.filter(pl.col("warn_threshold").is_not_null())["status"]) == {"ok"}  # same family, same kind
    loss = rep.filter(pl.col("metric") == "DIVERSITY_LOSS").row(0, named=True)
    assert loss["status"] == "ok" and "rests on 8 rows (224 tokens)" in loss["note"]
    # the same 8 rows, all one example: the monitor sees it at this size
    collapsed = mix_for({1: answers[:28], 2: [answers[28]] * 8}, answers[36:], prompts)
    rep = drift_report(collapsed, 2, DriftSettings()).filter(pl.col("corpus") == "accepted")
    status = dict(zip(rep["metric"], rep["status"]))
    assert (status["distinct_2"], status["DIVERSITY_LOSS"]) == ("fail", "alert")
