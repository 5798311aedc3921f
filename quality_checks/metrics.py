"""Lexical diversity metrics over a list of texts: pure functions, no Dagster.

Most of these depend strongly on how many tokens they see (distinct-n falls as a corpus
grows), so generations are always compared on the same token budget: ``take_budget`` cuts
every corpus to the same number of tokens, in a stable document order.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def take_budget(texts: Sequence[str], budget: int) -> list[list[str]]:
    """Token lists of whole documents (the last one cut) until ``budget`` tokens are taken.

    Documents are ordered by a hash of their text so the sample does not depend on row order.
    """
    out, total = [], 0
    for text in sorted(texts, key=lambda t: hashlib.sha1(t.encode()).hexdigest()):
        if total >= budget:
            break
        toks = tokenize(text)[: budget - total]
        if toks:
            out.append(toks)
            total += len(toks)
    return out


def n_tokens(docs: Sequence[Sequence[str]]) -> int:
    return sum(len(d) for d in docs)


def distinct_n(docs: Sequence[Sequence[str]], n: int) -> float:
    """Unique n-grams / all n-grams; n-grams never cross documents (Li et al. 2016)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for d in docs:
        grams.update(tuple(d[i : i + n]) for i in range(len(d) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def compression_ratio(docs: Sequence[Sequence[str]]) -> float:
    """Raw bytes / gzip bytes of the budgeted text: higher means more redundant."""
    raw = "\n".join(" ".join(d) for d in docs).encode()
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0)) if raw else 0.0


def vocabulary(docs: Sequence[Sequence[str]]) -> Counter[str]:
    c: Counter[str] = Counter()
    for d in docs:
        c.update(d)
    return c


def hapax_ratio(docs: Sequence[Sequence[str]]) -> float:
    """Share of types seen exactly once: a direct indicator of the vocabulary's tail."""
    v = vocabulary(docs)
    return sum(1 for c in v.values() if c == 1) / len(v) if v else 0.0


def mean_length(texts: Sequence[str]) -> float:
    return sum(len(tokenize(t)) for t in texts) / len(texts) if texts else 0.0


def lexical_profile(texts: Sequence[str], budget: int) -> dict[str, float]:
    """Every metric of the drift report for one corpus at one token budget."""
    docs = take_budget(texts, budget)
    return {
        "distinct_1": distinct_n(docs, 1),
        "distinct_2": distinct_n(docs, 2),
        "distinct_3": distinct_n(docs, 3),
        "compression_ratio": compression_ratio(docs),
        "vocabulary_size": float(len(vocabulary(docs))),
        "hapax_ratio": hapax_ratio(docs),
        "mean_length_tokens": mean_length(texts),
        "documents": float(len(texts)),
        "tokens_measured": float(n_tokens(docs)),
    }
