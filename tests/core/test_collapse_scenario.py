"""The drift report flags recursive regeneration with replacement and stays quiet when data
accumulates or when the data is fresh human text (the calibration scenario)."""

import pytest

from synth_assets.core.quality.drift import DriftSettings
from tests.collapse_sim import NGramLM, Scenario, alerts, human_sentences

SC = Scenario(generations=5, sentences_per_generation=1500, train_sentences=2000, order=2, seed=1)


@pytest.fixture(scope="module")
def corpus():
    c = human_sentences()
    assert len(c) > 8000  # the stdlib's docstrings: enough English prose
    return c


def test_ngram_model_only_emits_seen_bigrams(corpus):
    lm = NGramLM(corpus[:500], order=2)
    import random

    seen = {tuple(p) for s in corpus[:500] for p in zip(["<s>", *s.split()], s.split())}
    for s in lm.sample(50, random.Random(0)):
        toks = s.split()
        assert all(p in seen for p in zip(["<s>", *toks], toks))


def test_replacement_triggers_diversity_loss_and_it_persists(corpus):
    rows = alerts("replace", SC, DriftSettings(token_budget=20_000), corpus)
    statuses = [r["DIVERSITY_LOSS"] for r in rows]  # generations 2..5
    assert statuses == ["alert"] * len(rows), rows
    assert rows[-1]["distinct_2"] < -0.25 and rows[-1]["rare_type_coverage"] < -0.15


@pytest.mark.parametrize("seed", [0, 2])
def test_the_bootstrap_rule_alerts_at_generation_2(corpus, seed):
    """Seed 0: distinct-2 already down 14.5% at generation 2, with every core signal moving the
    same way; the fixed relative rule waited for generation 3 (two core signals past their
    fail thresholds), the bootstrap rule sees a decline beyond resampling noise now."""
    sc = Scenario(generations=2, sentences_per_generation=1500, train_sentences=2000, order=2, seed=seed)
    assert alerts("replace", sc, DriftSettings(token_budget=20_000), corpus)[0]["DIVERSITY_LOSS"] == "alert"


def test_fidelity_gap_is_silent_on_human_text_and_speaks_on_synthetic(corpus):
    settings = DriftSettings(token_budget=20_000)
    assert {r["FIDELITY_GAP"] for r in alerts("human", SC, settings, corpus)} == {"ok"}
    assert {r["FIDELITY_GAP"] for r in alerts("replace", SC, settings, corpus)} == {"notice"}


@pytest.mark.parametrize("mode", ["accumulate", "human"])
def test_accumulation_and_fresh_human_data_stay_quiet(corpus, mode):
    rows = alerts(mode, SC, DriftSettings(token_budget=20_000), corpus)
    assert [r["DIVERSITY_LOSS"] for r in rows] == ["ok"] * len(rows), rows
    assert all(r["distinct_2_status"] != "fail" for r in rows)


# accumulation where each model trains on a draw of 4,000 sentences from the pool: distinct-2
# settles 10-11% below generation 1, the fail level, as in issue 35 (the earlier rule alerted on
# and off there)
SETTLING = Scenario(generations=10, sentences_per_generation=1500, train_cap=4000, seed=0)


@pytest.fixture(scope="module")
def settling(corpus):
    return alerts("accumulate", SETTLING, DriftSettings(token_budget=20_000), corpus)


def test_the_settling_scenario_ends_at_the_distinct_2_threshold(settling):
    assert -0.13 < settling[-1]["distinct_2"] < -0.09, settling[-1]


def test_accumulation_settling_at_the_threshold_raises_no_diversity_loss(settling):
    assert [r["DIVERSITY_LOSS"] for r in settling].count("alert") == 0, settling


def test_accumulation_settling_at_the_threshold_ends_as_a_plateau(settling):
    assert settling[-1]["DIVERSITY_LOSS"] == "warn", settling[-1]
