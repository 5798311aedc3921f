"""A model's answers on the held-out items: greedy, one per item, scored by reasoning-gym.

Greedy decoding makes a model's score a property of the model and the items alone, so a
model's per-item results are computed once and reused (the parent in service is not re-run
when its candidate is evaluated), and candidate and parent are compared item by item.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import polars as pl

from synth_assets.core.generators.generation import (
    ANSWER_STOP,
    RATIONALE_MAX_TOKENS,
    RATIONALE_STOP,
    SampleRequest,
    TextGenerator,
    is_rationale_prompt,
)
from synth_assets.core.training.heldout import score
from synth_assets.core.verify.verification import read_answer

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "model_id": pl.String,
    "item_id": pl.String,
    "family": pl.String,
    "variant": pl.String,
    "completion": pl.String,
    "answer_given": pl.String,
    "correct": pl.Boolean,
}


def heldout_requests(items: pl.DataFrame, max_tokens: int = 24) -> tuple[pl.DataFrame, list[SampleRequest]]:
    """The items in the order the evaluation sends them, and its request for each: one greedy
    answer, within the item's own token budget (its ``max_tokens``, set from PromptSettings when
    the item was built; ``max_tokens`` here, or the rationale budget, for items stored without
    one). A family's items run back to back, by prompt, so llama.cpp reuses evaluated shared
    prefixes; the benches time these same requests."""
    # by prompt within a family and variant: items whose (per-item) few-shot draws share the first
    # example are adjacent, so the batched decoder evaluates that prefix once
    items = items.sort(["family", "variant", "prompt", "item_id"])
    return items, [
        SampleRequest(
            task_id=r["item_id"],
            prompt=r["prompt"],
            prompt_template=f"heldout_{r['variant']}",
            temperature=0.0,
            top_p=1.0,
            # a rationale prompt's item stops at the rationale's stop strings (the prompt says which)
            max_tokens=r.get("max_tokens")
            or (RATIONALE_MAX_TOKENS if is_rationale_prompt(r["prompt"]) else max_tokens),
            stop=RATIONALE_STOP if is_rationale_prompt(r["prompt"]) else ANSWER_STOP,
            seed=0,
            sample_index=0,
        )
        for r in items.iter_rows(named=True)
    ]


def evaluate(
    generator: TextGenerator,
    model_id: str,
    items: pl.DataFrame,
    max_tokens: int = 24,
    log: Callable[[str], None] = lambda _m: None,
    log_every_s: float = 15.0,
) -> pl.DataFrame:
    """One greedy answer per item (``heldout_requests``), scored."""
    items, requests = heldout_requests(items, max_tokens)
    rows, started, last = [], time.monotonic(), time.monotonic()
    for n, (item, sample) in enumerate(zip(items.iter_rows(named=True), generator.generate(requests), strict=True), 1):
        # the answer is scored; the steps of a rationale are not (they decide training data only)
        given, _wrong = read_answer(sample.text or "", is_rationale_prompt(item["prompt"]))
        rows.append(
            {
                "model_id": model_id,
                "item_id": item["item_id"],
                "family": item["family"],
                "variant": item["variant"],
                "completion": sample.text,
                "answer_given": given,
                "correct": score(item, given),
            }
        )
        if time.monotonic() - last >= log_every_s or n == len(requests):
            log(f"{model_id}: evaluated {n}/{len(requests)} held-out items ({time.monotonic() - started:.0f}s)")
            last = time.monotonic()
    return pl.DataFrame(rows, schema=SCORE_SCHEMA)


def as_verdict_rows(scores: pl.DataFrame, items: pl.DataFrame, model: str, generation: int) -> pl.DataFrame:
    """Held-out reasoning results as rows of generator_eval (VERDICT_SCHEMA): the variant is
    the prompt template (``heldout_heldout``, ``heldout_harder``, ``heldout_rephrased``)."""
    from synth_assets.core.tasks.sources import conform
    from synth_assets.core.verify.verification import VERDICT_SCHEMA

    df = scores.join(items.select("item_id", "question", "answer"), on="item_id", how="left")
    rows = [
        {
            "candidate_id": f"g{generation}/eval/{r['item_id']}",
            "generation": generation,
            "task_id": r["item_id"],
            "source": "reasoning_gym",
            "family": r["family"],
            "domain": "procedural",
            "prompt": r["question"],
            "answer": r["answer"],
            "verifier": "reasoning_gym",
            "completion": r["completion"],
            "model": model,
            "prompt_template": f"heldout_{r['variant']}",
            "temperature": 0.0,
            "extracted_answer": r["answer_given"],
            "verdict": "pass" if r["correct"] else "fail",
            "score": 1.0 if r["correct"] else 0.0,
            "verifier_name": "reasoning_gym:heldout",
        }
        for r in df.iter_rows(named=True)
    ]
    return conform(rows, VERDICT_SCHEMA)
