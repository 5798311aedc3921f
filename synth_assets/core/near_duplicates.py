"""MinHash LSH near-duplicate detection, vectorised with numpy and polars.

Why not datasketch: it hashes every shingle in Python and builds one MinHash object per
document, about 135 microseconds a document on this machine, which is minutes per million
candidates. Here every step runs over flat arrays: polars tokenises and hashes words, numpy
builds shingles, signatures (one pass per permutation, on two threads) and LSH bands, and
every candidate pair is then confirmed against its *exact* Jaccard similarity, so a bucket
collision alone never removes a row (`bench/curation_scale.py` compares the two).

Shingles are word k-grams of the lowercased, whitespace-split text (or character k-grams).
A text shorter than k tokens is one shingle of all its tokens.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from synth_assets.core.settings import Settings

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FINAL = np.uint64(0xD6E8FEB86659FD93)
_EDGE_CHUNK = 400_000  # candidate pairs confirmed per batch: bounds memory on huge clusters


class NearDupSettings(Settings):
    """MinHash LSH near-duplicate detection, confirmed by exact Jaccard."""

    enabled: bool = Field(default=True, description="near-duplicate removal over completions (curation)")
    threshold: float = Field(default=0.8, gt=0, le=1,
                             description="Jaccard similarity (exact, confirmed) at which two texts are near-duplicates")
    shingle: Literal["word", "char"] = Field(default="word", description="word or character shingles")
    shingle_size: int = Field(default=5, ge=1, description="tokens (or characters) per shingle")
    num_perm: int = Field(default=64, ge=8, le=512, description="MinHash permutations (LSH recall vs speed)")
    seed: int = Field(default=1, description="seed of the MinHash permutations")
    cross_task_min_shingles: int = Field(
        default=16, ge=1, description="completions of different tasks are compared only when both have this many shingles")


@dataclass
class Shingles:
    """Every document's shingle hashes, flat: doc d owns hashes[offsets[d]:offsets[d + 1]]."""

    hashes: np.ndarray  # uint32 (uint64 when asked for)
    offsets: np.ndarray  # int64, len n + 1

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _tokens(texts: pl.Series, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(token hash uint64, owning document index) for every token, in document order.
    Modes: "word" (whitespace-split), "regex" (\\w+ runs: slower, punctuation-blind, for
    decontamination), "char" (bytes of the whitespace-collapsed text)."""
    s = texts.fill_null("").str.to_lowercase()
    if mode == "regex":
        df = pl.DataFrame({"t": s.str.extract_all(r"\w+")}).with_row_index("d").explode("t").filter(
            pl.col("t").is_not_null())
        return df["t"].hash(seed=7).to_numpy(), df["d"].cast(pl.Int64).to_numpy()
    if mode == "word":
        for c in ("\n", "\t", "\r"):
            s = s.str.replace_all(c, " ", literal=True)
        df = pl.DataFrame({"t": s.str.split(" ")}).with_row_index("d").explode("t").filter(
            pl.col("t").is_not_null() & (pl.col("t") != ""))
        return df["t"].hash(seed=7).to_numpy(), df["d"].cast(pl.Int64).to_numpy()
    s = s.str.replace_all(r"\s+", " ")
    lens = s.str.len_bytes().cast(pl.Int64).to_numpy()
    blob = "".join(s.to_list()).encode()
    return np.frombuffer(blob, dtype=np.uint8).astype(np.uint64), np.repeat(np.arange(len(lens)), lens)


def shingle(
    texts: pl.Series | list[str], settings: NearDupSettings, mode: str | None = None,
    whole_short: bool = True, bits: int = 32,
) -> Shingles:
    """Shingle hashes per document. ``whole_short``: a document shorter than k tokens becomes
    one shingle (near-duplicates) rather than none (n-gram overlap). ``bits=64`` for exact
    set membership against large reference sets, where 32-bit collisions would be too common."""
    texts = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    n, k = texts.len(), settings.shingle_size
    tok, doc = _tokens(texts, mode or settings.shingle)
    size = len(tok)
    counts = np.bincount(doc, minlength=n) if size else np.zeros(n, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pos = np.arange(size) - starts[doc] if size else np.zeros(0, np.int64)
    full = np.flatnonzero(pos + k <= counts[doc])  # a whole k-gram starts here
    acc = tok[full]
    for m in range(1, k):
        acc = acc * _MIX + tok[full + m]
    owner = doc[full]
    if whole_short:  # a document shorter than k: one shingle of everything
        short = np.flatnonzero((counts > 0) & (counts < k))
        first = starts[short]
        acc_s = tok[first]
        for m in range(1, k - 1):
            more = counts[short] > m
            acc_s = np.where(more, acc_s * _MIX + tok[np.minimum(first + m, size - 1)], acc_s)
        if len(short):  # slot them in document order (no full k-gram belongs to these docs)
            at = np.searchsorted(full, first)
            acc, owner = np.insert(acc, at, acc_s), np.insert(owner, at, short)
    # token hashes are already well mixed (polars' hash); a multiply-shift finishes the job
    hashes = acc if bits == 64 else ((acc * _FINAL) >> np.uint64(32)).astype(np.uint32)
    per_doc = np.bincount(owner, minlength=n) if len(owner) else np.zeros(n, np.int64)
    return Shingles(hashes, np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64))


def signatures(sh: Shingles, settings: NearDupSettings) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures; documents without shingles get all-max rows."""
    rng = np.random.default_rng(settings.seed)
    a = rng.integers(1, 2**32, settings.num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, settings.num_perm, dtype=np.uint64).astype(np.uint32)
    sig = np.full((sh.n, settings.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    nonempty = np.flatnonzero(sh.sizes() > 0)
    if len(nonempty) == 0:
        return sig
    starts = sh.offsets[nonempty]

    def run(perms: range) -> None:
        buf = np.empty(len(sh.hashes), np.uint32)
        for p in perms:
            np.multiply(sh.hashes, a[p], out=buf)
            np.add(buf, b[p], out=buf)
            sig[nonempty, p] = np.minimum.reduceat(buf, starts)

    workers = max(1, min(os.cpu_count() or 1, 4))
    step = -(-settings.num_perm // workers)
    chunks = [range(i, min(i + step, settings.num_perm)) for i in range(0, settings.num_perm, step)]
    with ThreadPoolExecutor(len(chunks)) as ex:  # numpy releases the GIL in these loops
        list(ex.map(run, chunks))
    return sig


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows): the most selective banding that still makes a pair at exactly the
    threshold a candidate with probability >= 0.99 (recall first: every candidate is
    confirmed exactly afterwards, so extra candidates cost time, not precision)."""
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b == 0:
            break
        if 1 - (1 - threshold**r) ** b >= 0.99:
            best = (b, r)
    return best


def candidate_pairs(sig: np.ndarray, usable: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) that share a band; members of a bucket are chained in index order."""
    n, num_perm = sig.shape
    bands, rows = lsh_params(threshold, num_perm)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rng = np.random.default_rng(12345)
    mult = rng.integers(1, 2**63, rows, dtype=np.uint64) | np.uint64(1)
    found = []
    for band in range(bands):
        cols = sig[idx, band * rows : (band + 1) * rows].astype(np.uint64)
        key = _splitmix((cols * mult).sum(axis=1, dtype=np.uint64) + np.uint64(band))
        order = np.argsort(key, kind="stable")
        k = key[order]
        same = np.flatnonzero(k[1:] == k[:-1])
        if len(same):
            found.append(np.stack([idx[order[same]], idx[order[same + 1]]], axis=1))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = np.concatenate(found)
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    packed = _sorted_unique(lo.astype(np.uint64) * np.uint64(n) + hi.astype(np.uint64))
    return (packed // np.uint64(n)).astype(np.int64), (packed % np.uint64(n)).astype(np.int64)


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2's hash-based unique is several times slower on uint64."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x


def _ragged(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated ranges start..start+len for every (start, len)."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return shift + np.arange(total)


def unique_sets(sh: Shingles, docs: np.ndarray) -> Shingles:
    """Each listed document's shingles as a sorted set (row d of the result = docs[d])."""
    lens = sh.sizes()[docs]
    vals = sh.hashes[_ragged(sh.offsets[docs], lens)].astype(np.uint64)
    local = np.repeat(np.arange(len(docs), dtype=np.uint64), lens)
    packed = _sorted_unique((local << np.uint64(32)) | vals)
    owner = (packed >> np.uint64(32)).astype(np.int64)
    per = np.bincount(owner, minlength=len(docs))
    return Shingles((packed & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                    np.concatenate([[0], np.cumsum(per)]).astype(np.int64))


def exact_jaccard(sh: Shingles, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of every pair (i[e], j[e])."""
    out = np.zeros(len(i), np.float64)
    if len(i) == 0:
        return out
    docs, inv = np.unique(np.concatenate([i, j]), return_inverse=True)
    sets = unique_sets(sh, docs)
    li, lj = inv[: len(i)], inv[len(i):]
    size = sets.sizes()
    for s in range(0, len(i), _EDGE_CHUNK):
        a, b = li[s : s + _EDGE_CHUNK], lj[s : s + _EDGE_CHUNK]
        la, lb = size[a], size[b]
        edge = np.arange(len(a), dtype=np.uint64)
        vals = np.concatenate([
            (np.repeat(edge, la) << np.uint64(32)) | sets.hashes[_ragged(sets.offsets[a], la)].astype(np.uint64),
            (np.repeat(edge, lb) << np.uint64(32)) | sets.hashes[_ragged(sets.offsets[b], lb)].astype(np.uint64),
        ])
        vals.sort()
        dup = vals[1:][vals[1:] == vals[:-1]] >> np.uint64(32)
        inter = np.bincount(dup.astype(np.int64), minlength=len(a))
        union = la + lb - inter
        out[s : s + len(a)] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


@dataclass
class NearDuplicates:
    """Confirmed near-duplicate pairs and the clusters they form."""

    i: np.ndarray
    j: np.ndarray
    jaccard: np.ndarray
    cluster: np.ndarray  # per document: a cluster label (singletons get their own)
    candidates: int  # LSH candidate pairs before confirmation
    signatures: np.ndarray
    shingles: Shingles


def find_near_duplicates(
    texts: pl.Series | list[str],
    settings: NearDupSettings,
    usable: np.ndarray | None = None,
    pair_filter=None,
) -> NearDuplicates:
    """Near-duplicate pairs among ``texts``: LSH candidates confirmed by exact Jaccard >=
    threshold. ``usable`` masks documents out; ``pair_filter(i, j) -> bool mask`` vetoes
    pairs (for example two rows of different tasks whose texts are too short to judge)."""
    return find_near_duplicates_from(shingle(texts, settings), settings, usable, pair_filter)


def find_near_duplicates_from(
    sh: Shingles, settings: NearDupSettings, usable: np.ndarray | None = None, pair_filter=None
) -> NearDuplicates:
    sig = signatures(sh, settings)
    ok = sh.sizes() > 0 if usable is None else (np.asarray(usable, bool) & (sh.sizes() > 0))
    i, j = candidate_pairs(sig, ok, settings.threshold)
    n_candidates = len(i)
    if pair_filter is not None and len(i):
        keep = pair_filter(i, j)
        i, j = i[keep], j[keep]
    jac = exact_jaccard(sh, i, j)
    hit = jac >= settings.threshold - 1e-12
    i, j, jac = i[hit], j[hit], jac[hit]
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(sh.n, sh.n))
    _, labels = connected_components(graph, directed=False)
    return NearDuplicates(i, j, jac, labels, n_candidates, sig, sh)


def estimated_similarity(sig: np.ndarray, a: int, others: np.ndarray) -> np.ndarray:
    """MinHash estimate of Jaccard between document a and each of ``others``."""
    return (sig[others] == sig[a]).mean(axis=1)
