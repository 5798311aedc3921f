"""Curation (every row kept or dropped with a reason) and mixing (the human floor holds)."""

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.curate.curation import (
    FILTERED_SCHEMA,
    REFERENCE_TEXT_SCHEMA,
    CurationSettings,
    curate,
    decontaminate_references,
)
from synth_assets.core.curate.mixing import MixSettings, build_mix, export_mix, human_share_of
from synth_assets.core.errors import HumanFloorError
from synth_assets.core.tasks.sources import REFERENCE_SCHEMA, conform
from synth_assets.core.verify.verification import VERDICT_SCHEMA

HELD = ["def secret_function(values): return the sum of all the even values in the list that are greater than ten"]
HELD_REFS = conform([{"ref_source": "heldout", "ref_id": "h0", "text": HELD[0]}], REFERENCE_TEXT_SCHEMA)


def verified(rows: list[dict]) -> pl.DataFrame:
    base = {"generation": 1, "verifier": "exact", "prompt": "q", "family": "f", "verdict_detail": ""}
    return conform([{**base, "candidate_id": f"c{i}", **r} for i, r in enumerate(rows)], VERDICT_SCHEMA)


def test_each_drop_has_the_first_reason_that_applies():
    df = verified(
        [
            {"task_id": "t1", "verdict": "pass", "extracted_answer": "42"},
            {"task_id": "t1", "verdict": "pass", "extracted_answer": " 42 "},  # same text, same task
            {"task_id": "t2", "verdict": "pass", "extracted_answer": "42"},  # same text, other task: kept
            {"task_id": "t3", "verdict": "fail", "extracted_answer": "7"},
            {"task_id": "t4", "verdict": "timeout", "extracted_answer": None},
            {"task_id": "t5", "verdict": "pass", "extracted_answer": ""},
            {"task_id": "t6", "verdict": "pass", "extracted_answer": HELD[0].upper()},
        ]
    )
    cur = curate(df, CurationSettings(decontamination_ngram=8), HELD_REFS)
    kept, dropped = cur.kept, cur.dropped
    assert kept["candidate_id"].to_list() == ["c0", "c2"]
    assert dict(zip(dropped["candidate_id"], dropped["drop_reason"])) == {
        "c1": "exact_duplicate",
        "c3": "verdict_fail",
        "c4": "verdict_timeout",
        "c5": "empty_completion",
        "c6": "contaminated_heldout",
    }


def test_tiny_ngram_is_refused():
    with pytest.raises(ValueError, match=r"decontamination_ngram\s+Input should be greater than or equal to 3"):
        CurationSettings(decontamination_ngram=2)


verdict_rows = st.lists(
    st.fixed_dictionaries(
        {
            "task_id": st.sampled_from(["a", "b", "c"]),
            "verdict": st.sampled_from(["pass", "fail", "error", "timeout"]),
            "extracted_answer": st.sampled_from(["1", "2", " 1", "", "two words", HELD[0]]),
        }
    ),
    max_size=40,
)


@given(verdict_rows)
@settings(max_examples=100, deadline=None)
def test_every_candidate_is_kept_or_dropped_exactly_once(rows):
    df = verified(rows)
    cur = curate(df, CurationSettings(decontamination_ngram=5), HELD_REFS)
    kept, dropped = cur.kept, cur.dropped
    assert sorted(kept["candidate_id"].to_list() + dropped["candidate_id"].to_list()) == sorted(df["candidate_id"])
    assert dropped["drop_reason"].null_count() == 0
    assert (kept["verdict"] == "pass").all()
    assert kept.select("task_id", "text_hash").is_unique().all()


def accepted(n: int, gens: int = 1) -> pl.DataFrame:
    rows = [
        {
            "candidate_id": f"c{i}",
            "generation": 1 + i % gens,
            "task_id": f"t{i % 7}",
            "family": "f",
            "domain": "procedural",
            "prompt": "q",
            "training_text": f"answer {i}",
            "license": "x",
            "generator": "g",
            "model": "m",
        }
        for i in range(n)
    ]
    return conform(rows, FILTERED_SCHEMA)


def human(n: int) -> pl.DataFrame:
    return conform(
        [
            {
                "ref_id": f"h{i}",
                "source": "humaneval",
                "family": "humaneval",
                "domain": "code",
                "prompt": "p",
                "response": f"r{i}",
                "license": "MIT",
            }
            for i in range(n)
        ],
        REFERENCE_SCHEMA,
    )


def rows_floor(**kw) -> MixSettings:
    """MixSettings whose human floor counts rows (these tests are about rows, and need no tokenizer)."""
    return MixSettings(floor_by="rows", **kw)


def words_tokenizer_double(text: str) -> int:
    """A named test double for the packaged tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _with_responses(df: pl.DataFrame, column: str, text: str) -> pl.DataFrame:
    return df.with_columns(pl.lit(text).alias(column))


def test_the_token_floor_keeps_short_synthetic_rows_a_row_floor_would_drop():
    """10 human rows of 20 tokens against 50 synthetic rows of 2: 200 of 300 response tokens are
    human (67%), over a 35% floor, so all 50 stay; counted in rows (17% human) only 18 would."""
    acc = _with_responses(accepted(50), "training_text", "Answer: 7")
    hum = _with_responses(human(10), "response", " ".join(["tok"] * 20))
    mix, stats = build_mix(acc, hum, 1, MixSettings(human_floor=0.35), words_tokenizer_double)
    assert (stats["synthetic_rows"], stats["human_token_share"]) == (50, pytest.approx(200 / 300, abs=1e-4))
    assert mix["response_tokens"].to_list() == [2] * 50 + [20] * 10
    assert human_share_of(mix) == (pytest.approx(200 / 300), "response tokens")
    rows_mix, _ = build_mix(acc, hum, 1, rows_floor(human_floor=0.35))
    assert (rows_mix["source"] == "synthetic").sum() == 18


def test_the_token_floor_fails_naming_the_unit_and_the_fix():
    acc = _with_responses(accepted(50), "training_text", " ".join(["tok"] * 10))
    hum = _with_responses(human(10), "response", "short answer")
    with pytest.raises(HumanFloorError, match=r"human share would be 3.8% of response tokens \(20 human, 500"):
        build_mix(acc, hum, 1, MixSettings(on_floor_violation="fail"), words_tokenizer_double)


@given(
    st.lists(st.integers(1, 40), min_size=0, max_size=120),
    st.lists(st.integers(1, 80), min_size=1, max_size=30),
    st.floats(0.05, 1.0),
)
@settings(max_examples=80, deadline=None)
def test_a_mix_downsampled_by_tokens_never_falls_under_the_floor(synth_tokens, human_tokens, floor):
    acc = accepted(len(synth_tokens)).with_columns(
        pl.Series("training_text", [" ".join(["t"] * n) for n in synth_tokens], dtype=pl.String)
    )
    hum = human(len(human_tokens)).with_columns(
        pl.Series("response", [" ".join(["t"] * n) for n in human_tokens], dtype=pl.String)
    )
    mix, stats = build_mix(acc, hum, 1, MixSettings(human_floor=floor), words_tokenizer_double)
    share, unit = human_share_of(mix)
    assert (unit, share + 1e-9 >= floor, stats["human_rows"]) == ("response tokens", True, len(human_tokens))


def test_floor_violation_fails_with_a_message_that_says_what_to_do():
    with pytest.raises(HumanFloorError, match=r"human share would be 16.7%.*below the floor of 35%.*downsample"):
        build_mix(accepted(50), human(10), 1, rows_floor(human_floor=0.35, on_floor_violation="fail"))


def test_by_default_a_mix_over_the_floor_keeps_an_even_sample_of_synthetic_rows():
    mix, _ = build_mix(accepted(50), human(10), 1, rows_floor(human_floor=0.35))
    assert (mix["source"] == "synthetic").sum() == 18  # 10 human rows x 0.65 / 0.35, rounded down


def test_synthetic_alone_is_refused():
    with pytest.raises(HumanFloorError, match="never mixed alone"):
        build_mix(accepted(5), human(0), 1, rows_floor())


@given(st.integers(0, 200), st.integers(1, 60), st.floats(0.05, 1.0), st.integers(1, 4))
@settings(max_examples=80, deadline=None)
def test_downsampled_mix_never_falls_under_the_floor(n_synth, n_human, floor, gens):
    mix, stats = build_mix(
        accepted(n_synth, gens), human(n_human), gens, rows_floor(human_floor=floor, on_floor_violation="downsample")
    )
    share = (mix["source"] == "human").mean()
    assert share + 1e-9 >= floor
    assert stats["human_rows"] == n_human
    # no task in both splits
    assert mix.group_by("task_id").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1).height == 0


def test_mix_accumulates_earlier_generations_and_exports_chat_jsonl(tmp_path):
    acc = accepted(6, gens=3)
    mix, stats = build_mix(acc, human(20), 2, rows_floor(validation_fraction=0.3))
    assert set(mix.filter(pl.col("source") == "synthetic")["origin_generation"]) == {1, 2}  # gen 3 is the future
    paths = export_mix(mix, tmp_path / "out")
    lines = [json.loads(line) for k in ("train", "validation") for line in open(paths[k])]
    assert len(lines) == mix.height
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in lines)
    parquet = pl.concat([pl.read_parquet(paths[f"{k}_parquet"]) for k in ("train", "validation")])
    assert parquet.height == mix.height and {"license", "model_terms", "origin_generation"} <= set(parquet.columns)
    assert parquet["messages"][0][1]["role"] == "assistant"
    assert not list((tmp_path / "out").glob("*.partial"))


def test_bad_mix_settings_name_the_field():
    with pytest.raises(ValueError, match="on_floor_violation"):
        MixSettings(on_floor_violation="ignore")


def test_human_rows_overlapping_heldout_are_left_out():
    refs = conform(
        [
            {"ref_id": "ok", "prompt": "p", "response": "completely unrelated text about cats and dogs"},
            {"ref_id": "leak", "prompt": "p", "response": HELD[0]},
        ],
        REFERENCE_SCHEMA,
    )
    clean, leaked = decontaminate_references(refs, HELD, 8)
    assert clean["ref_id"].to_list() == ["ok"] and leaked == ["leak"]
