"""ANSWER_COLLAPSE (issue 35, part 2): the drift report sees a generator that answers the held-out
items with a few values, while its pass rate can even rise toward the trivial baseline; a
generator that improves, or answers as diversely as the references, stays ok."""

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.quality.drift import (
    ANSWER_COLUMNS,
    DriftSettings,
    answer_profile,
    answer_rows,
    drift_report,
    heldout_answers,
)

FAMILY = "chain_sum@1"
# 50 held-out items: "7" is the most common reference answer (5 of 50, 10%), the rest distinct
REFERENCES = ["7"] * 5 + [str(100 + i) for i in range(45)]
WRONG = [str(int(r) + 1) for r in REFERENCES]  # a weak model: wrong, as spread as the references
COLLAPSED = ["7"] * 30 + WRONG[30:]  # 60% one value where the references hold it 10%
IMPROVED = REFERENCES[:30] + WRONG[30:]  # 30 of 50 right, the rest wrong and spread
SETTINGS = DriftSettings()


def answers(*generations: list[str], references: list[str] = REFERENCES, family: str = FAMILY) -> pl.DataFrame:
    """generator_eval's held-out answers: generation g+1 answers ``generations[g]``."""
    rows = [
        {"generation": g, "family": family, "answer": ref, "extracted_answer": got}
        for g, given_ in enumerate(generations, start=1)
        for ref, got in zip(references, given_, strict=True)
    ]
    return pl.DataFrame(rows, schema=ANSWER_COLUMNS)


def collapse(frame: pl.DataFrame, generation: int) -> dict:
    """The ANSWER_COLLAPSE row of ``generation``."""
    rows = answer_rows(frame, generation, SETTINGS)
    return rows.filter(pl.col("metric") == "ANSWER_COLLAPSE").row(0, named=True)


def test_a_generator_collapsed_onto_one_answer_fails():
    assert collapse(answers(WRONG, COLLAPSED), 2)["status"] == "fail"


def test_the_collapse_note_gives_the_evidence_and_the_sample_size():
    note = collapse(answers(WRONG, COLLAPSED), 2)["note"]
    assert "50 items" in note and "'7' on 30/50 (60%) where the references hold it 5/50 (10%)" in note
    assert "binomial p" in note and "odds ratio 13.5" in note and "vs generation 1" in note


def test_the_collapse_holds_against_the_first_generation_while_it_lasts():
    assert collapse(answers(WRONG, COLLAPSED, COLLAPSED), 3)["status"] == "fail"


def test_a_generator_that_improves_with_diverse_answers_stays_ok():
    assert collapse(answers(WRONG, IMPROVED), 2)["status"] == "ok"


def test_answers_as_diverse_as_the_references_are_ok():
    assert collapse(answers(WRONG, REFERENCES), 2)["status"] == "ok"


def test_the_first_generation_is_the_baseline():
    assert collapse(answers(WRONG), 1)["status"] == "baseline"


def test_a_generator_collapsed_from_the_first_generation_is_a_notice_not_drift():
    assert [collapse(answers(COLLAPSED, COLLAPSED), g)["status"] for g in (1, 2)] == ["notice", "notice"]


def test_a_smaller_drift_toward_the_most_common_answer_warns():
    """letter_counting-like references (the commonest count 40%): the model answers it 60%."""
    refs = ["1"] * 40 + ["2"] * 20 + ["3"] * 15 + ["0"] * 10 + ["4"] * 10 + ["5"] * 5
    drifted = ["1"] * 60 + refs[60:]
    frame = answers(refs, drifted, references=refs, family="letter_counting")
    assert collapse(frame, 2)["status"] == "warn"


def test_few_items_are_insufficient_data():
    frame = answers(WRONG[:10], COLLAPSED[:10], references=REFERENCES[:10])
    assert collapse(frame, 2)["status"] == "insufficient_data"


def test_references_without_diversity_have_none_to_lose():
    refs = ["0"] * 50
    assert collapse(answers(WRONG, ["0"] * 50, references=refs), 2)["status"] == "ok"


def test_the_metric_rows_compare_with_the_references():
    rows = answer_rows(answers(WRONG, COLLAPSED), 2, SETTINGS)
    got = {r["metric"]: (r["current"], r["human"]) for r in rows.iter_rows(named=True)}
    assert got["trivial_baseline_share"] == (0.6, 0.1) and got["top_answer_share"] == (0.6, 0.1)
    assert got["answer_entropy"][0] < 0.5 * got["answer_entropy"][1]


def test_the_report_holds_the_answer_rows_per_family():
    mix = pl.DataFrame(
        {"source": ["synthetic", "human"], "origin_generation": [1, None], "prompt": ["", ""], "response": ["a", "b"]}
    )
    report = drift_report(mix, 2, DriftSettings(min_tokens=1), answers=answers(WRONG, COLLAPSED))
    rows = report.filter(pl.col("corpus") == f"answers:{FAMILY}")
    assert rows["metric"].to_list() == [
        "answer_entropy",
        "trivial_baseline_share",
        "top_answer_share",
        "ANSWER_COLLAPSE",
    ]


def test_only_the_heldout_variant_of_generator_eval_is_read():
    frame = pl.DataFrame(
        {
            "generation": [1, 1, 1],
            "family": [FAMILY, FAMILY, "humaneval"],
            "prompt_template": ["heldout_heldout", "heldout_harder", "default"],
            "answer": ["7", "8", None],
            "extracted_answer": ["7", "9", "def f(): pass"],
            "verdict": ["pass", "fail", "fail"],
        }
    )
    assert heldout_answers(frame).rows() == [(1, FAMILY, "7", "7")]


# ------------------------------------------------------------------ properties
ANSWER = st.sampled_from(["0", "1", "2", "3", "7", "12", "", "x"])


@st.composite
def paired_answers(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    refs = draw(st.lists(ANSWER, min_size=1, max_size=80))
    return refs, draw(st.lists(ANSWER, min_size=len(refs), max_size=len(refs)))


@given(paired_answers())
@settings(max_examples=100, deadline=None)
def test_entropies_are_never_negative_and_shares_are_shares(pair):
    refs, got = pair
    p = answer_profile(answers(got, references=refs)).row(0, named=True)
    assert p["entropy"] >= 0 and p["reference_entropy"] >= 0
    assert all(0 <= p[k] <= 1 for k in ("trivial_share", "reference_trivial_share", "top_share", "reference_top_share"))


@given(paired_answers())
@settings(max_examples=100, deadline=None)
def test_a_model_that_copies_the_references_is_never_flagged(pair):
    refs, earlier = pair
    assert collapse(answers(earlier, refs, references=refs), 2)["status"] not in ("fail", "warn")


@given(paired_answers(), st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_answers_spread_exactly_like_the_references_are_never_flagged(pair, rnd):
    """The references' answers on other items (every one wrong, the same distribution)."""
    refs, earlier = pair
    shuffled = list(refs)
    rnd.shuffle(shuffled)
    assert collapse(answers(earlier, shuffled, references=refs), 2)["status"] not in ("fail", "warn")


@pytest.mark.parametrize("bad", [[0.3, 0.2], [0.1, 1.5], [0.1]])
def test_answer_thresholds_are_checked(bad):
    with pytest.raises(ValueError):
        DriftSettings(answer_entropy_drop=bad)
