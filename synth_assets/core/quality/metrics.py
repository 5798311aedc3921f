"""Lexical diversity metrics over a list of texts: pure functions, no Dagster.

Most of these depend strongly on how many tokens they see (distinct-n falls as a corpus
grows), so generations are always compared on the same token budget: ``take_budget`` cuts
every corpus to the same number of tokens, in a stable document order.
"""

from __future__ import annotations

import gzip
import hashlib
import math
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


def lexical_profile(
    texts: Sequence[str], budget: int, reference: Sequence[str] | None = None, rare: set[str] | None = None
) -> dict[str, float]:
    """Every metric of the drift report for one corpus at one token budget.

    ``reference`` (human texts, same budget) enables the distance metrics; ``rare`` is the set
    of the reference's rare types (``rare_types``), computed once per report.
    """
    docs = take_budget(texts, budget)
    used = sorted(texts, key=lambda t: hashlib.sha1(t.encode()).hexdigest())[: len(docs)]
    out = {
        "distinct_1": distinct_n(docs, 1),
        "distinct_2": distinct_n(docs, 2),
        "distinct_3": distinct_n(docs, 3),
        "compression_ratio": compression_ratio(docs),
        "vocabulary_size": float(len(vocabulary(docs))),
        "hapax_ratio": hapax_ratio(docs),
        "opening_concentration": opening_concentration(used),
        "near_duplicate_rate": near_duplicate_rate(used),
        "mean_length_tokens": mean_length(texts),
        "documents": float(len(texts)),
        "tokens_measured": float(n_tokens(docs)),
    }
    if reference is not None:
        ref_docs = take_budget(reference, budget)
        out["js_distance_to_human"] = js_distance(docs, ref_docs)
        out["rare_type_coverage"] = rare_type_coverage(docs, rare if rare is not None else rare_types(ref_docs))
        out["length_ks_vs_human"] = length_ks(texts, reference)[0]
    return out


def unigram_distribution(docs: Sequence[Sequence[str]]) -> dict[str, float]:
    v = vocabulary(docs)
    total = sum(v.values())
    return {w: c / total for w, c in v.items()} if total else {}


def js_distance(docs: Sequence[Sequence[str]], ref_docs: Sequence[Sequence[str]]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two unigram distributions.

    On sparse word distributions its floor between two samples of the *same* source is far
    from zero (0.21 between two 40k-token human batches), so only compare it to a floor or to
    an earlier value, never to a fixed cut.
    """
    from scipy.spatial.distance import jensenshannon

    p, q = unigram_distribution(docs), unigram_distribution(ref_docs)
    if not p or not q:
        return 0.0
    words = sorted(p.keys() | q.keys())
    d = float(jensenshannon([p.get(w, 0.0) for w in words], [q.get(w, 0.0) for w in words], base=2))
    return 0.0 if math.isnan(d) else max(d, 0.0)


def rare_types(ref_docs: Sequence[Sequence[str]], head_mass: float = 0.8) -> set[str]:
    """Reference types outside the head that covers ``head_mass`` of the reference tokens."""
    v = vocabulary(ref_docs)
    total, acc, rare = sum(v.values()), 0, set()
    for w, c in sorted(v.items(), key=lambda kv: (-kv[1], kv[0])):
        if acc >= head_mass * total:
            rare.add(w)
        acc += c
    return rare


def rare_type_coverage(docs: Sequence[Sequence[str]], rare: set[str]) -> float:
    """Share of the reference's rare types that appear in the batch: the 'tails vanish' signal."""
    if not rare:
        return 0.0
    seen = set(vocabulary(docs))
    return len(rare & seen) / len(rare)


def opening_concentration(texts: Sequence[str], n: int = 3, top: int = 5) -> float:
    """Share of documents that open with one of the ``top`` most common opening n-grams."""
    openings = Counter(tuple(tokenize(t)[:n]) for t in texts if t.strip())
    total = sum(openings.values())
    return sum(c for _o, c in openings.most_common(top)) / total if total else 0.0


def length_ks(texts: Sequence[str], ref_texts: Sequence[str]) -> tuple[float, float]:
    """Two-sample KS statistic D and p-value on token lengths."""
    from scipy.stats import ks_2samp

    a, b = [len(tokenize(t)) for t in texts], [len(tokenize(t)) for t in ref_texts]
    if not a or not b:
        return 0.0, 1.0
    res = ks_2samp(a, b)
    return float(res.statistic), float(res.pvalue)


def shingles(tokens: Sequence[str], k: int = 5) -> frozenset[tuple[str, ...]]:
    if len(tokens) < k:
        return frozenset([tuple(tokens)]) if tokens else frozenset()
    return frozenset(tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1))


def near_duplicate_rate(texts: Sequence[str], threshold: float = 0.8, k: int = 5, max_docs: int = 3000) -> float:
    """Share of documents with another document at word k-shingle Jaccard >= threshold.

    Exact Jaccard, with an inverted index so only pairs sharing a shingle are compared; at most
    ``max_docs`` documents (a stable sample) are examined.
    """
    docs = [tokenize(t) for t in sorted(texts, key=lambda t: hashlib.sha1(t.encode()).hexdigest())[:max_docs]]
    sets = [shingles(d, k) for d in docs]
    index: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(sets):
        for sh in s:
            index.setdefault(sh, []).append(i)
    dup = [False] * len(sets)
    for i, s in enumerate(sets):
        if dup[i] or not s:
            continue
        cands = {j for sh in s for j in index[sh] if j != i}
        for j in cands:
            inter = len(s & sets[j])
            if inter / (len(s) + len(sets[j]) - inter) >= threshold:
                dup[i] = dup[j] = True
                break
    return sum(dup) / len(sets) if sets else 0.0
