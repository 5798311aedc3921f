"""From verified candidates to the filtered set, with a reason for every dropped row.

Order matters and is fixed, so each row gets the first reason that applies:
verification verdict, empty completion, exact duplicate (normalised text, per task),
contamination (word n-gram overlap with held-out items).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from synth_assets.core.tasks import conform
from synth_assets.core.verification import VERDICT_SCHEMA

FILTERED_SCHEMA: dict[str, pl.DataType] = {**VERDICT_SCHEMA, "training_text": pl.String, "text_hash": pl.String}
DROP_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.String,
    "generation": pl.Int64,
    "task_id": pl.String,
    "family": pl.String,
    "verdict": pl.String,
    "drop_reason": pl.String,
    "drop_detail": pl.String,
    "completion": pl.String,
}

_WORD = re.compile(r"\w+")


# word n-gram length shared with a held-out item that counts as contamination (all stages)
DECONTAMINATION_NGRAM = 13


@dataclass(frozen=True)
class CurationSettings:
    decontamination_ngram: int = DECONTAMINATION_NGRAM


def training_text(row: dict) -> str:
    """What the assistant turn of a training example says for this candidate."""
    if row["verifier"] == "python_tests":
        return f"{row['prompt']}{row['completion'] or ''}".rstrip() + "\n"
    return (row.get("extracted_answer") or row["completion"] or "").strip()


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def heldout_ngrams(texts: Iterable[str], n: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for t in texts:
        out |= word_ngrams(t, n)
    return out


def heldout_texts_of(heldout: pl.DataFrame) -> list[str]:
    """What decontamination compares against: each held-out item's prompt and response."""
    return [f"{p}\n{r}" for p, r in zip(heldout["prompt"].to_list(), heldout["response"].to_list())]


def decontaminate_references(
    human: pl.DataFrame, heldout_texts: list[str], n: int
) -> tuple[pl.DataFrame, list[str]]:
    """Human rows that share no word n-gram with a held-out item, and the ids of those that do.

    HumanEval has sibling tasks with near-identical docstrings, so a split by task id alone
    leaks held-out text into the human half.
    """
    banned = heldout_ngrams(heldout_texts, n)
    bad = [
        r["ref_id"]
        for r in human.select("ref_id", "prompt", "response").iter_rows(named=True)
        if word_ngrams(f"{r['prompt']}\n{r['response']}", n) & banned
    ]
    return human.filter(~pl.col("ref_id").is_in(bad)), bad


def curate(
    verified: pl.DataFrame, heldout_texts: list[str], settings: CurationSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept rows, dropped rows with reasons); together they hold every input row once."""
    n = settings.decontamination_ngram
    if n < 3:
        from synth_assets.core.errors import SynthConfigError

        raise SynthConfigError(f"filtered_set.decontamination_ngram must be >= 3 (got {n}); small n drops everything")
    banned = heldout_ngrams(heldout_texts, n)
    kept, dropped, seen = [], [], set()
    for row in verified.iter_rows(named=True):
        text = training_text(row)
        reason, detail = None, ""
        if row["verdict"] != "pass":
            reason, detail = f"verdict_{row['verdict']}", (row["verdict_detail"] or "")[:200]
        elif not text.strip() or (row["verifier"] == "python_tests" and not (row["completion"] or "").strip()):
            reason, detail = "empty_completion", "nothing generated"
        else:
            key = (row["task_id"], normalise(text))
            if key in seen:
                reason, detail = "exact_duplicate", "same normalised text as another candidate of this task"
            else:
                overlap = word_ngrams(f"{row['prompt']}\n{text}", n) & banned
                if overlap:
                    reason = "contaminated_heldout"
                    detail = f"{len(overlap)} shared {n}-grams with held-out items, e.g. {' '.join(next(iter(overlap)))!r}"
                else:
                    seen.add(key)
        if reason:
            dropped.append({**row, "drop_reason": reason, "drop_detail": detail})
        else:
            kept.append({**row, "training_text": text,
                         "text_hash": hashlib.sha256(normalise(text).encode()).hexdigest()[:16]})
    return conform(kept, FILTERED_SCHEMA), conform(dropped, DROP_SCHEMA)
