"""The drift_report asset reads the generator's held-out answers from generator_eval: a generation
whose answers collapsed onto one value is flagged (ANSWER_COLLAPSE) by the report itself, in its
rows and its metadata, while the pass-rate row stays ok. Direct invocation, fixed inputs."""

import dagster as dg
import polars as pl

from synth_assets.assets.reports import DriftConfig, drift_report
from synth_assets.core.quality.drift import REPORT_SCHEMA

FAMILY = "chain_sum@1"
REFERENCES = ["7"] * 5 + [str(100 + i) for i in range(45)]  # "7": the commonest answer, 10%
WRONG = [str(int(r) + 1) for r in REFERENCES]


def generator_eval(second: list[str]) -> pl.DataFrame:
    """Generation 1 answers wrong but spread; generation 2 answers ``second``; each generation
    also has harder-variant and HumanEval rows, which the answer rows leave alone."""
    rows = []
    for g, given_ in ((1, WRONG), (2, second)):
        rows += [
            {
                "generation": g,
                "family": FAMILY,
                "prompt_template": "heldout_heldout",
                "answer": ref,
                "extracted_answer": got,
                "verdict": "pass" if got == ref else "fail",
            }
            for ref, got in zip(REFERENCES, given_, strict=True)
        ]
        rows += [
            {
                "generation": g,
                "family": FAMILY,
                "prompt_template": "heldout_harder",
                "answer": str(i),
                "extracted_answer": "7",
                "verdict": "fail",
            }
            for i in range(30)
        ]
        rows.append(
            {
                "generation": g,
                "family": "humaneval",
                "prompt_template": "default",
                "answer": None,
                "extracted_answer": "def f(): pass",
                "verdict": "fail",
            }
        )
    return pl.DataFrame(rows)


def materialize(second: list[str]) -> dg.MaterializeResult:
    words = [f"w{i}" for i in range(400)]
    text = [" ".join(words[i : i + 20]) for i in range(0, 380, 20)]
    mix = pl.DataFrame(
        {
            "source": ["synthetic"] * 19 + ["human"] * 19,
            "origin_generation": [2] * 19 + [None] * 19,
            "prompt": [""] * 38,
            "response": text + text[::-1],
        }
    )
    raw = pl.DataFrame({"generation": [2] * 19, "completion": text})
    ctx = dg.build_asset_context(partition_key="2")
    config = DriftConfig(token_budget=200, min_tokens=10, bootstrap_samples=20)
    return drift_report(ctx, config, mix, raw, generator_eval(second), pl.DataFrame(schema=REPORT_SCHEMA))


def collapse_status(result: dg.MaterializeResult) -> str:
    rows = result.value.filter((pl.col("corpus") == f"answers:{FAMILY}") & (pl.col("metric") == "ANSWER_COLLAPSE"))
    return rows["status"].to_list()[0]


def test_a_collapsed_generation_is_flagged_by_the_report():
    assert collapse_status(materialize(["7"] * 30 + WRONG[30:])) == "fail"


def test_the_flag_is_in_the_metadata():
    result = materialize(["7"] * 30 + WRONG[30:])
    assert result.metadata["answer_collapse"].value == {FAMILY: "fail"}


def test_the_pass_rate_row_alone_would_not_have_seen_it():
    """Five of the 30 "7"s are right: the held-out pass rate rose from 0 to 0.1."""
    result = materialize(["7"] * 30 + WRONG[30:])
    rate = result.value.filter(pl.col("metric") == "heldout_reasoning_pass_rate")
    assert rate["status"].to_list() == ["ok"]


def test_a_generation_that_answers_like_the_references_is_not_flagged():
    assert collapse_status(materialize(REFERENCES)) == "ok"
