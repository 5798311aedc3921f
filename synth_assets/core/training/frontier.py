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
    PromptSettings,
    SampleRequest,
    TextGenerator,
    is_rationale_template,
)
from synth_assets.core.settings import Settings
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.sources import (
    LEVEL_SEP,
    LEVELS,
    as_given_answer,
    level_config,
    levels_of,
    reasoning_gym_dataset,
    split_level,
    with_level,
)
from synth_assets.core.training.heldout import passes
from synth_assets.core.verify.verification import read_answer

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
    "as_given_rate": pl.Float64,  # the question's own list, as given (sorting families; 0 elsewhere)
    "status": pl.String,  # mastered | learnable | guessing | plateau | configured (steer off: not measured)
    "chosen": pl.Boolean,  # the loop generates at this level this generation
    "settings_key": pl.String,  # FrontierSettings.key() of the measurement, and the prompts' shots
}


class FrontierSettings(Settings):
    """How the frontier is measured, and what counts as mastered, learnable and worth climbing."""

    steer: bool = Field(
        default=True,
        description="generate at the levels the frontier chooses for the model in service; false: at the "
        "levels written in task_pool.reasoning_gym_families, unmeasured",
    )
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
    climb_at: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="greedy pass rate at a learnable level from which the next level up is generated at too "
        "(when it is learnable): a model better at one level is the generator for the next",
    )

    def key(self) -> str:
        return f"items={self.items_per_level},samples={self.samples},T={self.temperature},seed={self.seed}"


def measurement_key(settings: FrontierSettings, prompts: PromptSettings) -> str:
    """What makes two measurements of one model comparable: a stored row is reused only on a match."""
    return f"{settings.key()},{prompts.template}" + (",rationale" if prompts.form == "rationale" else "")


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
    by ``min_gap``; else plateau: sampling finds little greedy misses, so training on the
    model's own right samples has little to teach (g1 at chain_sum@2: greedy 0.43, pass@8 0.47;
    the name said "too hard" of a level the model passed nearly half the time)."""
    if greedy >= settings.mastered and greedy > trivial + settings.guess_margin:
        return "mastered"
    if pass_at_k < guess_at_k + settings.guess_margin:
        return "guessing"
    if pass_at_k - greedy >= settings.min_gap:
        return "learnable"
    return "plateau"


def frontier_items(family: str, settings: FrontierSettings, prompts: PromptSettings) -> list[dict]:
    """The items of one family@level: question, answer, prompt (its own few-shot draw)."""
    ds = reasoning_gym_dataset(family, settings.items_per_level, settings.seed)
    out = []
    for i in range(settings.items_per_level):
        entry = ds[i]
        asked = prompts.ask(family, entry["question"], f"frontier/{settings.seed}/{family}/{i}")
        out.append(
            {
                "index": i,
                "answer": str(entry["answer"]),
                "prompt": asked.prompt,
                "asked": asked,
                "last_shot": asked.last_shot_answer,
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
                    prompt_template=it["asked"].template,
                    temperature=0.0 if greedy else settings.temperature,
                    top_p=1.0 if greedy else 0.95,
                    max_tokens=it["asked"].max_tokens,
                    stop=it["asked"].stop,
                    seed=settings.seed + it["index"] * 1000 + j,
                    sample_index=j,
                )
            )
    samples = list(generator.generate(requests))

    per = settings.samples + 1
    greedy_ok, any_ok, sampled_ok = 0, 0, 0
    for n, it in enumerate(items):
        # greedy is scored on its answer, as the held-out items are; a sample passes as verification
        # passes it (a rationale's steps checked too), since samples are what a round trains on
        rationale = is_rationale_template(it["asked"].template)
        outcomes = []
        for j, s in enumerate(samples[n * per : (n + 1) * per]):
            answer, wrong = read_answer(s.text or "", rationale)
            outcomes.append(passes(ds, it["entry"], answer) and (j == 0 or not wrong))
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
    as_given = sum(it["answer"] == as_given_answer(family, it["entry"]["question"]) for it in items) / k
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
        "as_given_rate": as_given,
        # echoing the question's list is right as often as as_given on every item, at any k: a
        # level where sampling finds no more than that is guessing (word_sorting@1 with 2-3 words)
        "status": classify(
            greedy, pass_at_k, max(guess_at_k, as_given), max(most_common, last_shot, as_given), settings
        ),
        "chosen": False,
        "settings_key": measurement_key(settings, prompts),
    }


def measure_frontier(
    generator: TextGenerator,
    model_id: str,
    starts: list[str],
    settings: FrontierSettings,
    prompts: PromptSettings,
    top: dict[str, int] | None = None,
    stored: dict[str, dict] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> pl.DataFrame:
    """Each family's ladder from its start level (``chain_sum@2``, or ``chain_sum`` for level 1)
    up: a mastered level sends the walk one level up; at the first level that is not mastered the
    walk stops, except that a learnable level whose greedy rate reaches ``climb_at`` has the next
    level measured too (it may be generated at as well). Levels above the walk are harder still:
    measuring them costs and decides nothing. ``top`` bounds a family's levels (default: its
    ladder's top); ``stored`` holds rows already measured for this model by family@level, which
    are reused instead of measured again. ``chosen`` marks the levels to generate at."""
    rows = []
    for start in starts:
        base, level = split_level(start)
        ladder_top = levels_of(base)
        if not ladder_top:
            raise SynthConfigError(
                f"frontier: family {start!r} has no difficulty levels; families with levels: "
                f"{', '.join(sorted(LEVELS))} (write them as family@L in task_pool.reasoning_gym_families)"
            )
        last = min((top or {}).get(base, ladder_top), ladder_top)
        lvl = level or 1
        climbing = False  # measuring the level above a learnable one: the walk's last step
        while lvl <= last:
            family = with_level(base, lvl)
            level_config(family)  # the level exists
            row = (stored or {}).get(family)
            if row is not None:  # measured before; its status under today's thresholds
                trivial = max(row["most_common_rate"], row["last_shot_rate"])
                row = row | {
                    "status": classify(row["greedy_rate"], row["pass_at_k"], row["guess_pass_at_k"], trivial, settings)
                }
            if row is None:
                row = measure_level(generator, model_id, family, settings, prompts)
                log(
                    f"frontier {model_id}: {family} greedy {row['greedy_rate']:.2f}, pass@{settings.samples} "
                    f"{row['pass_at_k']:.2f} (guesser {row['guess_pass_at_k']:.2f}): {row['status']}"
                )
            rows.append(dict(row))
            if climbing:
                break
            if row["status"] != "mastered":
                climbing = row["status"] == "learnable" and row["greedy_rate"] >= settings.climb_at
                if not climbing:
                    break
            lvl += 1
    frame = pl.DataFrame(rows, schema=FRONTIER_SCHEMA) if rows else pl.DataFrame(schema=FRONTIER_SCHEMA)
    chosen = set(chosen_levels(frame, settings, top))
    return frame.with_columns(pl.col("family").is_in(sorted(chosen)).alias("chosen"))


def chosen_levels(frontier: pl.DataFrame, settings: FrontierSettings, top: dict[str, int] | None = None) -> list[str]:
    """The family@level to generate at, per family, bottom up past the mastered levels: the first
    level that is not mastered when it is learnable, and the level above it too when that one is
    learnable and the model's greedy rate at the first reaches ``climb_at`` (a model good at one
    level is the generator for the next; the pilot's second round climbed this way). A family
    whose first unmastered level is guessing or a plateau is left out (training there teaches
    guessing); a family mastered at every level measured moves up a level (to ``top`` at most)."""
    out = []
    for (base,), part in frontier.sort("level").group_by("base_family", maintain_order=True):
        rows = part.select("family", "level", "status", "greedy_rate").rows(named=True)
        picks: list[str] = []
        for n, r in enumerate(rows):
            if r["status"] == "mastered":
                if n == len(rows) - 1:  # mastered as far as measured: the next level up
                    last = min((top or {}).get(base, levels_of(base)), levels_of(base))
                    picks = [with_level(base, min(r["level"] + 1, last))]
                continue
            if r["status"] == "learnable":
                picks = [r["family"]]
                nxt = rows[n + 1] if n + 1 < len(rows) else None
                if nxt and nxt["status"] == "learnable" and (r["greedy_rate"] or 0) >= settings.climb_at:
                    picks.append(nxt["family"])
            break
        out += picks
    return out


def configured_levels(starts: list[str], model_id: str) -> pl.DataFrame:
    """Steering off: each family at the level written, unmeasured, chosen."""
    rows = []
    for start in starts:
        base, level = split_level(start)
        rows.append(
            {"model_id": model_id, "family": start, "base_family": base, "level": level or 0, "items": 0}
            | {"status": "configured", "chosen": True, "settings_key": ""}
        )
    return pl.DataFrame(rows, schema=FRONTIER_SCHEMA) if rows else pl.DataFrame(schema=FRONTIER_SCHEMA)


def chosen_families(frontier: pl.DataFrame) -> list[str]:
    """The family@level a generation uses, sorted (none for an empty or unwritten frontier)."""
    return sorted(frontier.filter(pl.col("chosen"))["family"].to_list()) if "chosen" in frontier.columns else []


def at_chosen_levels(df: pl.DataFrame, frontier: pl.DataFrame, column: str = "family") -> pl.DataFrame:
    """The rows of ``df`` a generation uses: every family without a level, and of the families
    with one only the levels the frontier chose (the task pool and the held-out items hold each
    family's ladder; the frontier picks the rungs). An empty frontier (none stored for the
    generation: the frontier was not materialized, or no family has levels) leaves ``df`` as it is."""
    if frontier.height == 0:
        return df
    chosen = chosen_families(frontier)
    return df.filter(~pl.col(column).str.contains(LEVEL_SEP, literal=True) | pl.col(column).is_in(chosen))


def heldout_at_chosen_levels(items: pl.DataFrame, frontier: pl.DataFrame) -> pl.DataFrame:
    """The held-out items a generation is judged on (``at_chosen_levels``); a chosen level without
    held-out items is a configuration error that names the field (the held-out ladder is shorter
    than the task pool's)."""
    chosen = chosen_families(frontier)
    have = set(items["family"].to_list())
    missing = sorted(f for f in chosen if f not in have)
    if missing:
        raise SynthConfigError(
            f"heldout_reasoning: no held-out items at {missing}, where this generation trains; "
            "set heldout_reasoning.families and heldout_reasoning.levels_above as task_pool's "
            "reasoning_gym_families and levels_above"
        )
    return at_chosen_levels(items, frontier)
