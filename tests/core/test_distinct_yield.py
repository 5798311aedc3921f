"""Yield that counts distinct work (core/quality/yield_metrics.py): distinct verified rows and
distinct solved tasks per CPU-minute, the guessers' expected passes subtracted."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.quality.yield_metrics import (
    OVERALL,
    distinct_yield,
    generation_cpu_seconds,
    generation_wall_seconds,
    guesser_expected,
)


def verified(rows: list[tuple[str, str, str | None, str, str]]) -> pl.DataFrame:
    """Verified rows from (task_id, family, reference answer, answer given, verdict)."""
    return pl.DataFrame(
        [
            {
                "task_id": t,
                "family": f,
                "answer": ref,
                "completion": f"the answer is {given}",
                "extracted_answer": given,
                "verifier": "exact_match",
                "verdict": verdict,
            }
            for t, f, ref, given, verdict in rows
        ],
        schema={
            "task_id": pl.String,
            "family": pl.String,
            "answer": pl.String,
            "completion": pl.String,
            "extracted_answer": pl.String,
            "verifier": pl.String,
            "verdict": pl.String,
        },
    )


def overall(df: pl.DataFrame) -> dict:
    return df.filter(pl.col("family") == OVERALL).row(0, named=True)


@given(st.integers(1, 12), st.sampled_from(["12", " 12", "12.", "12 "]))
@settings(max_examples=30, deadline=None)
def test_a_repeated_passing_answer_of_one_task_counts_once(repeats, form):
    rows = [("t1", "gcd@1", "12", form, "pass")] * repeats + [("t2", "gcd@1", "7", "3", "fail")]
    y = overall(distinct_yield(verified(rows), 60))
    assert (y["passing_rows"], y["distinct_passing_rows"], y["distinct_solved_tasks"]) == (repeats, 1, 1)


def test_two_accepted_forms_are_two_rows_and_one_solved_task():
    rows = [("t1", "chain_sum@1", "1/2", "1/2", "pass"), ("t1", "chain_sum@1", "1/2", "0.5", "pass")]
    y = overall(distinct_yield(verified(rows), 60))
    assert (y["distinct_passing_rows"], y["distinct_solved_tasks"]) == (2, 1)


def test_a_family_whose_every_answer_is_the_most_common_one_yields_about_nothing_over_guessing():
    # every task's answer is "0": a model that always says "0" solves them all, as the guesser does
    rows = [(f"t{i}", "letter_counting@1", "0", "0", "pass") for i in range(10) for _ in range(4)]
    y = overall(distinct_yield(verified(rows), 120))
    assert (y["distinct_solved_tasks"], y["guesser_expected_passes"]) == (10, pytest.approx(10.0))
    assert (y["distinct_rows_per_cpu_min"], y["solved_tasks_per_cpu_min"]) == (
        pytest.approx(0.0, abs=1e-9),
        pytest.approx(0.0, abs=1e-9),
    )


def test_the_guesser_draws_k_times_from_the_family_s_answer_distribution():
    # answers a, a, b, c: shares 1/2, 1/2, 1/4, 1/4; two samples per task
    rows = [
        (t, "f", ref, "x", "fail") for t, ref in [("t1", "a"), ("t2", "a"), ("t3", "b"), ("t4", "c")] for _ in range(2)
    ]
    g = guesser_expected(verified(rows))
    assert g["guess"].sum() == pytest.approx(2 * (1 - 0.5**2) + 2 * (1 - 0.75**2))


def test_code_tasks_without_a_reference_answer_have_no_guesser_passes():
    rows = [("he/1", "humaneval", None, "return x", "pass"), ("he/2", "humaneval", None, "return y", "fail")]
    y = overall(distinct_yield(verified(rows), 60))
    assert (y["guesser_expected_passes"], y["solved_tasks_over_guessers"]) == (0.0, 1.0)


def test_families_add_up_to_the_overall_row():
    rows = [
        ("a1", "gcd@1", "3", "3", "pass"),
        ("a2", "gcd@1", "5", "3", "fail"),
        ("b1", "chain_sum@1", "9", "9", "pass"),
    ]
    y = distinct_yield(verified(rows), 30)
    fams = y.filter(pl.col("family") != OVERALL)
    assert fams["family"].to_list() == ["chain_sum@1", "gcd@1"]
    for col in ("distinct_passing_rows", "guesser_expected_passes", "distinct_rows_per_cpu_min"):
        assert fams[col].sum() == pytest.approx(overall(y)[col])


@given(st.floats(1.0, 1e5), st.floats(1.1, 50.0))
@settings(max_examples=50, deadline=None)
def test_per_cpu_minute_figures_scale_inversely_with_cpu_time(cpu_seconds, factor):
    rows = [("t1", "gcd@1", "4", "4", "pass"), ("t2", "gcd@1", "6", "6", "pass"), ("t3", "gcd@1", "8", "2", "fail")]
    a = overall(distinct_yield(verified(rows), cpu_seconds))
    b = overall(distinct_yield(verified(rows), cpu_seconds * factor))
    for col in ("distinct_rows_per_cpu_min", "solved_tasks_per_cpu_min", "passing_rows_per_cpu_min"):
        assert a[col] == pytest.approx(b[col] * factor)


def test_no_rows_give_an_empty_table():
    assert distinct_yield(verified([]), 60).height == 0


def test_cpu_seconds_are_the_sampling_span_times_the_cores_even_when_samples_overlap():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # three samples decoded side by side: each took 10 s, the generation took 12 s
    raw = pl.DataFrame(
        {
            "created_at": [t0 + timedelta(seconds=10), t0 + timedelta(seconds=11), t0 + timedelta(seconds=12)],
            "latency_s": [10.0, 10.0, 10.0],
        }
    )
    assert (generation_wall_seconds(raw), generation_cpu_seconds(raw, 4)) == (
        pytest.approx(12.0),
        pytest.approx(48.0),
    )
