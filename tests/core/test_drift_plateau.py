"""DIVERSITY_LOSS tells a slide from a plateau (issue 35): a decline that has settled near a
threshold is a steady plateau warn, never an alarm that turns on and off; a decline that is
still sliding raises DIVERSITY_LOSS, and the alarm holds while the decline stays."""

import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.quality.drift import DriftSettings, drift_report, trend

VOCAB = [f"w{i}" for i in range(3000)]
ZIPF = [1 / (i + 1) for i in range(3000)]
SETTINGS = DriftSettings(token_budget=20_000)


def generation(narrowed: float, seed: int, docs: int = 300) -> list[str]:
    """Documents of 20 Zipf-distributed words; the ``narrowed`` share draws only from the 60
    commonest words, so its bigrams repeat and it misses the rare words: distinct-2 and rare-type
    coverage fall with it."""
    rng = random.Random(seed)
    k = round(narrowed * docs)
    free = [" ".join(rng.choices(VOCAB, ZIPF, k=20)) for _ in range(docs - k)]
    return free + [" ".join(rng.choices(VOCAB[:60], ZIPF[:60], k=20)) for _ in range(k)]


def statuses(narrowed: list[float]) -> list[tuple[str, str]]:
    """(DIVERSITY_LOSS status, note) of generations 2.. of a fixed series, each report holding the
    last one's state through ``history``, as the asset does."""
    gens = {g: generation(share, seed=g) for g, share in enumerate(narrowed, start=1)}
    rows = [
        {"source": "synthetic", "origin_generation": g, "prompt": "", "response": t}
        for g, ts in gens.items()
        for t in ts
    ]
    rows += [
        {"source": "human", "origin_generation": None, "prompt": "", "response": t} for t in generation(0, 999, 700)
    ]
    schema = {"source": pl.String, "origin_generation": pl.Int64, "prompt": pl.String, "response": pl.String}
    mix = pl.DataFrame(rows, schema=schema)
    history, out = None, []
    for g in range(2, len(narrowed) + 1):
        report = drift_report(mix, g, SETTINGS, history=history)
        history = report if history is None else pl.concat([history, report])
        loss = report.filter(pl.col("metric") == "DIVERSITY_LOSS").row(0, named=True)
        out.append((loss["status"], loss["note"]))
    return out


# distinct-2 eases down to about 10% below generation 1 and hovers there (-8.7% to -10.6% over
# generations 5-10, rare-type coverage -8% to -14%): the earlier rule went alert, ok, ok, alert
@pytest.fixture(scope="module")
def plateau():
    return statuses([0, 0.05, 0.09, 0.12, 0.14, 0.15, 0.14, 0.155, 0.14, 0.15])


@pytest.fixture(scope="module")
def slide():
    return statuses([0, 0.06, 0.16, 0.26, 0.36])


def test_a_plateau_at_the_threshold_never_raises_diversity_loss(plateau):
    assert [s for s, _ in plateau].count("alert") == 0, plateau


def test_a_plateau_at_the_threshold_is_a_steady_warn_once_reached(plateau):
    seen = [s for s, _ in plateau]
    assert seen[seen.index("warn") :] == ["warn"] * (len(seen) - seen.index("warn")), plateau


def test_the_plateau_warn_says_how_far_below_generation_1_it_settled(plateau):
    assert all("settled" in note and "below generation 1" in note for s, note in plateau if s == "warn"), plateau


def test_a_sliding_series_raises_diversity_loss(slide):
    assert [s for s, _ in slide][-2:] == ["alert", "alert"], slide


def test_the_alert_holds_while_the_decline_stays():
    """The slide stops at 36% narrowed: no longer sliding, but the alarm raised during it holds."""
    held = statuses([0, 0.06, 0.16, 0.26, 0.36, 0.35, 0.36])
    assert [s for s, _ in held][-3:] == ["alert"] * 3, held


@given(
    st.floats(-1, 1),
    st.floats(-1, 1),
    st.lists(st.floats(0.001, 0.05), min_size=2, max_size=6),
)
@settings(max_examples=100, deadline=None)
def test_trend_recovers_a_straight_line(intercept, slope, errors):
    points = [(t, intercept + slope * t, se) for t, se in enumerate(errors)]
    assert trend(points)[0] == pytest.approx(slope, abs=1e-9)


@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(0.001, 0.05)), min_size=3, max_size=6))
@settings(max_examples=100, deadline=None)
def test_trend_error_is_never_smaller_than_the_points_say(points):
    """Scatter beyond the points' own errors can only widen the slope's error."""
    pts = [(t, v, se) for t, (v, se) in enumerate(points)]
    w = [1 / se**2 for _, _, se in pts]
    tb = sum(wi * t for wi, (t, _, _) in zip(w, pts)) / sum(w)
    model_se = sum(wi * (t - tb) ** 2 for wi, (t, _, _) in zip(w, pts)) ** -0.5
    assert trend(pts)[1] >= model_se * (1 - 1e-9)


def test_trend_needs_two_generations():
    assert trend([(1.0, 0.5, 0.01)]) is None
