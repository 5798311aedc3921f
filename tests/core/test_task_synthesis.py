"""Task synthesis: each gate on its own, with a named test double for the generator (the whole
path through the assets: tests/dagster/test_task_synthesis_assets.py, and with the embedded
model: tests/integration/test_pipeline.py)."""

import json

import polars as pl
import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from synth_assets.core.synthesis.task_synthesis import (
    SynthesisSettings,
    parse_function,
    self_consistency,
    synthesize_tasks,
)
from synth_assets.core.tasks.sources import TASK_SCHEMA, conform
from tests.doubles import RuleGeneratorDouble


def seeds():
    return conform(
        [
            {
                "task_id": "s1",
                "source": "reasoning_gym",
                "family": "basic_arithmetic",
                "domain": "procedural",
                "prompt": "What is 3 + 4?",
                "answer": "7",
                "verifier": "reasoning_gym",
                "license": "Apache-2.0",
            },
            {
                "task_id": "s2",
                "source": "reasoning_gym",
                "family": "basic_arithmetic",
                "domain": "procedural",
                "prompt": "What is 10 - 6?",
                "answer": "4",
                "verifier": "reasoning_gym",
                "license": "Apache-2.0",
            },
        ],
        TASK_SCHEMA,
    )


def answers_by_sample(mapping):
    """The consistency samples differ by seed; return answers in turn per question."""
    state = {}

    def reply(r):
        q = r.prompt.rsplit("Question:", 1)[1].split("\nAnswer:")[0].strip()
        i = state.get(q, 0)
        state[q] = i + 1
        return " " + mapping[q][i % len(mapping[q])]

    return reply


def only(*methods: str) -> SynthesisSettings:
    """One proposal per method, five consistency samples."""
    return SynthesisSettings(proposals_per_method=1, methods=list(methods), consistency_samples=5)


def run(gen, settings, existing=None, held=(), sandbox=None, thin=()):
    existing = existing if existing is not None else seeds().select("prompt")
    return synthesize_tasks(seeds(), existing, list(held), gen, sandbox, settings, thin_families=thin)


def test_self_consistency_keeps_the_majority_answer_with_its_agreement():
    gen = RuleGeneratorDouble(
        [
            (r"Write one new question", lambda r: " What is 12 + 30?"),
            (r"Answer each question", answers_by_sample({"What is 12 + 30?": ["42", "42", "41", "42", "42"]})),
        ]
    )
    out = run(gen, only("new_task"))
    row = out.row(0, named=True)
    assert row["status"] == "accepted" and row["answer"] == "42" and row["agreement"] == 0.8
    assert row["verifier"] == "math" and row["source"] == "synthesized" and row["seed_task_id"] == "s1"
    assert json.loads(row["gates"])["self_consistency"]["answers"] == ["42", "42", "41", "42", "42"]
    assert row["generator"] == "rule_double" and row["method"] == "new_task"


def test_no_majority_is_rejected_with_its_reason():
    gen = RuleGeneratorDouble(
        [
            (r"Write one new question", lambda r: " What is 12 + 30?"),
            (r"Answer each question", answers_by_sample({"What is 12 + 30?": ["1", "2", "3", "42", "42"]})),
        ]
    )
    row = run(gen, only("new_task")).row(0, named=True)
    assert row["status"] == "rejected" and row["reject_reason"] == "no_consistent_answer"


def test_a_paraphrase_must_keep_its_seeds_answer():
    gen = RuleGeneratorDouble(
        [
            (r"Rewrite the question in other words", lambda r: " Add three and four."),
            (r"Answer each question", answers_by_sample({"Add three and four.": ["8"]})),
        ]
    )
    row = run(gen, only("paraphrase")).row(0, named=True)
    assert row["reject_reason"] == "paraphrase_changed_answer"
    gen = RuleGeneratorDouble(
        [
            (r"Rewrite the question in other words", lambda r: " Add three and four."),
            (r"Answer each question", answers_by_sample({"Add three and four.": ["7"]})),
        ]
    )
    assert run(gen, only("paraphrase")).row(0, named=True)["status"] == "accepted"


def test_novelty_and_decontamination_gates():
    copy = RuleGeneratorDouble(
        [
            (r"Write one new question", lambda r: " What is 3 + 4?"),
            (r"Answer each question", lambda r: " 7"),
        ]
    )
    assert run(copy, only("new_task")).row(0, named=True)["reject_reason"] == "not_novel"
    held = "def secret(xs): return the sum of all the even values in the list that are greater than ten please"
    leak = RuleGeneratorDouble(
        [
            (r"Write one new question", lambda r: " " + held),
            (r"Answer each question", lambda r: " 7"),
        ]
    )
    row = run(leak, only("new_task"), held=[held]).row(0, named=True)
    assert row["reject_reason"] == "contaminated_heldout"


def test_edge_cases_come_from_thin_families():
    gen = RuleGeneratorDouble(
        [(r"Write one new question", lambda r: " What is 99 - 1?"), (r"Answer each question", lambda r: " 98")]
    )
    out = run(gen, only("edge_case"), thin=["basic_arithmetic"])
    assert out["method"].to_list() == ["edge_case"] and out["status"][0] == "accepted"
    assert run(gen, only("edge_case"), thin=[]).height == 0  # no coverage history: nothing to target


def code_seeds():
    return conform(
        [
            {
                "task_id": "HumanEval/0",
                "source": "humaneval",
                "family": "humaneval",
                "domain": "code",
                "prompt": 'def inc(x: int) -> int:\n    """Return x plus one. >>> inc(1)\n    2\n    """\n',
                "verifier": "python_tests",
                "license": "MIT",
            }
        ],
        TASK_SCHEMA,
    )


FUNC = ' add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n'


def code_gen(solutions):
    state = {"i": 0}

    def sol(r):
        s = solutions[state["i"] % len(solutions)]
        state["i"] += 1
        return s

    return RuleGeneratorDouble(
        [
            (r"^# Python functions", lambda r: FUNC),
            (
                r"def check\(candidate\):\n    assert candidate\($",
                lambda r: "1, 2) == 3\n    assert candidate(2, 2) == 4\n",
            ),
            (r'"""\n$', sol),
        ]
    )


@pytest.fixture(scope="module")
def box():
    return Sandbox(SandboxLimits(timeout_s=10))


def test_code_task_is_kept_when_solutions_pass_its_tests(box):
    s = SynthesisSettings(proposals_per_method=1, methods=["code_task"], solutions_per_task=3, min_passing_solutions=2)
    out = synthesize_tasks(
        code_seeds(),
        code_seeds().select("prompt"),
        [],
        code_gen(["    return a + b\n", "    return b + a\n", "    return a - b\n"]),
        box,
        s,
    )
    row = out.row(0, named=True)
    assert row["status"] == "accepted", row["gates"]
    spec = json.loads(row["verifier_spec"])
    assert spec["entry_point"] == "add" and "assert candidate(2, 2) == 4" in spec["test"]
    assert spec["reference_solution"].strip() in ("return a + b", "return b + a")
    assert json.loads(row["gates"])["tests_vs_solutions"]["passing"] == 2 and row["agreement"] == pytest.approx(2 / 3)


def test_code_task_whose_solutions_fail_its_tests_is_rejected(box):
    s = SynthesisSettings(proposals_per_method=1, methods=["code_task"], solutions_per_task=2, min_passing_solutions=2)
    out = synthesize_tasks(
        code_seeds(), code_seeds().select("prompt"), [], code_gen(["    return a - b\n", "    return 0\n"]), box, s
    )
    assert out.row(0, named=True)["reject_reason"] == "solutions_disagree_with_tests"


def test_parse_function_and_consistency_helpers():
    assert parse_function(FUNC) == ('def add(a: int, b: int) -> int:\n    """Return the sum of a and b."""\n', "add")
    assert parse_function(" broken(:\n") is None
    assert self_consistency(["4", " 4", "5"]) == ("4", pytest.approx(2 / 3))
    with pytest.raises(SynthConfigError, match="synthesized_tasks.methods"):
        SynthesisSettings(methods=["magic"]).validate()


# ------------------------------------------------------------------ no wrong answer through agreement alone (issue 17)
@pytest.mark.parametrize(
    "question, wrong, right",
    [
        ("Find the Greatest Common Divisor (GCD) of these numbers: 532, 656.", "2", "4"),  # the README's own example
        ('How many times does the letter "e" appear in the text: "the tree here"?', "10", "5"),
        ("What is 37 + 48 - 19?", "56", "66"),
    ],
)
def test_a_consistently_wrong_reference_is_rejected_by_a_program(question, wrong, right):
    def proposals(answer):
        return RuleGeneratorDouble(
            [(r"Write one new question", lambda r: " " + question), (r"Answer each question", lambda r: " " + answer)]
        )

    row = run(proposals(wrong), only("new_task")).row(0, named=True)
    assert (row["status"], row["reject_reason"]) == ("rejected", "reference_mismatch")
    check = json.loads(row["gates"])["program_check"]
    assert (check["expected"], check["majority"], check["agrees"]) == (right, wrong, False)
    ok = run(proposals(right), only("new_task")).row(0, named=True)
    assert ok["status"] == "accepted" and ok["reference_check"].startswith("program: ")


def test_a_question_no_program_reads_is_marked_unverified_and_sampled_for_review():
    from synth_assets.core.curate.review import flag_rows

    gen = RuleGeneratorDouble(
        [
            (r"Write one new question", lambda r: " Which planet is known as the red planet?"),
            (r"Answer each question", lambda r: " Mars"),
        ]
    )
    row = run(gen, only("new_task")).row(0, named=True)
    assert (row["status"], row["reference_check"]) == ("accepted", "unverified_reference")
    filtered = pl.DataFrame(
        {
            "candidate_id": ["c1", "c2", "c3"],
            "generation": [1, 1, 1],
            "task_id": [row["task_id"], row["task_id"], "other"],
            "family": ["f"] * 3,
            "prompt": ["q"] * 3,
            "training_text": ["Mars"] * 3,
            "judge_score": [None] * 3,
        }
    )
    queue = flag_rows(filtered, spot_checks_per_family=0, judge_threshold=0.5, unverified_tasks={row["task_id"]})
    assert queue["flag_reason"].to_list() == ["unverified_reference"]
    assert queue["task_id"].to_list() == [row["task_id"]]


def test_a_question_too_deep_for_the_arithmetic_reader_is_left_unverified_not_a_crash():
    from synth_assets.core.tasks.reference_check import check_reference

    assert check_reference("basic_arithmetic", "What is " + " + ".join(["1"] * 3000) + "?", "3000") is None
