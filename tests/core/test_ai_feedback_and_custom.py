"""LLM judge, constitutional revision, preference pairs and custom verifiers."""

import json
import re
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.curate.preferences import preference_pairs
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import CANDIDATE_SCHEMA, Sample
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.sources import conform, user_tasks
from synth_assets.core.verify.ai_feedback import DEFAULT_RUBRIC, Constitution, Judge, parse_score, read_text_file
from synth_assets.core.verify.custom_verifiers import CustomVerifierSpec, build_verifiers
from synth_assets.core.verify.verification import VERDICT_SCHEMA, revise_failures, verify_candidates


class ScriptedGeneratorDouble:
    """Test double: replies with canned texts in turn, so parsing and plumbing can be pinned down."""

    name, model = "scripted_double", "scripted-double"

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def generate(self, requests):
        for r in requests:
            self.prompts.append(r.prompt)
            yield Sample(self.replies.pop(0), "stop", 10, 2, 0.001)


def cands(rows):
    base = {"generation": 1, "family": "f", "sample_index": 0, "generation_key": "k", "completion": ""}
    return conform([{**base, "candidate_id": f"c{i}", **r} for i, r in enumerate(rows)], CANDIDATE_SCHEMA)


@pytest.mark.parametrize("text, score", [(" 8", 8), ("10/10", 10), ("score: 3 of 10", 3), ("great!", None)])
def test_judge_score_parsing(text, score):
    assert parse_score(text) == score


def test_judge_decides_judge_tasks_and_unparsable_replies_are_errors():
    judge = Judge(ScriptedGeneratorDouble([" 9", " 2", " n/a"]), "rubric text")
    df = cands(
        [
            {"task_id": t, "verifier": "judge", "prompt": "write a haiku", "completion": c}
            for t, c in (("a", "good"), ("b", "bad"), ("c", "?"))
        ]
    )
    out = verify_candidates(df, Sandbox(), judge=judge, judge_threshold=0.6)
    assert out["verdict"].to_list() == ["pass", "fail", "error"]
    assert out["judge_score"][0] == pytest.approx(8 / 9) and out["verifier_name"][0] == "llm_judge:scripted-double"
    assert "rubric text" in judge.generator.prompts[0] and "write a haiku" in judge.generator.prompts[0]


def test_judge_tasks_without_a_judge_name_the_setting():
    with pytest.raises(SynthConfigError, match="verified_set.judge.enabled"):
        verify_candidates(cands([{"task_id": "a", "verifier": "judge", "prompt": "p"}]), Sandbox())


def test_revision_is_verified_again_with_the_task_verifier():
    double = ScriptedGeneratorDouble(["It breaks principle 2: the sum is wrong.", " 4"])
    verified = verify_candidates(
        cands(
            [
                {
                    "task_id": "t",
                    "verifier": "exact",
                    "answer": "4",
                    "prompt": "2+2?",
                    "completion": " 5",
                    "prompt_template": "answer_v1",
                }
            ]
        ),
        Sandbox(),
    )
    assert verified["verdict"].to_list() == ["fail"]
    rev = revise_failures(verified, Constitution(double, "1. Be correct."), Sandbox(), max_revisions=5)
    assert rev["verdict"].to_list() == ["pass"] and rev["revision_of"].to_list() == ["c0"]
    assert rev["candidate_id"][0] == "c0/rev1" and "principle 2" in rev["critique"][0]
    assert rev["prompt_template"][0] == "constitutional_revision_v1"
    assert "Critique:" in double.prompts[1] and "the sum is wrong" in double.prompts[1]


@pytest.mark.model
def test_real_model_judges_and_revises():
    gen = LlamaCppGenerator()
    # the shipped rubric's worked examples teach even the 270M base model the reply's format
    [result] = Judge(gen, read_text_file(None, DEFAULT_RUBRIC, "rubric")).score([("What is 2 + 2?", "4")])
    assert re.fullmatch(r"10|[1-9]", result.raw) and result.score == (int(result.raw) - 1) / 9
    # no stop sequence: the revision runs into its token limit (the critique-and-revise prompt was evaluated)
    [rev] = Constitution(gen, "1. Answer with a number only.", max_tokens=8).revise([("2+2?", "five", ())])
    assert rev.critique and rev.sample.prompt_tokens > 20
    assert (rev.sample.finish_reason, rev.sample.completion_tokens) == ("length", 8)


# ------------------------------------------------------------------ custom verifiers
def register_module(tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text(
        textwrap.dedent("""
        import time
        def is_upper(row):
            return row["completion"].strip().isupper()
        def partial(row):
            return {"score": len(row["completion"]) / 10, "detail": "length-based"}
        def slow(row):
            time.sleep(5)
            return True
        def broken(row):
            raise RuntimeError("simulator crashed")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_custom_callable_and_command_verifiers(tmp_path, monkeypatch):
    register_module(tmp_path, monkeypatch)
    script = tmp_path / "checker.py"
    script.write_text(
        "import json, sys\nrow = json.load(sys.stdin)\n"
        "ok = row['completion'].strip() == row['answer']\n"
        "print(json.dumps({'score': float(ok), 'detail': 'compared'}))\nsys.exit(0 if ok else 1)\n"
    )
    custom = build_verifiers(
        [
            CustomVerifierSpec("upper", callable="my_checks:is_upper"),
            CustomVerifierSpec("partial", callable="my_checks:partial", pass_threshold=0.5),
            CustomVerifierSpec("slow", callable="my_checks:slow", timeout_s=0.5),
            CustomVerifierSpec("broken", callable="my_checks:broken"),
            CustomVerifierSpec("sim", command=(sys.executable, str(script)), timeout_s=10),
            CustomVerifierSpec("hang", command=("sleep", "30"), timeout_s=0.5),
        ]
    )
    df = cands(
        [
            {"task_id": "1", "verifier": "custom:upper", "completion": "YES"},
            {"task_id": "2", "verifier": "custom:upper", "completion": "no"},
            {"task_id": "3", "verifier": "custom:partial", "completion": "abc"},
            {"task_id": "4", "verifier": "custom:slow", "completion": "x"},
            {"task_id": "5", "verifier": "custom:broken", "completion": "x"},
            {"task_id": "6", "verifier": "custom:sim", "completion": " 42", "answer": "42"},
            {"task_id": "7", "verifier": "custom:sim", "completion": "41", "answer": "42"},
            {"task_id": "8", "verifier": "custom:hang", "completion": "x"},
        ]
    )
    out = verify_candidates(df, Sandbox(), custom=custom)
    assert out["verdict"].to_list() == ["pass", "fail", "fail", "timeout", "error", "pass", "fail", "timeout"]
    assert out["score"][2] == pytest.approx(0.3) and "simulator crashed" in out["verdict_detail"][4]
    assert out["verifier_name"][5] == "custom:sim" and "checker.py" in out["verifier_version"][5]
    # the verifiers' own limits ended the 5 s sleep and the 30 s command
    assert [out["verdict_detail"][i] for i in (3, 7)] == ["callable exceeded 0.5s", "command exceeded 0.5s"]


def test_custom_verifier_configuration_errors(tmp_path, monkeypatch):
    register_module(tmp_path, monkeypatch)
    with pytest.raises(SynthConfigError, match=r"custom_verifiers\[x\].callable: cannot import 'nope:f'"):
        build_verifiers([CustomVerifierSpec("x", callable="nope:f")])
    with pytest.raises(SynthConfigError, match="exactly one of 'callable' or 'command'"):
        build_verifiers([CustomVerifierSpec("x")])
    with pytest.raises(SynthConfigError, match="no such verifier is configured"):
        verify_candidates(cands([{"task_id": "a", "verifier": "custom:missing"}]), Sandbox(), custom={})


def test_user_tasks_may_name_custom_and_judge_verifiers(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"task_id": "a", "prompt": "p", "verifier": "custom:sim"},
                {"task_id": "b", "prompt": "q", "verifier": "judge"},
            ]
        )
    )
    assert user_tasks(p)["verifier"].to_list() == ["custom:sim", "judge"]


# ------------------------------------------------------------------ preference pairs
verdict_rows = st.lists(
    st.fixed_dictionaries(
        {
            "task_id": st.sampled_from(["a", "b"]),
            "verdict": st.sampled_from(["pass", "fail", "timeout"]),
            "score": st.sampled_from([0.0, 0.5, 1.0]),
            "completion": st.sampled_from(["x", "y", "z", "w"]),
        }
    ),
    max_size=20,
)


@given(verdict_rows)
@settings(max_examples=100, deadline=None)
def test_pairs_are_always_strictly_better_over_worse_for_one_task(rows):
    df = conform(
        [{"candidate_id": f"c{i}", "generation": 1, "family": "f", "prompt": "p", **r} for i, r in enumerate(rows)],
        VERDICT_SCHEMA,
    )
    pairs = preference_pairs(df, max_pairs_per_task=2)
    by_id = {r["candidate_id"]: r for r in df.to_dicts()}
    for p in pairs.iter_rows(named=True):
        c, r = by_id[p["chosen_candidate_id"]], by_id[p["rejected_candidate_id"]]
        assert c["task_id"] == r["task_id"] == p["task_id"]
        assert (c["verdict"] == "pass", c["score"]) > (r["verdict"] == "pass", r["score"])
        assert c["completion"] != r["completion"]
    assert (pairs.group_by("task_id").len()["len"] <= 2).all() if pairs.height else True
