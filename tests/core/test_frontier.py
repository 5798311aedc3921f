"""The capability frontier: which family@level the loop generates at, measured per model."""

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.tasks.sources import ladder
from synth_assets.core.training.frontier import (
    FRONTIER_SCHEMA,
    FrontierSettings,
    at_chosen_levels,
    chosen_levels,
    classify,
    configured_levels,
    guess_rates,
    heldout_at_chosen_levels,
    measure_frontier,
)
from tests.doubles import SkillDouble

SETTINGS = FrontierSettings(items_per_level=12, samples=4)
TOP = {"chain_sum": 3}
PROMPTS = PromptSettings(few_shot=2, few_shot_pool=20)


def skill(right_at: dict[str, set[int]], greedy_items: dict[str, int] | None = None) -> SkillDouble:
    return SkillDouble(right_at, greedy_items, SETTINGS, PROMPTS)


def test_a_mastered_level_moves_the_family_up_to_the_first_learnable_one():
    gen = skill({"chain_sum@1": {0, 1, 2, 3, 4}, "chain_sum@2": {2}})
    frontier = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    assert (frontier["status"].to_list(), chosen_levels(frontier, SETTINGS)) == (
        ["mastered", "learnable"],
        ["chain_sum@2"],
    )


def test_a_family_where_sampling_finds_nothing_greedy_misses_is_left_out():
    gen = skill({"chain_sum@1": set()})
    frontier = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    assert (frontier["status"].to_list(), chosen_levels(frontier, SETTINGS)) == (["guessing"], [])


def test_a_high_greedy_rate_that_the_most_common_answer_explains_is_not_mastery():
    """letter_counting's trap: 67% of its easy items have one answer; a model that always gives
    it is at 0.67 greedy without counting anything."""
    assert classify(0.85, 0.9, 0.5, 0.8, FrontierSettings()) == "plateau"


def test_a_level_where_sampling_finds_little_more_than_greedy_is_a_plateau():
    """g1 at chain_sum@2 (2026-12-07): greedy 0.43, pass@8 0.47, well above guessing: the model's
    own right samples add little there, whatever its greedy rate."""
    assert classify(0.43, 0.47, 0.2, 0.07, FrontierSettings()) == "plateau"


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
    assert chosen_levels(frontier, SETTINGS) == ["chain_sum@4"]


class EchoDouble:
    """TEST DOUBLE: answers every request with the list its prompt's last question gives, in the
    order given (what a base model does with word sorting). No model."""

    name, model, terms = "echo_double", "echo-double-v1", "test double (no model)"

    def generate(self, requests):
        from synth_assets.core.generators.generation import Sample

        for r in requests:
            listed = r.prompt.rsplit("Answer:", 1)[0].rsplit(":", 1)[1].strip()
            yield Sample(text=f" {listed}", finish_reason="stop", prompt_tokens=1, completion_tokens=1, latency_s=0.0)


def test_a_level_that_echoing_the_question_passes_is_guessing_not_learnable():
    frontier = measure_frontier(EchoDouble(), "m", ["word_sorting@1"], SETTINGS, PROMPTS, {"word_sorting": 3})
    row = frontier.row(0, named=True)
    assert (row["status"], row["greedy_rate"] == row["as_given_rate"] > 0) == ("guessing", True)


def test_a_family_without_a_ladder_names_the_field():
    from synth_assets.core.errors import SynthConfigError

    with pytest.raises(
        SynthConfigError, match=r"frontier: family 'projectile_design' has no difficulty levels.*family@L"
    ):
        measure_frontier(skill({}), "m", ["projectile_design"], SETTINGS, PROMPTS)


def test_a_learnable_level_the_model_half_solves_is_generated_at_with_the_level_above():
    """The pilot's second round: greedy right on 7 of 12 at level 1 (climb_at 0.5), sampling finds
    the rest, and level 2 is learnable: both levels are chosen."""
    gen = skill({"chain_sum@1": {1, 2, 3, 4}, "chain_sum@2": {2}}, greedy_items={"chain_sum@1": 7})
    frontier = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    assert (frontier["status"].to_list(), frontier.filter("chosen")["family"].to_list()) == (
        ["learnable", "learnable"],
        ["chain_sum@1", "chain_sum@2"],
    )


def test_below_climb_at_the_level_above_is_not_measured():
    gen = skill({"chain_sum@1": {1, 2, 3, 4}, "chain_sum@2": {2}}, greedy_items={"chain_sum@1": 3})
    frontier = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    assert (sorted(set(gen.asked)), frontier.filter("chosen")["family"].to_list()) == (["chain_sum@1"], ["chain_sum@1"])


def test_a_family_mastered_up_to_the_pools_top_stays_at_the_top():
    gen = skill({f"chain_sum@{lvl}": {0, 1, 2, 3, 4} for lvl in (1, 2)})
    frontier = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, {"chain_sum": 2})
    assert (frontier["status"].to_list(), frontier.filter("chosen")["family"].to_list()) == (
        ["mastered", "mastered"],
        ["chain_sum@2"],
    )


def test_stored_rows_of_the_model_are_reused_not_measured_again():
    gen = skill({"chain_sum@1": {0, 1, 2, 3, 4}, "chain_sum@2": {2}})
    first = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    stored = {r["family"]: r for r in first.to_dicts()}
    again = skill({})
    second = measure_frontier(again, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP, stored)
    assert (again.asked, second.drop("chosen").equals(first.drop("chosen"))) == ([], True)


def test_the_ladder_holds_the_levels_above_each_family_up_to_its_top():
    assert ladder(["chain_sum@1", "gcd", "chain_sum@5"], 2) == [
        "chain_sum@1",
        "chain_sum@2",
        "chain_sum@3",
        "gcd",
        "chain_sum@5",
        "chain_sum@6",
    ]


def test_a_generation_uses_the_chosen_levels_and_every_family_without_one():
    frontier = configured_levels(["chain_sum@2"], "m")
    tasks = pl.DataFrame({"family": ["chain_sum@1", "chain_sum@2", "chain_sum@3", "projectile_design", "humaneval"]})
    assert at_chosen_levels(tasks, frontier)["family"].to_list() == ["chain_sum@2", "projectile_design", "humaneval"]


def test_a_chosen_level_without_held_out_items_names_the_fields():
    from synth_assets.core.errors import SynthConfigError

    items = pl.DataFrame({"family": ["chain_sum@1"]})
    with pytest.raises(
        SynthConfigError, match=r"no held-out items at \['chain_sum@2'\].*heldout_reasoning.levels_above"
    ):
        heldout_at_chosen_levels(items, configured_levels(["chain_sum@2"], "m"))


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


def test_a_stored_measurement_is_classified_under_todays_thresholds():
    """Reused rows keep their rates, not their status: raising `mastered` un-masters a level."""
    gen = skill({"chain_sum@1": {1, 2, 3, 4}, "chain_sum@2": {2}}, greedy_items={"chain_sum@1": 10})  # 10/12
    first = measure_frontier(gen, "m", ["chain_sum@1"], SETTINGS, PROMPTS, TOP)
    stored = {r["family"]: r for r in first.to_dicts()}
    strict = SETTINGS.model_copy(update={"mastered": 0.9})
    again = skill({})
    second = measure_frontier(again, "m", ["chain_sum@1"], strict, PROMPTS, TOP, stored)
    assert (first["status"].to_list(), second["status"].to_list(), again.asked) == (
        ["mastered", "learnable"],
        ["learnable", "learnable"],
        [],
    )
