"""The capability frontier: per family and difficulty level, what the model in service can do,
and where the loop should generate.

A round of the loop teaches only where the model can learn: where sampling already finds right
answers that greedy decoding misses (STaR and rejection-sampling fine-tuning move the greedy
answer toward what sampling finds), well above what guessing explains, and not already mastered.
Trained at level 1 of chain_sum, one round took the embedded model from 42 to 74 of 100 greedy,
and the next level up rose too; trained where it only guessed (gcd and letter_counting at their
default sizes, where a guesser drawing from the answer distribution passes as often as the
model), nothing moved.

Measured per model (greedy decoding and the sampling temperature make it a property of the model
and the items), on items of their own seed, disjoint from the task pool's and the held-out ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import (
    ANSWER_STOP,
    PromptSettings,
    SampleRequest,
    TextGenerator,
    answer_prompt,
)
from synth_assets.core.settings import Settings
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.sources import (
    level_config,
    levels_of,
    reasoning_gym_dataset,
    split_level,
    with_level,
)
from synth_assets.core.training.heldout import passes
from synth_assets.core.verify.verification import extract_short_answer

REFERENCE_DRAW = 500  # items of a level drawn to estimate its answer distribution
FRONTIER_SEED = 9_000_000  # far from the task pool's (42 + generation) and the held-out items' (7,000,000)

FRONTIER_SCHEMA: dict[str, pl.DataType] = {
    "model_id": pl.String,
    "family": pl.String,  # family@level
    "base_family": pl.String,
    "level": pl.Int64,
    "items": pl.Int64,
    "greedy_rate": pl.Float64,
    "greedy_low": pl.Float64,
    "greedy_high": pl.Float64,
    "sample_rate": pl.Float64,  # share of all samples that pass
    "pass_at_k": pl.Float64,  # share of items with at least one passing sample
    "guess_sample_rate": pl.Float64,  # a guesser drawing from the level's answer distribution
    "guess_pass_at_k": pl.Float64,
    "most_common_rate": pl.Float64,  # always the most common answer
    "last_shot_rate": pl.Float64,  # always the last example's answer
    "status": pl.String,  # mastered | learnable | guessing | too_hard
}


class FrontierSettings(Settings):
    """Which families and levels the frontier measures, and what counts as learnable."""

    families: list[str] = Field(
        default=["chain_sum", "leg_counting", "basic_arithmetic", "gcd"],
        description="families with difficulty levels (reasoning-gym names without @level)",
    )
    max_level: int = Field(default=3, ge=1, description="levels measured per family (1 to this, or the ladder's top)")
    items_per_level: int = Field(default=30, ge=1, description="items per family and level")
    samples: int = Field(default=8, ge=1, description="samples per item at the temperature (pass@k's k)")
    temperature: float = Field(default=0.8, gt=0, le=2)
    seed: int = Field(default=FRONTIER_SEED, description="items' seed; keep it far from the pool's and held-out's")
    mastered: float = Field(
        default=0.8, gt=0, le=1, description="greedy pass rate at which a level is mastered (the next one is tried)"
    )
    min_gap: float = Field(
        default=0.1, ge=0, le=1, description="pass@k minus greedy rate a level needs: sampling finds what greedy misses"
    )
    guess_margin: float = Field(
        default=0.1, ge=0, le=1, description="how far above the guessers' pass@k the model's must be"
    )


def guess_rates(answers: list[str], k: int, reference: list[str] | None = None) -> tuple[float, float]:
    """(per-sample pass rate, pass@k) on ``answers`` of a guesser that draws each answer from the
    level's answer distribution (estimated from ``reference``, a larger draw of the level; default
    ``answers`` themselves): a model reaches these by learning the distribution, not the task.
    Estimated from the measured items alone, the distribution knows their answers: with 30 items
    of chain_sum@2 that put the guesser's pass@8 at 0.32, far above a real guesser's."""
    n, ref = len(answers), reference or answers
    if not n:
        return 0.0, 0.0
    share = {a: c / len(ref) for a, c in Counter(ref).items()}
    per_sample = sum(share.get(a, 0.0) for a in answers) / n
    at_k = sum(1 - (1 - share.get(a, 0.0)) ** k for a in answers) / n
    return per_sample, at_k


def classify(greedy: float, pass_at_k: float, guess_at_k: float, trivial: float, settings: FrontierSettings) -> str:
    """mastered: greedy at the mastery rate and above every trivial baseline; guessing: sampling
    does no better than a guesser; learnable: sampling finds right answers that greedy misses,
    by ``min_gap``; else too_hard."""
    if greedy >= settings.mastered and greedy > trivial + settings.guess_margin:
        return "mastered"
    if pass_at_k < guess_at_k + settings.guess_margin:
        return "guessing"
    if pass_at_k - greedy >= settings.min_gap:
        return "learnable"
    return "too_hard"


def frontier_items(family: str, settings: FrontierSettings, prompts: PromptSettings) -> list[dict]:
    """The items of one family@level: question, answer, prompt (its own few-shot draw)."""
    ds = reasoning_gym_dataset(family, settings.items_per_level, settings.seed)
    out = []
    for i in range(settings.items_per_level):
        entry = ds[i]
        shots = prompts.shots(family, f"frontier/{settings.seed}/{family}/{i}")
        out.append(
            {
                "index": i,
                "answer": str(entry["answer"]),
                "prompt": answer_prompt(entry["question"], shots),
                "last_shot": shots[-1][1] if shots else "",
                "entry": entry,
            }
        )
    return out


def measure_level(
    generator: TextGenerator, model_id: str, family: str, settings: FrontierSettings, prompts: PromptSettings
) -> dict:
    """One row of FRONTIER_SCHEMA: the model's greedy answer and ``samples`` sampled answers per item."""
    base, level = split_level(family)
    ds = reasoning_gym_dataset(family, settings.items_per_level, settings.seed)
    items = frontier_items(family, settings, prompts)
    requests = []
    for it in items:
        for j in range(settings.samples + 1):
            greedy = j == 0
            requests.append(
                SampleRequest(
                    task_id=f"frontier/{family}/{it['index']}",
                    prompt=it["prompt"],
                    prompt_template=prompts.template,
                    temperature=0.0 if greedy else settings.temperature,
                    top_p=1.0 if greedy else 0.95,
                    max_tokens=prompts.answer_max_tokens,
                    stop=ANSWER_STOP,
                    seed=settings.seed + it["index"] * 1000 + j,
                    sample_index=j,
                )
            )
    samples = list(generator.generate(requests))

    per = settings.samples + 1
    greedy_ok, any_ok, sampled_ok = 0, 0, 0
    for n, it in enumerate(items):
        outcomes = [
            passes(ds, it["entry"], extract_short_answer(s.text or "")) for s in samples[n * per : (n + 1) * per]
        ]
        greedy_ok += outcomes[0]
        any_ok += any(outcomes[1:])
        sampled_ok += sum(outcomes[1:])
    answers = [it["answer"] for it in items]
    # the level's answer distribution, from a larger draw of its own seed: what a guesser or a
    # constant predictor could learn from the level without solving anything
    ref_ds = reasoning_gym_dataset(family, REFERENCE_DRAW, settings.seed + 1)
    reference = [str(ref_ds[i]["answer"]) for i in range(REFERENCE_DRAW)]
    mode, _ = Counter(reference).most_common(1)[0]
    k = len(items)
    most_common = sum(a == mode for a in answers) / k
    last_shot = sum(it["answer"] == it["last_shot"] for it in items) / k
    guess_sample, guess_at_k = guess_rates(answers, settings.samples, reference)
    greedy = greedy_ok / k
    lo, hi = wilson(greedy_ok, k)
    pass_at_k = any_ok / k
    return {
        "model_id": model_id,
        "family": family,
        "base_family": base,
        "level": level or 0,
        "items": k,
        "greedy_rate": greedy,
        "greedy_low": lo,
        "greedy_high": hi,
        "sample_rate": sampled_ok / (k * settings.samples),
        "pass_at_k": pass_at_k,
        "guess_sample_rate": guess_sample,
        "guess_pass_at_k": guess_at_k,
        "most_common_rate": most_common,
        "last_shot_rate": last_shot,
        "status": classify(greedy, pass_at_k, guess_at_k, max(most_common, last_shot), settings),
    }


def measure_frontier(
    generator: TextGenerator,
    model_id: str,
    settings: FrontierSettings,
    prompts: PromptSettings,
    log: Callable[[str], None] = lambda _m: None,
) -> pl.DataFrame:
    """Every family's levels from 1, bottom up, stopping above the first level that is not
    mastered (the levels above it are harder still: measuring them costs and decides nothing)."""
    rows = []
    for family in settings.families:
        base, level = split_level(family)
        if level is not None:
            raise SynthConfigError(
                f"candidate frontier.families: {family!r}: name the family without a level ({base}); "
                "the frontier measures its levels"
            )
        top = min(settings.max_level, levels_of(base))
        if not top:
            raise SynthConfigError(f"frontier.families: {base} has no difficulty levels (reasoning_gym LEVELS)")
        for lvl in range(1, top + 1):
            level_config(with_level(base, lvl))  # the level exists
            row = measure_level(generator, model_id, with_level(base, lvl), settings, prompts)
            rows.append(row)
            log(
                f"frontier {model_id}: {row['family']} greedy {row['greedy_rate']:.2f}, pass@{settings.samples} "
                f"{row['pass_at_k']:.2f} (guesser {row['guess_pass_at_k']:.2f}): {row['status']}"
            )
            if row["status"] != "mastered":
                break
    return pl.DataFrame(rows, schema=FRONTIER_SCHEMA) if rows else pl.DataFrame(schema=FRONTIER_SCHEMA)


def chosen_levels(frontier: pl.DataFrame) -> list[str]:
    """The family@level to generate at, per family: the lowest learnable level above the
    mastered ones; a family whose lowest unmastered level is guessing or too hard is left out
    (training there teaches guessing); a family mastered at every level measured moves up to the
    next level of its ladder (or stays at its top)."""
    out = []
    for (base,), part in frontier.sort("level").group_by("base_family", maintain_order=True):
        pick = None
        for family, level, status in part.select("family", "level", "status").rows():
            if status == "mastered":
                pick = with_level(base, min(level + 1, levels_of(base)))
                continue
            pick = family if status == "learnable" else None
            break
        if pick is not None:
            out.append(pick)
    return out
