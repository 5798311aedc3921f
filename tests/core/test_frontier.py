"""The capability frontier: which family@level the loop generates at, measured per model."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth_assets.core.generators.generation import PromptSettings, Sample
from synth_assets.core.training.frontier import (
    FRONTIER_SCHEMA,
    FrontierSettings,
    chosen_levels,
    classify,
    frontier_items,
    guess_rates,
    measure_frontier,
)

SETTINGS = FrontierSettings(families=["chain_sum"], max_level=3, items_per_level=12, samples=4)
PROMPTS = PromptSettings(few_shot=2, few_shot_pool=20)


class SkillDouble:
    """TEST DOUBLE: a model whose skill per family@level is fixed: it answers right at the sample
    indices listed for the level (0 = the greedy answer), wrong otherwise; no model."""

    name = "test_double"
    model = "skill-double-v1"

    def __init__(self, right_at: dict[str, set[int]]) -> None:
        self.right_at = right_at
        self.answers = {
            f"frontier/{fam}/{it['index']}": it["answer"]
            for fam in right_at
            for it in frontier_items(fam, SETTINGS, PROMPTS)
        }

    def generate(self, requests):
        for r in requests:
            family = r.task_id.split("/")[1]
            right = r.sample_index in self.right_at.get(family, set())
            text = f" {self.answers[r.task_id]}" if right else " -12345"
            yield Sample(text=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1, latency_s=0.0)


def test_a_mastered_level_moves_the_family_up_to_the_first_learnable_one():
    gen = SkillDouble({"chain_sum@1": {0, 1, 2, 3, 4}, "chain_sum@2": {2}})
    frontier = measure_frontier(gen, "m", SETTINGS, PROMPTS)
    assert (frontier["status"].to_list(), chosen_levels(frontier)) == (["mastered", "learnable"], ["chain_sum@2"])


def test_a_family_where_sampling_finds_nothing_greedy_misses_is_left_out():
    gen = SkillDouble({"chain_sum@1": set()})
    frontier = measure_frontier(gen, "m", SETTINGS, PROMPTS)
    assert (frontier["status"].to_list(), chosen_levels(frontier)) == (["guessing"], [])


def test_a_high_greedy_rate_that_the_most_common_answer_explains_is_not_mastery():
    """letter_counting's trap: 67% of its easy items have one answer; a model that always gives
    it is at 0.67 greedy without counting anything."""
    assert classify(0.85, 0.9, 0.5, 0.8, FrontierSettings()) != "mastered"


def test_mastery_needs_the_greedy_rate_above_the_trivial_baselines():
    assert classify(0.85, 0.9, 0.5, 0.2, FrontierSettings()) == "mastered"


def test_every_level_mastered_moves_up_a_level_of_the_ladder():
    rows = [
        {"family": f"chain_sum@{lvl}", "base_family": "chain_sum", "level": lvl, "status": "mastered"}
        for lvl in (1, 2, 3)
    ]
    frontier = pl.DataFrame(rows).with_columns(
        [pl.lit(None, dtype=t).alias(c) for c, t in FRONTIER_SCHEMA.items() if c not in rows[0]]
    )
    assert chosen_levels(frontier) == ["chain_sum@4"]


def test_a_family_named_with_a_level_names_the_field():
    from synth_assets.core.errors import SynthConfigError

    with pytest.raises(SynthConfigError, match=r"frontier.families: 'chain_sum@1': name the family without a level"):
        measure_frontier(SkillDouble({}), "m", FrontierSettings(families=["chain_sum@1"]), PROMPTS)


@given(st.lists(st.sampled_from(["1", "2", "3", "10"]), min_size=1, max_size=50), st.integers(1, 16))
def test_a_guesser_passes_more_often_with_more_samples_and_never_above_one(answers, k):
    per_sample, at_k = guess_rates(answers, k)
    assert 0 < per_sample <= at_k + 1e-12 <= 1 + 2e-12


def test_the_guesser_learns_the_levels_distribution_not_the_measured_items_answers():
    """Four items with four different answers, from a level whose answers spread over 100
    values: a guesser that knew the four items would pass a quarter of its guesses; one that
    knows only the level passes one in a hundred."""
    reference = [str(i) for i in range(100)]
    assert guess_rates(["1", "2", "3", "4"], 1, reference) == pytest.approx((0.01, 0.01))
