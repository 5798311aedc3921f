"""Worked rationales (PromptSettings.form = rationale): the steps shown, the steps checked, and
every place a model is asked, scored or trained reading the same form."""

import json
from collections.abc import Iterator, Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reasoning_gym.arithmetic.leg_counting import ANIMALS

from synth_assets.core.curate.curation import training_text_expr
from synth_assets.core.generators.generation import (
    RATIONALE_STOP,
    PromptSettings,
    Sample,
    SampleRequest,
    build_prompt,
)
from synth_assets.core.tasks.sources import reasoning_gym_dataset, reasoning_gym_tasks
from synth_assets.core.tasks.worked_steps import expression_steps, leg_steps, split_rationale
from synth_assets.core.training.evaluation import evaluate
from synth_assets.core.training.frontier import FrontierSettings, frontier_items, measure_level
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items
from synth_assets.core.training.prompt_format import training_pair
from synth_assets.core.verify.canaries import rationale_canaries
from synth_assets.core.verify.steps import wrong_steps
from synth_assets.core.verify.verification import verify_reasoning_gym

RATIONALE = PromptSettings(form="rationale")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-99, 99), min_size=2, max_size=5),
    st.lists(st.sampled_from(["+", "-", "*"]), min_size=4, max_size=4),
)
def test_the_steps_written_for_an_expression_all_check_and_end_at_its_value(numbers, ops):
    expression = " ".join(f"{n} {op}" for n, op in zip(numbers[:-1], ops, strict=False)) + f" {numbers[-1]}"
    steps = expression_steps(expression)
    assert wrong_steps("; ".join(steps)) == []
    assert int(steps[-1].rpartition(" = ")[2]) == eval(expression)


def test_a_wrong_step_is_found_among_text_and_things_that_are_not_steps():
    work = "3 spiders: 3 * 8 = 24; 24 + 6 = 31, so 31 = 31 and 2**3 = 8; 7 / 0 = 1"
    assert wrong_steps(work) == ["24 + 6 = 31", "7 / 0 = 1"]


def test_a_chain_of_equalities_checks_its_first_step_and_skips_the_bare_rest():
    assert (wrong_steps("3 + 4 = 7 + 5 = 12"), wrong_steps("3 + 4 = 8 + 5 = 13")) == ([], ["3 + 4 = 8"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ANIMALS)), st.integers(1, 15), min_size=1, max_size=6))
def test_the_leg_rationale_of_any_animals_checks_and_ends_at_the_total(animals):
    work = leg_steps(animals)
    assert wrong_steps(work) == []
    assert int(work.rpartition(" = ")[2]) == sum(n * ANIMALS[a] for a, n in animals.items())


def test_a_leg_lookup_that_disagrees_with_the_table_or_its_product_is_a_wrong_step():
    work = (
        "2 spiders: 6 legs each, 2 * 6 = 12; 3 ducks: 2 legs each, 4 * 2 = 8; 1 unicorn: 4 legs each, 1 * 4 = 4; "
        "2 cats: 4 legs each, 4 * 2 = 8"
    )
    assert wrong_steps(work) == ["2 spiders: 6 legs each, 2 * 6", "3 ducks: 2 legs each, 4 * 2"]


def test_a_right_leg_count_reached_by_a_wrong_lookup_is_not_a_pass():
    task = reasoning_gym_tasks(["leg_counting@1"], 1, 42).row(0, named=True)
    spec = json.loads(task["verifier_spec"])
    entry = reasoning_gym_dataset(spec["name"], spec["size"], spec["seed"], spec["config"])[spec["index"]]
    ((animal, n),) = entry["metadata"]["animals"].items()
    legs, total = ANIMALS[animal], task["answer"]
    right = f" {n} {animal}: {legs} legs each, {n} * {legs} = {total}\nAnswer: {total}"
    wrong = f" {n} {animal}: {legs + 1} legs each, {n} * {legs} = {total}\nAnswer: {total}"
    verdicts = [
        verify_reasoning_gym(task | {"completion": c, "prompt_template": "rationale_2of20shot_v1"}, 1.0)
        for c in (right, wrong)
    ]
    assert [v.verdict for v in verdicts] == ["pass", "fail"]


def test_a_leg_counting_prompt_in_rationale_form_shows_worked_lookups():
    asked = RATIONALE.ask("leg_counting@2", "How many legs are there in total if you have 2 cats?", "k1")
    works = [ln.removeprefix("Work: ") for ln in asked.prompt.splitlines() if ln.startswith("Work: ")]
    assert len(works) == 2 and all("legs each, " in w and wrong_steps(w) == [] for w in works)


def _task(family: str = "chain_sum@2") -> dict:
    return reasoning_gym_tasks([family], 1, 42).row(0, named=True)


def _verdict(completion: str, template: str = "rationale_2of20shot_v1"):
    return verify_reasoning_gym(_task() | {"completion": completion, "prompt_template": template}, 1.0)


def test_a_right_answer_after_a_wrong_step_is_not_a_pass():
    task = _task()
    spec = json.loads(task["verifier_spec"])
    assert (spec["name"], task["answer"]) == ("chain_sum", "7")  # the fixed item: 4 + 3
    right, wrong = _verdict(" 4 + 3 = 7\nAnswer: 7"), _verdict(" 4 + 3 = 8\nAnswer: 7")
    assert (right.verdict, right.extracted_answer) == ("pass", "7")
    assert (wrong.verdict, wrong.detail) == ("fail", "wrong step '4 + 3 = 8' (answer '7')")


def test_a_rationale_without_an_answer_line_fails_and_an_answer_prompt_reads_the_first_line():
    assert _verdict(" 4 + 3 = 7").verdict == "fail"
    assert _verdict(" 7\n4 + 3 = 8", template="answer_2of20shot_v2").verdict == "pass"


def test_a_rationale_prompt_shows_checked_worked_examples_and_ends_at_the_work():
    asked = RATIONALE.ask("chain_sum@2", "What is 98 + 93?", "k1")
    assert asked.prompt.endswith("Question: What is 98 + 93?\nWork:") and asked.stop == RATIONALE_STOP
    assert asked.template == "rationale_2of20shot_v1" and asked.max_tokens == RATIONALE.rationale_max_tokens
    works = [ln.removeprefix("Work: ") for ln in asked.prompt.splitlines() if ln.startswith("Work: ")]
    assert len(works) == 2 and all(w and wrong_steps(w) == [] for w in works)


def test_a_family_without_a_rationale_writer_stays_answer_only():
    asked = RATIONALE.ask("gcd@1", "What is the GCD of 4 and 6?", "k1")
    assert (asked.template, asked.prompt.endswith("\nAnswer:")) == ("answer_2of20shot_v2", True)


def test_each_mix_row_is_trained_in_the_form_it_was_written_in():
    rows = [
        {"prompt": "What is 4 + 3?", "response": "4 + 3 = 7\nAnswer: 7", "domain": "procedural"},
        {"prompt": "What is 5 + 1?", "response": "6", "domain": "procedural"},
    ]
    (p1, t1), (p2, t2) = (training_pair(r | {"family": "chain_sum@1"}, PromptSettings()) for r in rows)
    assert (p1.endswith("What is 4 + 3?\nWork:"), t1) == (True, " 4 + 3 = 7\nAnswer: 7\n\n")
    assert (p2.endswith("What is 5 + 1?\nAnswer:"), t2) == (True, " 6\n")


def test_a_rationale_row_is_kept_whole_as_training_text_and_an_answer_row_as_its_answer():
    df = pl.DataFrame(
        {
            "verifier": ["reasoning_gym", "reasoning_gym"],
            "prompt": ["q", "q"],
            "prompt_template": ["rationale_2of20shot_v1", "answer_2of20shot_v2"],
            "completion": [" 4 + 3 = 7\nAnswer: 7\n", " 7\n"],
            "extracted_answer": ["7", "7"],
        }
    )
    assert df.select(training_text_expr().alias("t"))["t"].to_list() == ["4 + 3 = 7\nAnswer: 7", "7"]


class RationaleDouble:
    """TEST DOUBLE generator: answers every request with ``text``; records the requests. No model."""

    name, model, terms = "rationale_double", "rationale-double-v1", "test double (no model)"

    def __init__(self, text: str) -> None:
        self.text, self.requests = text, []

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        for r in requests:
            self.requests.append(r)
            yield Sample(text=self.text, finish_reason="stop", prompt_tokens=1, completion_tokens=1, latency_s=0.0)


def test_held_out_items_in_rationale_form_are_asked_for_work_and_scored_on_the_answer():
    items = heldout_items(HeldoutSettings(families=["chain_sum@1"], levels_above=0, items_per_family=3), RATIONALE)
    items = items.filter(pl.col("variant") == "heldout").head(1)
    answer = items["answer"][0]
    double = RationaleDouble(f" 1 + 1 = 3\nAnswer: {answer}")  # a wrong step does not change the score
    scores = evaluate(double, "m", items)
    assert (double.requests[0].stop, scores["answer_given"][0], scores["correct"][0]) == (RATIONALE_STOP, answer, True)


def test_held_out_items_are_asked_within_the_budget_their_form_was_given():
    prompts = PromptSettings(form="rationale", rationale_max_tokens=96, answer_max_tokens=40)
    items = heldout_items(HeldoutSettings(families=["chain_sum@1"], levels_above=0, items_per_family=2), prompts)
    answer_only = heldout_items(
        HeldoutSettings(families=["chain_sum@1"], levels_above=0, items_per_family=2),
        PromptSettings(answer_max_tokens=40),
    )
    double = RationaleDouble("Answer: 1")
    evaluate(double, "m", pl.concat([items, answer_only]))
    assert sorted({r.max_tokens for r in double.requests}) == [40, 96]


def test_the_frontier_counts_a_sample_only_when_its_steps_check():
    fs = FrontierSettings(items_per_level=4, samples=2)
    item = frontier_items("chain_sum@1", fs, RATIONALE)[0]
    work, _ = split_rationale(item["prompt"])
    wrong = RationaleDouble(f" 1 + 1 = 3\nAnswer: {item['answer']}")
    row = measure_level(wrong, "m", "chain_sum@1", fs, RATIONALE)
    assert "Work:" in work and row["greedy_rate"] > 0 and (row["sample_rate"], row["pass_at_k"]) == (0.0, 0.0)


def test_build_prompt_follows_the_setting_and_the_override():
    task = _task()
    assert build_prompt(task, RATIONALE)[1] == "rationale_2of20shot_v1"
    assert build_prompt(task, RATIONALE, form="answer")[1] == "answer_2of20shot_v2"


@pytest.mark.parametrize("family", ["leg_counting@2", "products@2"])
def test_the_rationale_canaries_of_a_new_writer_hold_under_the_verifier(family):
    task = reasoning_gym_tasks([family], 1, 3).row(0, named=True)
    canaries = rationale_canaries(task)
    got = [(c.name, verify_reasoning_gym(c.row, 1.0).verdict) for c in canaries]
    assert got == [("worked rationale", "pass"), ("right answer after a wrong step", "fail")]
