"""The judge's calibration: agreement with the verifiers, and each bias forced by a named judge
double with a known flaw, so every figure and reason is one expected outcome."""

import re
from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.generators.generation import Sample
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.sources import REFERENCE_SCHEMA, conform
from synth_assets.core.verify.ai_feedback import Judge
from synth_assets.core.verify.judge_calibration import CalibrationSettings, calibrate, distrust_settled, kappa
from synth_assets.core.verify.verification import VERDICT_SCHEMA
from synth_assets.resources import GeneratorResource

_RESPONSE = re.compile(r"Response:\n(.*)\n\nScore \(1-10\):$", re.S)
_PAIR = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nThe better response is Response$", re.S)


def _last_item(prompt: str, head: str) -> str:
    """The item being judged: the prompt from its last task on (the rubric may hold worked examples)."""
    return head + prompt.rsplit(head, 1)[1]


class JudgeRuleDouble:
    """TEST DOUBLE judge: scores a response with ``score(text) -> 1..10`` and picks between two
    with ``choose(a, b) -> "A" | "B"``; no model. ``model`` names the generator it 'is'."""

    name = "judge_double"

    def __init__(self, score: Callable[[str], int], choose: Callable[[str, str], str], model: str = "gen-A") -> None:
        self.score, self.choose, self.model = score, choose, model

    def generate(self, requests):
        for r in requests:
            if r.prompt_template == "judge_v1":
                text = f" {self.score(_RESPONSE.search(_last_item(r.prompt, 'Response:')).group(1))}"
            else:
                a, b = _PAIR.search(_last_item(r.prompt, "Response A:")).groups()
                text = f" {self.choose(a, b)}"
            yield Sample(text, "stop", 1, 1, 0.0)


def oracle_score(text: str) -> int:
    return 9 if "RIGHT" in text else 2


def oracle_choice(a: str, b: str) -> str:
    return "A" if "RIGHT" in a else "B"


def verified(n_tasks: int = 12, writers: tuple[str, ...] = ("gen-A",), lengths: bool = False) -> pl.DataFrame:
    """Per task one right and one wrong candidate of each writer (families alternate)."""
    rows = []
    for t in range(n_tasks):
        for w in writers:
            for ok in (True, False):
                pad = " and more words" * (t % 6) if lengths else ""
                rows.append(
                    {
                        "candidate_id": f"{w}/{t}/{ok}",
                        "generation": 1,
                        "task_id": f"t{t}",
                        "family": ("gcd", "letter_counting")[t % 2],
                        "prompt": f"Task {t}?",
                        "completion": f"{'RIGHT' if ok else 'WRONG'} {w}-STYLE{pad}",
                        "verifier": "reasoning_gym",
                        "verdict": "pass" if ok else "fail",
                        "score": float(ok),
                        "model": w,
                        "generator": "llama_cpp",
                    }
                )
    return conform(rows, VERDICT_SCHEMA)


def human(n: int = 6) -> pl.DataFrame:
    return conform(
        [
            {
                "ref_id": f"h{i}",
                "source": "human",
                "family": "human",
                "domain": "text",
                "prompt": f"Q{i}?",
                "response": f"RIGHT human answer {i}",
                "license": "CC0",
            }
            for i in range(n)
        ],
        REFERENCE_SCHEMA,
    )


SETTINGS = CalibrationSettings(rows_per_cell=20, human_rows=6, pairs=12)


def run(double: JudgeRuleDouble, frame: pl.DataFrame | None = None, s: CalibrationSettings = SETTINGS):
    return calibrate(Judge(double, "Rate the response."), verified() if frame is None else frame, human(), 1, s)


def test_a_judge_that_agrees_with_the_verifiers_is_trusted():
    cal = run(JudgeRuleDouble(oracle_score, oracle_choice))
    assert (cal.trusted, cal.reasons) == (True, [])
    s = cal.summary
    assert (s["accuracy"], s["kappa"], s["flip_rate"], s["scored"]) == (1.0, 1.0, 0.0, 12 * 2 + 6)
    assert s["accuracy_ci"][0] > 0.88 and s["pairs_answered"] == 12
    assert cal.per_family["accuracy"].to_list() == [1.0, 1.0, 1.0]  # gcd, human, letter_counting


def test_a_judge_that_follows_the_position_is_caught():
    cal = run(JudgeRuleDouble(oracle_score, lambda _a, _b: "A"))
    assert cal.summary["flip_rate"] == 1.0 and not cal.trusted
    assert cal.reasons == ["100% of 12 pairs flip with the order shown (max_flip_rate 20%)"]
    assert cal.pairs["flipped"].to_list() == [True] * 12


def test_a_judge_that_passes_everything_has_no_agreement_beyond_chance():
    full = CalibrationSettings(**(SETTINGS.model_dump() | {"stop_when_settled": False}))
    cal = run(JudgeRuleDouble(lambda _t: 10, oracle_choice), s=full)
    assert cal.summary["kappa"] == 0.0 and cal.summary["accuracy"] == round(18 / 30, 4)
    assert [r.split(" (")[0] for r in cal.reasons] == ["agreement with the verifiers 0.60", "Cohen's kappa 0.00"]


def test_a_judge_that_rewards_length_at_equal_correctness_is_caught():
    def by_length(text: str) -> int:  # right answers pass, and longer ones score higher either way
        return min(10, (6 if "RIGHT" in text else 1) + text.count("more"))

    cal = run(
        JudgeRuleDouble(by_length, oracle_choice),
        verified(lengths=True),
        CalibrationSettings(rows_per_cell=20, human_rows=0, pairs=12),
    )
    assert cal.summary["length_rho_worst"] > 0.9
    assert len(cal.reasons) == 1 and cal.reasons[0].startswith("score follows length at equal correctness")


def test_a_judge_that_prefers_its_own_generator_is_caught():
    def own_first(text: str) -> int:
        return 1 if "WRONG" in text else 10 if "gen-A-STYLE" in text else 8

    cal = run(
        JudgeRuleDouble(own_first, oracle_choice, model="gen-A"),
        verified(writers=("gen-A", "gen-B")),
        CalibrationSettings(rows_per_cell=40, human_rows=0, pairs=12),
    )
    sp = cal.summary["self_preference"]
    assert (sp["lead"], sp["other"], sp["own_rows"], sp["other_rows"]) == (round(2 / 9, 4), "another generator", 12, 12)
    assert len(cal.reasons) == 1 and cal.reasons[0].startswith("it scores its own generator's correct rows 0.22 higher")


class CountingJudgeDouble(JudgeRuleDouble):
    """TEST DOUBLE judge (JudgeRuleDouble) that counts the prompts it was asked."""

    asked = 0

    def generate(self, requests):
        requests = list(requests)
        self.asked += len(requests)
        yield from super().generate(requests)


def test_scoring_stops_once_distrust_is_settled_and_the_verdict_is_the_full_samples():
    """A judge that passes everything gets 16 rows wrong in 6-7 of 16: agreement's lower bound
    cannot reach 0.7 over 30 rows whatever the other 14 say, so it stops after one chunk and asks
    no pairs; scoring everything reaches the same verdict."""
    early = CountingJudgeDouble(lambda _t: 10, oracle_choice)
    cal = run(early)
    full_judge = CountingJudgeDouble(lambda _t: 10, oracle_choice)
    full = run(full_judge, s=CalibrationSettings(**(SETTINGS.model_dump() | {"stop_when_settled": False})))
    assert (early.asked, cal.rows.height, cal.pairs.height, cal.trusted) == (16, 16, 0, False)
    assert cal.summary["stopped_early"].startswith("after 16 of 30 rows")
    assert (full_judge.asked, full.trusted) == (30 + 2 * 12, False)


def test_a_judge_that_agrees_is_scored_on_every_row():
    judge = CountingJudgeDouble(oracle_score, oracle_choice)
    cal = run(judge)
    assert (judge.asked, "stopped_early" in cal.summary) == (30 + 2 * 12, False)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 120), st.integers(0, 120), st.integers(0, 120), st.floats(0.3, 0.95))
def test_settled_distrust_holds_for_every_way_the_rest_could_go(agree, extra, remaining, min_accuracy):
    scored = agree + extra  # ``extra`` rows disagreed
    if distrust_settled(agree, scored, remaining, min_accuracy):
        for more in range(remaining + 1):
            assert wilson(agree + more, scored + remaining)[0] < min_accuracy


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=60))
def test_kappa_is_symmetric_bounded_and_one_on_agreement(pairs):
    a = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    k = kappa(a, b)
    assert k == pytest.approx(kappa(b, a)) and -1.0 - 1e-9 <= k <= 1.0 + 1e-9
    if 0 < a.sum() < len(a):
        assert kappa(a, a) == pytest.approx(1.0)


class JudgeDoubleResource(GeneratorResource):
    """TEST DOUBLE resource: a judge double that always answers "A" when asked to compare."""

    def build(self) -> JudgeRuleDouble:
        return JudgeRuleDouble(oracle_score, lambda _a, _b: "A")


def test_the_asset_reports_and_its_check_warns_with_the_reasons():
    from synth_assets.assets.judging import JudgeCalibrationConfig, judge_calibration

    ctx = dg.build_asset_context(partition_key="1")
    out, check = list(judge_calibration(ctx, JudgeCalibrationConfig(), verified(), human(), JudgeDoubleResource()))
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert (
        "judge-only verdicts go to the review queue" in check.description and "flip with the order" in check.description
    )
    assert out.metadata["trusted"].value is False and out.value["trusted"].unique().to_list() == [False]
    assert "data:image/png;base64," in out.metadata["agreement_chart"].value


def _filtered(verifiers: list[str]) -> pl.DataFrame:
    return conform(
        [
            {
                "candidate_id": f"c{i}",
                "generation": 1,
                "task_id": f"t{i}",
                "family": "poems",
                "verifier": v,
                "verdict": "pass",
                "score": 0.9,
                "completion": f"text {i}",
            }
            for i, v in enumerate(verifiers)
        ],
        VERDICT_SCHEMA,
    )


def test_an_untrusted_judge_sends_its_verdicts_to_review_and_out_of_the_mix():
    from synth_assets.core.curate.review import JUDGE_UNTRUSTED, apply_decisions, flag_rows

    rows = _filtered(["judge", "judge", "reasoning_gym"])
    queue = flag_rows(rows, spot_checks_per_family=0, judge_threshold=0.0, judge_trusted=False)
    assert queue.select("candidate_id", "flag_reason").rows() == [("c0", JUDGE_UNTRUSTED), ("c1", JUDGE_UNTRUSTED)]
    # the default policy (exclude_rejected) still holds them back until a person accepts one
    keep, n_rej, n_held = apply_decisions(
        rows, {"c1": "accept"}, set(queue["candidate_id"]), False, must_accept=set(queue["candidate_id"])
    )
    assert (keep["candidate_id"].to_list(), n_rej, n_held) == (["c1", "c2"], 0, 1)


def test_a_trusted_judge_flags_nothing_for_itself():
    from synth_assets.core.curate.review import flag_rows

    queue = flag_rows(_filtered(["judge", "judge"]), spot_checks_per_family=0, judge_threshold=0.0, judge_trusted=True)
    assert queue.height == 0


def test_review_queue_reads_the_calibration_and_an_empty_one_is_not_trust():
    from synth_assets.assets.pipeline import ReviewQueueConfig, review_queue
    from synth_assets.core.curate.review import DECISION_SCHEMA
    from synth_assets.core.verify.judge_calibration import CALIBRATION_SCHEMA

    ctx = dg.build_asset_context(partition_key="1")
    empty = conform([], CALIBRATION_SCHEMA)
    res = review_queue(
        ctx,
        ReviewQueueConfig(spot_checks_per_family=0),
        _filtered(["judge"]),
        conform([], DECISION_SCHEMA),
        pl.DataFrame({"task_id": []}),
        empty,
    )
    assert res.value["flag_reason"].to_list() == ["judge_untrusted"]


def _judge_pairs() -> pl.DataFrame:
    """Two tasks whose candidates all passed: only the judge's scores order them."""
    from synth_assets.core.curate.preferences import preference_pairs

    rows = []
    for t in range(2):
        for ok in (True, False):
            rows.append(
                {
                    "candidate_id": f"{t}/{ok}",
                    "generation": 1,
                    "task_id": f"t{t}",
                    "family": "poems",
                    "prompt": f"Write line {t}.",
                    "completion": "RIGHT line" if ok else "WRONG line",
                    "verifier": "judge",
                    "verdict": "pass",
                    "score": 0.9,
                    "judge_score": 0.9 if ok else 0.7,
                }
            )
    return preference_pairs(conform(rows, VERDICT_SCHEMA))


@pytest.mark.parametrize(
    "choose, trusted, expected",
    [
        (oracle_choice, True, ([True, True], [None, None])),
        (lambda _a, _b: "A", True, ([False, False], ["position_flip", "position_flip"])),
        (oracle_choice, False, ([None, None], ["judge_untrusted", "judge_untrusted"])),
    ],
)
def test_judge_ordered_pairs_are_shown_in_both_orders(choose, trusted, expected):
    from synth_assets.core.curate.preferences import check_judge_pairs

    pairs = _judge_pairs()
    assert pairs["basis"].to_list() == ["judge_score", "judge_score"]
    judge = Judge(JudgeRuleDouble(oracle_score, choose), "Rate the response.")
    out = check_judge_pairs(pairs, judge if trusted else None, trusted)
    assert (out["orders_agree"].to_list(), out["drop_reason"].to_list()) == expected


def test_pairs_a_program_decided_need_no_judge():
    from synth_assets.core.curate.preferences import check_judge_pairs, preference_pairs

    pairs = preference_pairs(verified(n_tasks=2))
    out = check_judge_pairs(pairs, None, judge_trusted=False)
    assert out["basis"].to_list() == ["verdict", "verdict"] and out["drop_reason"].to_list() == [None, None]
