"""Near-duplicates, decontamination, quality filters, diversity caps and coverage (issue 7)."""

import json
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.curate.curation import (
    FILTERED_SCHEMA,
    REFERENCE_TEXT_SCHEMA,
    CurationSettings,
    QualitySettings,
    curate,
    read_benchmark_file,
)
from synth_assets.core.curate.dataset_card import dataset_card
from synth_assets.core.curate.mixing import MixSettings, build_mix, stratified_splits
from synth_assets.core.curate.near_duplicates import NearDupSettings, find_near_duplicates, lsh_params
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.tasks.sources import REFERENCE_SCHEMA, conform
from synth_assets.core.verify.verification import VERDICT_SCHEMA
from tests.core.test_curation_and_mixing import rows_floor

NO_REFS = conform([], REFERENCE_TEXT_SCHEMA)
VOCAB = [f"tok{i}" for i in range(3000)]


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def mutate(rng: random.Random, w: list[str], edits: int) -> list[str]:
    w = list(w)
    for _ in range(edits):
        w[rng.randrange(len(w))] = rng.choice(VOCAB)
    return w


def shingles(text: str, k: int = 5) -> set:
    w = text.lower().split()
    return {tuple(w)} if len(w) < k else {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def code_rows(rows: list[dict], generation: int = 1) -> pl.DataFrame:
    base = {
        "generation": generation,
        "verifier": "python_tests",
        "family": "humaneval",
        "domain": "code",
        "verdict": "pass",
        "score": 1.0,
        "prompt": 'def f(x):\n    """doc"""\n',
    }
    return conform([{**base, "candidate_id": f"g{generation}c{i}", **r} for i, r in enumerate(rows)], VERDICT_SCHEMA)


def body(ws: list[str]) -> str:
    return "    return " + " + ".join(ws[:1]) + "  # " + " ".join(ws[1:]) + "\n"


# ------------------------------------------------------------------ the LSH itself
def test_lsh_banding_keeps_pairs_at_the_threshold():
    b, r = lsh_params(0.8, 64)
    assert 1 - (1 - 0.8**r) ** b >= 0.99 and b * r <= 64


def test_recall_against_exact_jaccard_on_a_planted_corpus():
    rng = random.Random(3)
    docs, planted = [], []
    for _ in range(600):
        w = words(rng, rng.randint(20, 60))
        docs.append(" ".join(w))
        docs.append(" ".join(mutate(rng, w, rng.randint(0, 6))))
        planted.append((len(docs) - 2, len(docs) - 1))
    truth = {p for p in planted if jaccard(docs[p[0]], docs[p[1]]) >= 0.8}
    nd = find_near_duplicates(docs, NearDupSettings(threshold=0.8))
    found = nd.document_pairs()
    assert len(truth) > 100
    assert len(truth & found) / len(truth) >= 0.95
    assert found <= truth  # nothing else in this corpus is similar, and every pair was confirmed


@given(st.lists(st.tuples(st.integers(3, 40), st.integers(0, 8)), min_size=1, max_size=30), st.integers(0, 10**6))
@settings(max_examples=40, deadline=None)
def test_every_reported_pair_has_exact_jaccard_at_or_above_threshold(spec, seed):
    rng = random.Random(seed)
    small = [f"v{i}" for i in range(40)]  # a small vocabulary makes accidental overlaps likely
    docs = []
    for length, edits in spec:
        w = [rng.choice(small) for _ in range(length)]
        docs += [" ".join(w), " ".join(mutate(rng, w, edits) if edits else w)]
    nd = find_near_duplicates(docs, NearDupSettings(threshold=0.7))
    for a, b, j in zip(nd.i, nd.j, nd.jaccard):
        assert a < b
        assert j == pytest.approx(jaccard(docs[a], docs[b]))
        assert j >= 0.7


def test_bad_near_duplicate_settings_name_the_field():
    with pytest.raises(ValueError, match=r"threshold\s+Input should be greater than 0"):
        CurationSettings(near_duplicates=NearDupSettings(threshold=0))


# ------------------------------------------------------------------ curation stages
def test_templated_procedural_tasks_keep_their_short_answers():
    rows = [
        {
            "task_id": f"sum/{i}",
            "family": "basic_arithmetic",
            "domain": "procedural",
            "verifier": "reasoning_gym",
            "verdict": "pass",
            "prompt": f"What is {i} + {7 - i}? Give only the number.",
            "completion": "7",
            "extracted_answer": "7",
            "candidate_id": f"c{i}",
        }
        for i in range(8)
    ]
    df = conform(rows, VERDICT_SCHEMA)
    cur = curate(df, CurationSettings(), NO_REFS)
    assert cur.kept.height == 8, cur.dropped.select("drop_reason", "drop_detail")


def test_near_duplicates_within_a_generation_and_against_earlier_ones():
    rng = random.Random(1)
    a = words(rng, 80)
    other = words(rng, 80)
    gen1 = code_rows([{"task_id": "t1", "completion": body(a)}])
    kept1 = curate(gen1, CurationSettings(), NO_REFS).kept
    gen2 = code_rows(
        [
            {"task_id": "t1", "completion": body(mutate(rng, a, 1))},  # near-duplicate of the gen-1 row
            {"task_id": "t2", "completion": body(other)},
            {"task_id": "t2", "completion": body(mutate(rng, other, 1))},  # near-duplicate within gen 2
            {"task_id": "t3", "completion": body(mutate(rng, other, 1)[::-1])},  # other task, unrelated order
        ],
        generation=2,
    )
    cur = curate(gen2, CurationSettings(), NO_REFS, previous=kept1)
    drops = {r["candidate_id"]: r for r in cur.dropped.iter_rows(named=True)}
    assert drops["g2c0"]["drop_reason"] == "near_duplicate" and drops["g2c0"]["duplicate_of"] == "g1c0"
    assert drops["g2c2"]["drop_reason"] == "near_duplicate" and drops["g2c2"]["duplicate_of"] == "g2c1"
    assert "Jaccard" in drops["g2c2"]["drop_detail"]
    kept = cur.kept.filter(pl.col("candidate_id") == "g2c1")
    assert kept["cluster_id"][0] == "g2c1"  # the kept representative names its cluster
    assert set(cur.kept["candidate_id"]) == {"g2c1", "g2c3"}
    assert cur.stats["near_duplicates_dropped"] == 2


def test_long_completions_of_different_tasks_are_compared():
    rng = random.Random(2)
    a = words(rng, 40)
    df = code_rows([{"task_id": "t1", "completion": body(a)}, {"task_id": "t2", "completion": body(a)}])
    cur = curate(df, CurationSettings(), NO_REFS)
    assert cur.dropped["drop_reason"].to_list() == ["near_duplicate"]
    short = code_rows(
        [{"task_id": "t1", "completion": "    return x\n"}, {"task_id": "t2", "completion": "    return x\n"}]
    )
    assert curate(short, CurationSettings(), NO_REFS).kept.height == 2


def test_benchmark_files_decontaminate_by_ngram_and_near_duplicate(tmp_path):
    rng = random.Random(4)
    secret = words(rng, 90)
    bench = tmp_path / "my_eval.jsonl"
    bench.write_text(json.dumps({"id": "q1", "question": " ".join(secret), "answer": "42"}) + "\n")
    refs = read_benchmark_file(bench)
    assert refs["ref_source"][0] == "benchmark:my_eval"
    rows = [
        {
            "task_id": "t1",
            "verifier": "judge",
            "domain": "text",
            "family": "f",
            "verdict": "pass",
            "prompt": "Write.",
            "completion": " ".join(secret[:20]),
            "candidate_id": "c0",
        },
        {
            "task_id": "t2",
            "verifier": "judge",
            "domain": "text",
            "family": "f",
            "verdict": "pass",
            "prompt": "Write.",
            "completion": " ".join(words(rng, 20)),
            "candidate_id": "c1",
        },
    ]
    df = conform(rows, VERDICT_SCHEMA)
    cur = curate(df, CurationSettings(), refs)
    assert cur.dropped["drop_reason"].to_list() == ["contaminated_benchmark"]
    assert "benchmark:my_eval:q1" in cur.dropped["drop_detail"][0]
    # n-grams too long to match: the near-duplicate stage still catches a light paraphrase
    near = conform([{**rows[0], "completion": " ".join(mutate(rng, secret, 1)) + "\n42"}], VERDICT_SCHEMA)
    cur = curate(near, CurationSettings(decontamination_ngram=60), refs)
    assert cur.dropped["drop_reason"].to_list() == ["contaminated_near_duplicate"]


def test_benchmark_file_without_a_text_column_names_file_and_fix(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(SynthConfigError, match=r"benchmark_files: .*b\.csv has no text column; name one of prompt"):
        read_benchmark_file(bad)


def test_quality_filters_give_reason_codes():
    base = {"family": "f", "domain": "text", "verdict": "pass", "prompt": "q"}
    rows = [
        {**base, "task_id": "t0", "verifier": "judge", "completion": "fine text"},
        {**base, "task_id": "t1", "verifier": "judge", "completion": "bad \x00 byte"},
        {**base, "task_id": "t2", "verifier": "judge", "completion": "mojibake \ufffd here"},
        {**base, "task_id": "t3", "verifier": "judge", "completion": "x" * 50},
        {**base, "task_id": "t4", "verifier": "exact", "completion": "no answer line", "extracted_answer": None},
        {
            **base,
            "task_id": "t5",
            "verifier": "python_tests",
            "domain": "code",
            "prompt": "def f(:\n",
            "completion": "  return 1\n",
        },
        {**base, "task_id": "t6", "verifier": "judge", "completion": "judged low", "judge_score": 0.2},
    ]
    df = conform([{"candidate_id": f"c{i}", **r} for i, r in enumerate(rows)], VERDICT_SCHEMA)
    cur = curate(df, CurationSettings(quality=QualitySettings(max_chars=40, judge_min_score=0.5)), NO_REFS)
    assert dict(zip(cur.dropped["candidate_id"], cur.dropped["drop_reason"])) == {
        "c1": "encoding_invalid",
        "c2": "encoding_invalid",
        "c3": "too_long",
        "c4": "answer_missing",
        "c5": "code_syntax_error",
        "c6": "judge_below_threshold",
    }
    assert cur.kept["candidate_id"].to_list() == ["c0"]


def test_diversity_cap_keeps_the_most_different_rows():
    rng = random.Random(5)
    a, b, c = words(rng, 40), words(rng, 40), words(rng, 40)
    variants = [mutate(rng, a, 5) for _ in range(3)]  # similar to a, but under the near-dup threshold
    for v in variants:
        assert 0.2 < jaccard(" ".join(a), " ".join(v)) < 0.8
    texts = [a, *variants, b, c]
    df = code_rows([{"task_id": "t", "completion": body(w)} for w in texts])
    cur = curate(df, CurationSettings(max_per_task=3), NO_REFS)
    kept = set(cur.kept["candidate_id"])
    assert len(kept) == 3 and {"g1c4", "g1c5"} <= kept  # the two unrelated ones, plus one of the a-family
    assert set(cur.dropped["drop_reason"]) == {"diversity_cap"}
    assert curate(df, CurationSettings(max_per_task=0), NO_REFS).kept.height == 6


def test_coverage_flags_a_family_that_filtering_wiped_out():
    held = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat today"
    refs = conform([{"ref_source": "heldout", "ref_id": "h", "text": held}], REFERENCE_TEXT_SCHEMA)
    df = conform(
        [
            {
                "candidate_id": "c0",
                "task_id": "t0",
                "family": "leaky",
                "domain": "text",
                "verifier": "judge",
                "verdict": "pass",
                "prompt": "q",
                "completion": held,
            },
            {
                "candidate_id": "c1",
                "task_id": "t1",
                "family": "fine",
                "domain": "text",
                "verifier": "judge",
                "verdict": "pass",
                "prompt": "q",
                "completion": "something else entirely",
            },
            {
                "candidate_id": "c2",
                "task_id": "t2",
                "family": "hard",
                "domain": "text",
                "verifier": "judge",
                "verdict": "fail",
                "prompt": "q",
                "completion": "wrong",
            },
        ],
        VERDICT_SCHEMA,
    )
    cov = curate(df, CurationSettings(), refs).coverage
    wiped = dict(zip(cov["family"], cov["wiped_out"]))
    assert wiped == {"fine": False, "hard": False, "leaky": True}  # 'hard' never passed: not filtering's doing


# ------------------------------------------------------------------ mixing
def accepted(n: int, gens: int, domains=("procedural", "code")) -> pl.DataFrame:
    rows = [
        {
            "candidate_id": f"c{i}",
            "generation": 1 + i % gens,
            "task_id": f"t{i % 23}",
            "family": "f",
            "domain": domains[i % len(domains)],
            "prompt": "q",
            "training_text": f"a {i}",
            "license": "Apache-2.0 (reasoning-gym)",
            "generator": "llama_cpp",
            "model": "m",
            "model_terms": "Gemma Terms of Use",
            "source": "reasoning_gym",
            "verifier": "reasoning_gym",
            "verifier_name": "reasoning_gym",
            "verifier_version": "0.1.25",
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
                "license": "MIT (openai/human-eval)",
            }
            for i in range(n)
        ],
        REFERENCE_SCHEMA,
    )


def test_window_and_generation_weights():
    acc = accepted(90, gens=3)
    mix, stats = build_mix(acc, human(200), 3, rows_floor(window=2))
    assert set(mix.filter(pl.col("source") == "synthetic")["origin_generation"]) == {2, 3}
    assert stats["synthetic_left_out_by_window"] == 30
    mix, stats = build_mix(acc, human(200), 3, rows_floor(generation_weights={"1": 0.0, "2": 0.5}))
    per = dict(mix.filter(pl.col("source") == "synthetic").group_by("origin_generation").len().iter_rows())
    assert 1 not in per and 5 <= per[2] <= 25 and per[3] == 30
    with pytest.raises(ValueError, match=r"generation_weights\[2\]"):
        MixSettings(generation_weights={"2": 1.5})


@given(
    st.integers(0, 300),
    st.integers(1, 80),
    st.floats(0.05, 1.0),
    st.integers(1, 4),
    st.one_of(st.none(), st.integers(1, 4)),
    st.floats(0.3, 1.0),
)
@settings(max_examples=80, deadline=None)
def test_floor_holds_under_any_window_weights_and_downsampling(n_synth, n_human, floor, gens, window, decay):
    mix, _ = build_mix(
        accepted(n_synth, gens),
        human(n_human),
        gens,
        rows_floor(human_floor=floor, on_floor_violation="downsample", window=window, age_decay=decay),
    )
    assert (mix["source"] == "human").mean() + 1e-9 >= floor
    assert mix.group_by("task_id").agg(pl.col("split").n_unique()).filter(pl.col("split") > 1).height == 0


def test_downsampling_keeps_each_domains_share():
    acc = accepted(300, gens=2, domains=("procedural", "procedural", "code"))
    mix, _ = build_mix(acc, human(60), 2, rows_floor(human_floor=0.5, on_floor_violation="downsample"))
    synth = mix.filter(pl.col("source") == "synthetic")
    assert synth.height == 60
    assert dict(synth.group_by("domain").len().iter_rows()) == {"procedural": 40, "code": 20}


def test_split_is_stratified_by_domain_and_stable():
    tasks = pl.DataFrame(
        {
            "task_id": [f"code/{i}" for i in range(3)] + [f"p/{i}" for i in range(40)],
            "domain": ["code"] * 3 + ["procedural"] * 40,
        }
    )
    splits = stratified_splits(tasks, 0.1)
    assert any(splits[f"code/{i}"] == "validation" for i in range(3))
    again = stratified_splits(tasks.reverse(), 0.1)
    assert splits == again


def test_dataset_card_lists_licences_generators_filters_and_share():
    mix, _ = build_mix(accepted(20, 2), human(30), 2, rows_floor())
    card = dataset_card(mix, 2, {"verdict_fail": 120, "near_duplicate": 7}, 0.35)
    assert card.startswith("---\nlicense: other\n")
    for needle in (
        "MIT (openai/human-eval)",
        "Apache-2.0 (reasoning-gym)",
        "Gemma Terms of Use",
        "reasoning_gym@0.1.25",
        "near_duplicate | 7",
        "human share: **60.0%**",
        "floor 35%",
        "path: train.parquet",
    ):
        assert needle in card, needle


# ------------------------------------------------------------------ representative selection (issue 17)
def text_rows(texts: list[str], scores: list[float] | None = None, task: str = "t") -> pl.DataFrame:
    """Every text a passing judged candidate of one task, as the issue's measurement had it."""
    return conform(
        [
            {
                "candidate_id": f"r{i}",
                "generation": 1,
                "task_id": task,
                "family": "f",
                "domain": "text",
                "verifier": "judge",
                "verdict": "pass",
                "prompt": "Q",
                "completion": t,
                "score": 1.0 if scores is None else scores[i],
            }
            for i, t in enumerate(texts)
        ],
        VERDICT_SCHEMA,
    )


def chain() -> tuple[str, str, str]:
    """A ~ B and B ~ C at Jaccard 0.84, but A and C only 0.70: one word edit each, 20 words apart."""
    rng = random.Random(11)
    a = words(rng, 60)
    b = list(a)
    b[20] = "edited-once"
    c = list(b)
    c[40] = "edited-twice"
    return " ".join(a), " ".join(b), " ".join(c)


def test_a_row_similar_only_to_a_dropped_row_is_kept():
    a, b, c = chain()
    assert jaccard(a, b) >= 0.8 and jaccard(b, c) >= 0.8 and jaccard(a, c) < 0.8
    cur = curate(text_rows([a, b, c]), CurationSettings(max_per_task=0), NO_REFS)
    # connected components would keep one of the three; B is the only row to go
    assert set(cur.kept["candidate_id"]) == {"r0", "r2"}
    drop = cur.dropped.row(0, named=True)
    assert (drop["candidate_id"], drop["drop_reason"]) == ("r1", "near_duplicate")
    assert drop["duplicate_of"] in {"r0", "r2"} and drop["drop_detail"].startswith("Jaccard 0.84 with")


def test_an_exact_duplicate_names_the_row_kept_not_a_dropped_twin():
    a, b, _ = chain()
    cur = curate(text_rows([b, a, a.upper()], scores=[2.0, 1.0, 1.0]), CurationSettings(max_per_task=0), NO_REFS)
    drops = {r["candidate_id"]: r for r in cur.dropped.iter_rows(named=True)}
    assert set(cur.kept["candidate_id"]) == {"r0"}
    assert drops["r1"]["duplicate_of"] == "r0"
    assert (drops["r2"]["drop_reason"], drops["r2"]["duplicate_of"]) == ("exact_duplicate", "r0")


@given(
    st.lists(st.tuples(st.integers(6, 40), st.integers(0, 6), st.integers(0, 3)), min_size=2, max_size=25),
    st.integers(0, 10**6),
)
@settings(max_examples=40, deadline=None)
def test_every_drop_has_a_kept_partner_and_no_confirmed_pair_is_kept(spec, seed):
    """(a) a dropped row names a kept row at exact Jaccard >= threshold; (b) no pair that LSH
    proposed and exact Jaccard confirmed survives among the kept rows."""
    from synth_assets.core.curate.near_duplicates import select_representatives, shingle

    rng = random.Random(seed)
    small = [f"v{i}" for i in range(30)]  # a small vocabulary: overlaps and chains are likely
    docs: list[str] = []
    for length, edits, copies in spec:
        w = [rng.choice(small) for _ in range(length)]
        docs.append(" ".join(w))
        for _ in range(copies):
            w = mutate(rng, w, edits) if edits else w  # a chain of copies drifting away
            docs.append(" ".join(w))
    nd_settings = NearDupSettings(threshold=0.7)
    sel = select_representatives(shingle(docs, nd_settings), nd_settings)
    for d in range(len(docs)):
        if not sel.keep[d]:
            p = int(sel.duplicate_of[d])
            assert sel.keep[p] and jaccard(docs[d], docs[p]) >= 0.7 - 1e-12
            assert sel.jaccard[d] == pytest.approx(jaccard(docs[d], docs[p]))
    confirmed = find_near_duplicates(docs, nd_settings).document_pairs()
    assert not [(x, y) for x, y in confirmed if sel.keep[x] and sel.keep[y]]
    # through curate(): every near-duplicate drop names a kept row at >= threshold
    cur = curate(text_rows(docs), CurationSettings(max_per_task=0, near_duplicates=nd_settings), NO_REFS)
    kept = set(cur.kept["candidate_id"])
    for r in cur.dropped.filter(pl.col("drop_reason") == "near_duplicate").iter_rows(named=True):
        assert r["duplicate_of"] in kept
        assert jaccard(docs[int(r["candidate_id"][1:])], docs[int(r["duplicate_of"][1:])]) >= 0.7 - 1e-12
