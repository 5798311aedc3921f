"""Held-out reasoning items that a model's score can move on, and their distribution shifts.

HumanEval held-out with a 270M model scores 0 every generation: a signal that cannot move.
These items come from the same reasoning-gym families the pipeline trains on, but from a seed
range no training stage uses (the task pool draws seeds 42 + i, few-shot examples 1_000_010 +
i; held-out items 7_000_000 + i), and any item whose question appears in the mix is dropped
again before evaluation (decontamination). Each family has three variants:

* ``heldout``: the family's default configuration, prompted as the generator is prompted;
* ``harder``: the same family with larger numbers, longer words or more terms;
* ``rephrased``: the default configuration under another prompt template (other wording,
  ``Q:``/``A:`` labels), to catch a model that learned the template instead of the task.

Beside each variant's pass rate the evaluation reports two trivial baselines (always the most
common answer, always the last few-shot example's answer): a 270M base model mostly copies the
last shot, and a gain that does not beat these is not a gain.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import (
    DEFAULT_FAMILIES,
    LevelsAbove,
    as_given_answer,
    conform,
    draw_items,
    ladder,
    level_config,
    levels_of,
    naming_field,
    reasoning_gym_dataset,
    reasoning_gym_families,
    score_reasoning_gym,
    split_level,
    with_level,
)

HELDOUT_SEED = 7_000_000

# harder settings per family: the same task at a size the training data never shows
HARDER: dict[str, dict] = {
    "letter_counting": {"min_words": 16, "max_words": 30},
    "gcd": {"min_value": 1000, "max_value": 100000},
    "basic_arithmetic": {"min_terms": 5, "max_terms": 8},
    "chain_sum": {"min_terms": 7, "max_terms": 10},
    "word_sorting": {"min_words": 11, "max_words": 16},
    "leg_counting": {"min_animals": 11, "max_animals": 15},
    "number_sorting": {"min_numbers": 11, "max_numbers": 16},
    "spell_backward": {"min_word_len": 8},
    "projectile_design": {"min_range": 150.0, "max_range": 400.0},
}
VARIANTS = ("heldout", "harder", "rephrased")

HELDOUT_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String,
    "family": pl.String,
    "variant": pl.String,
    "question": pl.String,
    "answer": pl.String,
    "prompt": pl.String,  # the full text the model is given
    "last_shot_answer": pl.String,  # the answer of the prompt's last few-shot example ("" without shots)
    "max_tokens": pl.Int64,  # the completion's token budget in the item's form (PromptSettings)
    "spec": pl.String,  # JSON: family, config overrides, seed, size, index (to rebuild the scorer)
}


# The held-out families a default run is judged on: the task pool's families with levels. The
# science family is left out: the base model passes 2 of its 100 held-out items (2026-12-07), so no
# regression there can reach significance (one needs at least 6 items the parent gets right and
# the candidate misses), while its prompts are four times as long and its answers eight times
# (bench/RESULTS.md, "The default run, 2026-12-07", has its share of the evaluation's time). Name
# it in heldout_reasoning.families to judge it.
DEFAULT_HELDOUT_FAMILIES = [f for f in DEFAULT_FAMILIES if split_level(f)[1] is not None]


class HeldoutSettings(Settings):
    """Which held-out items every model is evaluated on (each family with the levels above it:
    the generation evaluates the levels the frontier chose)."""

    families: list[str] = Field(
        default=list(DEFAULT_HELDOUT_FAMILIES),
        description="reasoning-gym families, a level as family@L (default: the task pool's families with levels)",
    )
    levels_above: LevelsAbove = 2
    items_per_family: int = Field(default=100, ge=1, description="items per family and variant")
    variants: list[str] = Field(default=list(VARIANTS), description="heldout, harder, rephrased")
    seed: int = Field(default=HELDOUT_SEED, description="first seed; keep it far from every training seed")


def harder_config(family: str) -> dict | None:
    """The configuration of the family's harder variant: the next level up for a family with a
    level (``chain_sum@1`` -> ``chain_sum@2``'s configuration), else sizes training never shows
    (HARDER); None when no harder setting is known."""
    base, level = split_level(family)
    if level is not None and level < levels_of(family):
        return level_config(with_level(family, level + 1))
    if base in HARDER:
        return {**level_config(family), **HARDER[base]}
    return None


def heldout_items(settings: HeldoutSettings, prompts: PromptSettings) -> pl.DataFrame:
    """Every held-out item: one row per (family, variant, index). Each item's few-shot examples
    are its own draw from the level's pool (PromptSettings.few_shot_pool), the same for every
    model, so the last example's answer is no longer one constant a model can copy."""
    known = set(reasoning_gym_families())
    unknown = [f for f in settings.families if split_level(f)[0] not in known]
    if unknown:
        raise SynthConfigError(f"heldout_reasoning.families: unknown reasoning-gym families {unknown}")
    bad = [v for v in settings.variants if v not in VARIANTS]
    if bad:
        raise SynthConfigError(f"heldout_reasoning.variants: {bad} are not variants; use {list(VARIANTS)}")
    rows = []
    n = settings.items_per_family
    for family in ladder(settings.families, settings.levels_above):
        for variant in settings.variants:
            with naming_field("heldout_reasoning.families"):
                config = harder_config(family) if variant == "harder" else level_config(family)
                if config is None:
                    continue  # no harder setting is known for this family
                # a level's held-out items: distinct questions the task pool never draws
                ds, indices, size = draw_items(family, n, settings.seed, heldout=True, config=config)
            for i in indices:
                entry = ds[i]
                q = entry["question"]
                asked = prompts.ask(
                    family, q, f"heldout/{settings.seed}/{family}/{variant}/{i}", rephrased=variant == "rephrased"
                )
                prompt = asked.prompt
                spec = {"family": family, "config": config, "seed": settings.seed, "size": size, "index": i}
                # the budget is part of the item: stored answers are reused by item id, and an answer
                # cut at another budget is another answer
                key = hashlib.sha256(
                    json.dumps([variant, spec, prompt, asked.max_tokens], sort_keys=True).encode()
                ).hexdigest()[:16]
                rows.append(
                    {
                        "item_id": f"{family}/{variant}/{key}",
                        "family": family,
                        "variant": variant,
                        "question": q,
                        "answer": str(entry["answer"]),
                        "prompt": prompt,
                        "last_shot_answer": asked.last_shot_answer,
                        "max_tokens": asked.max_tokens,
                        "spec": json.dumps(spec, sort_keys=True),
                    }
                )
    return conform(rows, HELDOUT_SCHEMA)


def decontaminate(items: pl.DataFrame, training_prompts: pl.Series) -> tuple[pl.DataFrame, int]:
    """Drop items whose question is one of the training rows' prompts (whitespace-normalised)."""

    def norm(s: object) -> str:
        return " ".join(str(s).split())

    seen = {norm(p) for p in training_prompts.drop_nulls().to_list()}
    keep = items.filter(~pl.col("question").map_elements(lambda q: norm(q) in seen, return_dtype=pl.Boolean))
    return keep, items.height - keep.height


def score(item: dict, answer: str) -> bool:
    """reasoning-gym's own scorer, on the item's dataset rebuilt from its spec."""
    spec = json.loads(item["spec"])
    # items stored before levels carry their harder sizes as "overrides" on the default configuration
    config = spec["config"] if "config" in spec else spec["overrides"]
    ds = reasoning_gym_dataset(spec["family"], spec["size"], spec["seed"], config)
    return passes(ds, ds[spec["index"]], answer)


def passes(ds: object, entry: dict, answer: str) -> bool:
    """The scorer gives full marks (``score_reasoning_gym``: reasoning-gym's, exact for the families
    whose own scorer is lenient); a scorer crash on a malformed answer is a wrong answer."""
    try:
        return score_reasoning_gym(ds, answer, entry) >= 1.0
    except Exception:  # noqa: BLE001 (whatever the scorer raises on a malformed answer)
        return False


def trivial_baselines(items: pl.DataFrame) -> pl.DataFrame:
    """Per item, whether the trivial predictors are right: always the most common answer of the
    variant (the strongest constant), always the last shot's answer, and the question's own list
    as given (``as_given_answer``: families where echoing the input is a strategy; False elsewhere)."""
    out = []
    for (family, variant), part in items.group_by(["family", "variant"], maintain_order=True):
        counts = Counter(part["answer"].to_list())
        mode = min(counts, key=lambda a: (-counts[a], a))  # ties: the smallest, so the choice is stable
        for r in part.iter_rows(named=True):
            out.append(
                {
                    "item_id": r["item_id"],
                    "family": family,
                    "variant": variant,
                    "answer": r["answer"],
                    "most_common": r["answer"] == mode,
                    "last_shot": r["answer"] == r["last_shot_answer"],
                    "as_given": r["answer"] == as_given_answer(family, r.get("question") or ""),
                }
            )
    return pl.DataFrame(
        out,
        schema={
            "item_id": pl.String,
            "family": pl.String,
            "variant": pl.String,
            "answer": pl.String,
            "most_common": pl.Boolean,
            "last_shot": pl.Boolean,
            "as_given": pl.Boolean,
        },
    )
