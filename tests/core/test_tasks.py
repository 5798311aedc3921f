"""Task sources: reasoning-gym, the HumanEval split, and validation of user task files."""

import json

import polars as pl
import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.tasks.sources import (
    LEVELS,
    TASK_SCHEMA,
    humaneval_references,
    humaneval_split,
    humaneval_tasks,
    level_config,
    reasoning_gym_dataset,
    reasoning_gym_tasks,
    score_reasoning_gym,
    split_level,
    user_references,
    user_tasks,
)


def test_reasoning_gym_tasks_are_deterministic_and_scorable():
    a = reasoning_gym_tasks(["gcd", "letter_counting"], 3, seed=5)
    b = reasoning_gym_tasks(["gcd", "letter_counting"], 3, seed=5)
    assert a.equals(b) and a.height == 6 and a.schema == pl.Schema(TASK_SCHEMA)
    assert a["task_id"].n_unique() == 6
    spec = json.loads(a["verifier_spec"][0])
    assert spec == {"name": "gcd", "size": 3, "seed": 5, "index": 0}


def test_unknown_family_names_the_field_and_suggests():
    with pytest.raises(SynthConfigError, match=r"task_pool.reasoning_gym_families: unknown family 'gcdd'"):
        reasoning_gym_tasks(["gcdd"], 2, seed=1)


def test_humaneval_split_is_disjoint_complete_and_stable():
    parts = {p: humaneval_references(p, 0.3, 0.2) for p in ("generation", "human", "heldout")}
    ids = [set(df["ref_id"].to_list()) for df in parts.values()]
    assert sum(len(s) for s in ids) == 164
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert 0.1 < len(ids[2]) / 164 < 0.3  # about the configured 20 % held out
    assert humaneval_split("HumanEval/7", 0.3, 0.2) == humaneval_split("HumanEval/7", 0.3, 0.2)
    gen = humaneval_tasks(1000, 0.3, 0.2)
    assert set(gen["task_id"].to_list()) == ids[0]


def test_humaneval_split_fractions_are_validated():
    with pytest.raises(SynthConfigError, match="sum to less than 1"):
        humaneval_split("x", 0.6, 0.5)


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_user_task_file_jsonl_csv_parquet(tmp_path):
    rows = [
        {"task_id": "a", "prompt": "What is 2+2?", "verifier": "math", "answer": "4"},
        {"task_id": "b", "prompt": "Capital of France?", "verifier": "exact", "answer": "Paris", "family": "geo"},
    ]
    j = user_tasks(write_jsonl(tmp_path / "mine.jsonl", rows))
    pl.DataFrame(rows).write_csv(tmp_path / "mine.csv")
    pl.DataFrame(rows).write_parquet(tmp_path / "mine.parquet")
    for df in (j, user_tasks(tmp_path / "mine.csv"), user_tasks(tmp_path / "mine.parquet")):
        assert df["task_id"].to_list() == ["user/mine/a", "user/mine/b"]
        assert df["family"].to_list() == ["mine", "geo"]
        assert df["domain"].to_list() == ["math", "text"]
        assert df["license"].to_list() == ["user-declared"] * 2


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"task_id": "a", "verifier": "math", "answer": "1"}], r"has no 'prompt' column"),
        ([{"task_id": "a", "prompt": "p", "verifier": "magic"}], r"row 1 \(task a\): field 'verifier' is 'magic'"),
        ([{"task_id": "a", "prompt": "p", "verifier": "math"}], r"field 'answer' is missing"),
        (
            [
                {"task_id": "a", "prompt": "p", "verifier": "math", "answer": "1"},
                {"task_id": "b", "prompt": "", "verifier": "math", "answer": "1"},
            ],
            r"row 2 \(task b\): field 'prompt'",
        ),
        (
            [{"task_id": "a", "prompt": "p", "verifier": "python_tests", "test": "def check(c): pass"}],
            r"field 'entry_point' is missing",
        ),
        (
            [
                {"task_id": "a", "prompt": "p", "verifier": "exact", "answer": "1"},
                {"task_id": "a", "prompt": "q", "verifier": "exact", "answer": "2"},
            ],
            r"task_id must be unique",
        ),
    ],
)
def test_malformed_task_files_get_errors_naming_file_row_and_field(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SynthConfigError, match=message) as info:
        user_tasks(path)
    assert str(path) in str(info.value)


def test_invalid_json_line_is_located(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"task_id": "a", "prompt": "p", "verifier": "exact", "answer": "x"}\n{"task_id": \n')
    with pytest.raises(SynthConfigError, match=r"broken.jsonl line 2 is not valid JSON"):
        user_tasks(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(SynthConfigError, match="does not exist"):
        user_tasks(tmp_path / "nope.jsonl")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(SynthConfigError, match="use .jsonl, .parquet or .csv"):
        user_tasks(tmp_path / "t.xlsx")


def test_user_reference_file(tmp_path):
    path = write_jsonl(tmp_path / "refs.jsonl", [{"prompt": "Say hi", "response": "Hi!"}])
    df = user_references(path, "human_reference.user_files")
    assert df["ref_id"].to_list() == ["user/refs/0"] and df["response"].to_list() == ["Hi!"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Say hi"}])
    with pytest.raises(SynthConfigError, match="human_reference.user_files: .*bad.jsonl has no 'response' column"):
        user_references(bad, "human_reference.user_files")


# ------------------------------------------------------------------ difficulty levels
def test_a_task_built_at_level_2_is_scored_at_level_2():
    """The level's configuration travels in verifier_spec: the verifier rebuilds the item that was
    asked, not reasoning-gym's default item of the same seed and index."""
    from synth_assets.core.verify.verification import verify_reasoning_gym

    leveled = reasoning_gym_tasks(["chain_sum@2"], 20, seed=3)
    default = reasoning_gym_tasks(["chain_sum"], 20, seed=3)
    i = next(i for i in range(20) if leveled["answer"][i] != default["answer"][i])
    row = leveled.row(i, named=True)
    verdicts = [
        verify_reasoning_gym({**row, "completion": f" {answer}\n"}, 1.0).verdict
        for answer in (leveled["answer"][i], default["answer"][i])
    ]
    assert (row["family"], json.loads(row["verifier_spec"])["config"], verdicts) == (
        "chain_sum@2",
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
        ["pass", "fail"],
    )


@pytest.mark.parametrize(
    ("family", "message"),
    [
        ("chain_sum@9", r"^task_pool.reasoning_gym_families: family 'chain_sum@9': chain_sum has levels 1 to 6"),
        ("chain_sum@x", r"family 'chain_sum@x': the level after '@' must be a whole number from 1"),
        ("maze@1", r"^task_pool.reasoning_gym_families: family 'maze@1': maze has no difficulty levels"),
    ],
)
def test_a_level_that_does_not_exist_names_the_field_and_family(family, message):
    with pytest.raises(SynthConfigError, match=message):
        reasoning_gym_tasks([family], 2, seed=1)


def test_a_configuration_reasoning_gym_rejects_names_the_family_and_configuration():
    from synth_assets.core.tasks.sources import reasoning_gym_dataset

    with pytest.raises(
        SynthConfigError, match=r"family 'chain_sum': reasoning-gym rejects the configuration \{'min_terms'"
    ):
        reasoning_gym_dataset("chain_sum", 4, 1, {"min_terms": 5, "max_terms": 2})


def test_a_held_out_level_that_does_not_exist_names_the_held_out_field():
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

    with pytest.raises(SynthConfigError, match=r"^heldout_reasoning.families: family 'gcd@7': gcd has levels 1 to 3"):
        heldout_items(HeldoutSettings(families=["gcd@7"], items_per_family=2), PromptSettings())


def test_each_task_draws_its_own_examples_from_the_levels_pool():
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.tasks.sources import reasoning_gym_dataset

    prompts = PromptSettings(few_shot=2, few_shot_pool=20)
    draws = {key: tuple(prompts.shots("chain_sum@1", key)) for key in (f"task/{i}" for i in range(10))}
    pool = reasoning_gym_dataset("chain_sum@1", 20, prompts.few_shot_seed + 1_000_003)
    pool_questions = {pool[i]["question"] for i in range(20)}
    assert (
        len(set(draws.values())) > 5,
        all(q in pool_questions for d in draws.values() for q, _ in d),
        draws["task/3"] == tuple(prompts.shots("chain_sum@1", "task/3")),
    ) == (True, True, True)


def test_held_out_items_of_a_level_have_a_harder_variant_one_level_up_and_their_own_examples():
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

    items = heldout_items(
        HeldoutSettings(families=["chain_sum@1"], items_per_family=30, variants=["heldout", "harder"]),
        PromptSettings(few_shot=2, few_shot_pool=20),
    )
    harder = json.loads(items.filter(pl.col("variant") == "harder")["spec"][0])["config"]
    last_shots = items.filter(pl.col("variant") == "heldout")["last_shot_answer"].n_unique()
    assert (harder, last_shots > 5) == ({"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}, True)


def test_a_levels_task_pool_and_held_out_items_never_share_a_question():
    """chain_sum@1 has 200 questions in all, and a question of level 1 can be asked at level 2
    too: the split by question keeps the held-out ones out of the pool at every level of the
    ladder, and each held-out question is asked once a level."""
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.tasks.sources import ladder
    from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

    pool = reasoning_gym_tasks(ladder(["chain_sum@1"], 2), 300, seed=42)
    items = heldout_items(
        HeldoutSettings(families=["chain_sum@1"], items_per_family=100, variants=["heldout"]), PromptSettings()
    )
    shared = set(pool["prompt"]) & set(items["question"])
    repeated = (
        items.select(pl.struct("family", "question").is_duplicated().any()).item(),
        pool.select(pl.struct("family", "prompt").is_duplicated().any()).item(),
    )
    assert (shared, sorted(set(items["family"])), repeated) == (
        set(),
        ["chain_sum@1", "chain_sum@2", "chain_sum@3"],
        (False, False),
    )


@pytest.mark.parametrize("family", [f"{base}@{i + 1}" for base, levels in LEVELS.items() for i in range(len(levels))])
def test_every_level_of_every_ladder_builds_items_whose_answers_score_full_marks(family):
    base, _ = split_level(family)
    ds = reasoning_gym_dataset(base, 3, 5, level_config(family))
    assert [score_reasoning_gym(ds, str(e["answer"]), e) for e in ds] == [1.0, 1.0, 1.0]
