"""The verifier canaries: every failure mode forced for real (a scorer double that passes
everything, bubblewrap gone under a running sandbox, a custom verifier without canaries and one
whose canaries disagree, a scorer of reasoning-gym's own that is too lenient), and the default
verifiers getting every canary right. One expected outcome per test."""

import json
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest

from synth_assets.core.generators.generation import CANDIDATE_SCHEMA
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.sources import DEFAULT_FAMILIES, conform, humaneval_tasks, reasoning_gym_tasks
from synth_assets.core.verify.canaries import (
    CANARY_SCHEMA,
    UNPROVEN,
    assess,
    build_canaries,
    math_forms,
    prove_verifiers,
)
from synth_assets.core.verify.custom_verifiers import CustomCanary, CustomVerifierSpec, build_verifiers
from synth_assets.core.verify.verification import CustomVerifierSettings, verify_candidates
from tests.doubles import register_pass_everything_double


def candidates(tasks: pl.DataFrame, completion: str = " 0") -> pl.DataFrame:
    """One candidate per task, shaped as raw_candidates: what prove_verifiers reads the tasks from."""
    rows = [
        {**t, "candidate_id": f"{t['task_id']}/0", "generation": 1, "completion": completion} for t in tasks.to_dicts()
    ]
    return conform(rows, CANDIDATE_SCHEMA)


def answer_tasks(verifier: str, answers: list[str]) -> pl.DataFrame:
    rows = [
        {"task_id": f"user/{verifier}/{i}", "family": verifier, "prompt": f"q{i}", "answer": a, "verifier": verifier}
        for i, a in enumerate(answers)
    ]
    return conform(rows, dict.fromkeys(("task_id", "family", "prompt", "answer", "verifier"), pl.String))


def custom_tasks(name: str) -> pl.DataFrame:
    return answer_tasks(f"custom:{name}", ["42", "7"])


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(workers=2)


def wrong(report: pl.DataFrame) -> list[tuple[str, str]]:
    return sorted(report.filter(pl.col("ok").not_()).select("verifier", "canary").iter_rows())


def test_the_default_verifiers_get_every_canary_right(box):
    tasks = pl.concat(
        [
            reasoning_gym_tasks(DEFAULT_FAMILIES, 3, 42),
            humaneval_tasks(2, 0.3, 0.2),
            answer_tasks("math", ["12", "0.5", "-3"]),  # the shapes synthesized tasks have
            answer_tasks("exact", ["blue whale", "Paris"]),
        ],
        how="diagonal",
    )
    report = prove_verifiers(candidates(tasks), box)
    assert (wrong(report), sorted(set(report["verifier"]))) == (
        [],
        [
            "exact_match",
            "math_verify",
            "python_tests",
            "reasoning_gym:basic_arithmetic",
            "reasoning_gym:chain_sum",
            "reasoning_gym:products",
            "reasoning_gym:projectile_design",
        ],
    )


def test_a_scorer_that_passes_everything_fails_its_wrong_answer_canaries(box):
    family = register_pass_everything_double()
    report = prove_verifiers(candidates(reasoning_gym_tasks([family], 2, 42)), box, items=1)
    name = f"reasoning_gym:{family}"
    assert wrong(report) == [
        (name, "another item's answer"),
        (name, "answer between two wrong ones"),
        (name, "empty answer"),
        (name, "off by one"),
    ]


def test_a_lenient_scorer_of_reasoning_gyms_own_is_caught(box):
    # number_sorting accepts every number within 1 of the right one: an answer off by one passes
    report = prove_verifiers(candidates(reasoning_gym_tasks(["number_sorting"], 2, 42)), box, items=1)
    assert wrong(report) == [("reasoning_gym:number_sorting", "off by one")]


@pytest.fixture
def bin_dir():
    """A PATH folder the sandbox's unprivileged uid can reach (pytest's tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="synth_bin_"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_bubblewrap_gone_under_a_running_sandbox_fails_every_code_canary_that_must_pass(bin_dir, monkeypatch):
    (bin_dir / "bwrap").symlink_to(shutil.which("bwrap"))
    monkeypatch.setenv("PATH", str(bin_dir))
    started = Sandbox(workers=1)  # finds bubblewrap, and its start-up check passes
    (bin_dir / "bwrap").unlink()  # then bubblewrap is uninstalled under the running job
    report = prove_verifiers(candidates(humaneval_tasks(1, 0.3, 0.2)), started, items=1)
    assert wrong(report) == [("python_tests", "adversary: never ends"), ("python_tests", "canonical solution")]


def test_a_custom_verifier_without_canaries_is_unproven(box):
    custom = build_verifiers([CustomVerifierSpec("answer", callable="tests.doubles:answer_matches_verifier")])
    report = prove_verifiers(candidates(custom_tasks("answer")), box, custom=custom)
    assert report.select("verifier", "canary", "actual").rows() == [("custom:answer", "no canaries declared", UNPROVEN)]


def test_a_custom_verifier_whose_canaries_disagree_is_caught(box):
    declared = (
        CustomCanary(" 42", "pass", answer="42", name="right"),
        CustomCanary(" 41", "fail", answer="42", name="wrong"),
    )
    spec = CustomVerifierSpec("lenient", callable="tests.doubles:pass_everything_verifier_double", canaries=declared)
    report = prove_verifiers(candidates(custom_tasks("lenient")), box, custom=build_verifiers([spec]))
    assert wrong(report) == [("custom:lenient", "declared bad: wrong")]


def test_a_custom_verifier_proven_by_canaries_in_a_file_beside_its_command(tmp_path, box):
    check = tmp_path / "check.py"
    check.write_text(
        "import json, sys\np = json.load(sys.stdin)\nsys.exit(0 if p['completion'].strip() == p['answer'] else 1)\n"
    )
    canaries = tmp_path / "check.canaries.jsonl"
    canaries.write_text(
        json.dumps({"completion": "42", "answer": "42", "expect": "pass"})
        + "\n"
        + json.dumps({"completion": "41", "answer": "42", "expect": "fail"})
        + "\n"
    )
    settings = CustomVerifierSettings(name="sim", command=["python3", str(check)], canaries_file=str(canaries))
    report = prove_verifiers(candidates(custom_tasks("sim")), box, custom=build_verifiers([settings.spec()]))
    assert report.select("canary", "actual", "ok").rows() == [
        ("declared good: line 1", "pass", True),
        ("declared bad: line 2", "fail", True),
    ]


def test_a_sign_set_apart_is_a_near_miss_the_math_verifier_rejects(box):
    # math-verify read "- 7" as 7, so a wrong sign passed: the canary that found it stays
    near = dict(math_forms("7")[1])
    report = prove_verifiers(candidates(answer_tasks("math", ["7"])), box)
    sign = report.filter(pl.col("canary") == "near miss: sign flipped").row(0, named=True)
    assert (near["sign flipped"], sign["actual"]) == ("- 7", "fail")


def test_a_latex_answer_without_delimiters_passes_its_true_answer_canary(box):
    # math-verify read "\\sqrt{2}" as nothing, so every candidate of such a task failed
    report = prove_verifiers(candidates(answer_tasks("math", ["\\sqrt{2}", "x^2+2x+1"])), box)
    assert wrong(report) == []


def test_with_the_sandbox_off_the_isolation_canary_is_unproven_not_run():
    report = prove_verifiers(candidates(humaneval_tasks(1, 0.3, 0.2)), Sandbox(enabled=False), items=1)
    off = report.filter(pl.col("actual") == UNPROVEN).select("verifier", "verifier_version", "canary").rows()
    assert off == [("python_tests", "UNSANDBOXED", "adversary: reads a host secret")]


def test_every_canary_goes_through_the_production_verifiers(box):
    # the same rows through verify_candidates directly give the same verdicts as the report
    tasks = pl.concat([reasoning_gym_tasks(["gcd"], 2, 42), answer_tasks("exact", ["Paris", "Rome"])], how="diagonal")
    built, _ = build_canaries(candidates(tasks), 1, {}, None)
    direct = verify_candidates(
        conform([{**c.row, "candidate_id": str(i)} for i, c in enumerate(built)], CANDIDATE_SCHEMA), box
    )
    report = prove_verifiers(candidates(tasks), box, items=1)
    assert report["actual"].to_list() == direct["verdict"].to_list()


def test_the_assessment_recomputes_ok_rather_than_trusting_it():
    stored = conform(
        [
            {
                "verifier": "exact_match",
                "verifier_version": "1",
                "canary": "true answer",
                "expected": "pass",
                "actual": "fail",
                "ok": True,  # a bug in the producer: the check must not believe it
            }
        ],
        CANARY_SCHEMA,
    )
    verdicts = pl.DataFrame({"verifier": ["exact"], "verifier_name": ["exact_match"], "verifier_version": ["1"]})
    assert assess(stored, verdicts).wrong["canary"].to_list() == ["true answer"]


def test_with_canaries_off_every_verifier_used_is_unproven():
    verdicts = pl.DataFrame(
        {
            "verifier": ["reasoning_gym", "judge"],
            "verifier_name": ["reasoning_gym:gcd", "llama_cpp"],
            "verifier_version": ["0.1", "1"],
        }
    )
    a = assess(pl.DataFrame(schema=CANARY_SCHEMA), verdicts)
    assert (a.unproven, a.judges) == (["reasoning_gym:gcd: no canary ran for it"], ["llama_cpp"])
