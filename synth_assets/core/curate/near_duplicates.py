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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import polars as pl
from pydantic import Field
from scipy.sparse import csr_matrix

from synth_assets.core.settings import Settings

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FINAL = np.uint64(0xD6E8FEB86659FD93)
_EDGE_CHUNK = 50_000  # pairs confirmed per batch: bounds memory; 400k-row gathers ran 6x slower (cache)

# (i, j) index arrays of candidate pairs -> a bool mask of the pairs to compare
PairFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]


class NearDupSettings(Settings):
    """MinHash LSH near-duplicate detection, confirmed by exact Jaccard."""

    enabled: bool = Field(default=True, description="near-duplicate removal over completions (curation)")
    threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Jaccard similarity (exact, confirmed) at which two texts are near-duplicates",
    )
    shingle: Literal["word", "char"] = Field(default="word", description="word or character shingles")
    shingle_size: int = Field(default=5, ge=1, description="tokens (or characters) per shingle")
    num_perm: int = Field(default=64, ge=8, le=512, description="MinHash permutations (LSH recall vs speed)")
    seed: int = Field(default=1, description="seed of the MinHash permutations")
    cross_task_min_shingles: int = Field(
        default=16,
        ge=1,
        description="completions of different tasks are compared only when both have this many shingles",
    )


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
        df = (
            pl.DataFrame({"t": s.str.extract_all(r"\w+")})
            .with_row_index("d")
            .explode("t")
            .filter(pl.col("t").is_not_null())
        )
        return df["t"].hash(seed=7).to_numpy(), df["d"].cast(pl.Int64).to_numpy()
    if mode == "word":
        for c in ("\n", "\t", "\r"):
            s = s.str.replace_all(c, " ", literal=True)
        df = (
            pl.DataFrame({"t": s.str.split(" ")})
            .with_row_index("d")
            .explode("t")
            .filter(pl.col("t").is_not_null() & (pl.col("t") != ""))
        )
        return df["t"].hash(seed=7).to_numpy(), df["d"].cast(pl.Int64).to_numpy()
    s = s.str.replace_all(r"\s+", " ")
    lens = s.str.len_bytes().cast(pl.Int64).to_numpy()
    blob = "".join(s.to_list()).encode()
    return np.frombuffer(blob, dtype=np.uint8).astype(np.uint64), np.repeat(np.arange(len(lens)), lens)


# documents shingled at once: a document's shingles depend on it alone, so slicing changes
# nothing but the peak memory (1M texts of ~40 words at once held ~2 GB of per-token arrays)
SHINGLE_CHUNK = 100_000


def shingle(
    texts: pl.Series | list[str],
    settings: NearDupSettings,
    mode: str | None = None,
    whole_short: bool = True,
    bits: int = 32,
) -> Shingles:
    """Shingle hashes per document. ``whole_short``: a document shorter than k tokens becomes
    one shingle (near-duplicates) rather than none (n-gram overlap). ``bits=64`` for exact
    set membership against large reference sets, where 32-bit collisions would be too common."""
    texts = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    if texts.len() > SHINGLE_CHUNK:  # per-token arrays cost ~40 bytes a token: build them a slice at a time
        parts = [
            shingle(texts.slice(s, SHINGLE_CHUNK), settings, mode, whole_short, bits)
            for s in range(0, texts.len(), SHINGLE_CHUNK)
        ]
        hashes = np.concatenate([x.hashes for x in parts])
        sizes = np.concatenate([x.sizes() for x in parts])
        return Shingles(hashes, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
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


def _bucket_pairs(keys: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """Every pair of documents that share a key, packed as lo * n + hi (uint64).

    All pairs, not a chain through the bucket: linking members in index order only confirms
    pairs of neighbours and leaves the rest to transitive closure, which chains clusters on
    templated text. A bucket of m distinct texts costs m (m - 1) / 2 pairs; identical texts are
    collapsed into one class before this (``identical_classes``), so a bucket is large only
    when many *different* texts are alike."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    start = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    size = np.diff(np.concatenate([start, [len(k)]]))
    big = size > 1
    if not big.any():
        return np.zeros(0, np.uint64)
    pos = np.arange(len(k))
    group_end = np.repeat(start + size, size)
    lens = group_end - pos - 1  # partners after this member in its bucket
    first = np.repeat(pos, lens)
    second = _ragged(pos + 1, lens)
    a, b = idx[order[first]], idx[order[second]]
    lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
    return lo * np.uint64(n) + hi


def _row_keys(sig: np.ndarray, idx: np.ndarray, cols: range, scope: np.ndarray | None, salt: int) -> np.ndarray:
    """One uint64 per row ``idx`` hashing the signature columns ``cols``, a column at a time:
    widening the whole (rows x columns) block to uint64 held 1 GB at a million rows."""
    rng = np.random.default_rng(12345 + salt)
    mult = rng.integers(1, 2**63, len(cols), dtype=np.uint64) | np.uint64(1)
    acc = np.zeros(len(idx), np.uint64)
    for m, c in zip(mult, cols):
        acc += sig[idx, c].astype(np.uint64) * m
    key = _splitmix(acc + np.uint64(salt))
    if scope is not None:
        key = _splitmix(key ^ (np.asarray(scope).astype(np.uint64) * _MIX))
    return key


def candidate_pairs(
    sig: np.ndarray, usable: np.ndarray, threshold: float, scope: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of usable documents that share an LSH band (and a ``scope`` label,
    when given: documents of different scopes are never candidates)."""
    n, num_perm = sig.shape
    bands, rows = lsh_params(threshold, num_perm)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sc = None if scope is None else np.asarray(scope)[idx]

    def band_pairs(band: int) -> np.ndarray:
        return _bucket_pairs(_row_keys(sig, idx, range(band * rows, (band + 1) * rows), sc, band), idx, n)

    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 4))) as ex:  # numpy sorts release the GIL
        found = list(ex.map(band_pairs, range(bands)))
    packed = _sorted_unique(np.concatenate(found))
    return (packed // np.uint64(n)).astype(np.int64), (packed % np.uint64(n)).astype(np.int64)


def identical_classes(sh: Shingles, sig: np.ndarray, usable: np.ndarray, scope: np.ndarray | None = None) -> np.ndarray:
    """Per document, the lowest index of the documents with the very same shingle set (and
    scope): itself for most. Candidates by equal signatures, then confirmed exactly, so a
    signature collision never merges two different texts. Near-duplicate search then runs over
    one member per class: a text repeated m times costs m, not m^2 pairs."""
    n = sh.n
    rep = np.arange(n)
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return rep
    key = _row_keys(sig, idx, range(sig.shape[1]), None if scope is None else np.asarray(scope)[idx], 10_007)
    key = _splitmix(key ^ sh.sizes()[idx].astype(np.uint64))
    order = np.argsort(key, kind="stable")  # stable: the lowest index leads its run
    k = key[order]
    head = np.concatenate([[True], k[1:] != k[:-1]])
    leader = idx[order[np.maximum.accumulate(np.where(head, np.arange(len(k)), 0))]]
    member = idx[order]
    dup = member != leader
    if dup.any():
        a, b = member[dup], leader[dup]
        same = exact_jaccard(sh, b, a) >= 1.0
        rep[a[same]] = b[same]
    return rep


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values. polars' multi-threaded hash unique then a sort of the survivors:
    on 7.5M LSH candidate pairs (templated reasoning-gym text) 0.16 s, against 0.61 s for a
    numpy sort and 2x that for numpy 2's np.unique on uint64."""
    if len(x) == 0:
        return x
    return pl.Series(x).unique().sort().to_numpy()


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
    return Shingles(
        (packed & np.uint64(0xFFFFFFFF)).astype(np.uint32), np.concatenate([[0], np.cumsum(per)]).astype(np.int64)
    )


def exact_jaccard(sh: Shingles, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of every pair (i[e], j[e]).

    Each set is a row of a sparse 0/1 matrix; |A & B| is the number of non-zeros of the
    element-wise product of the two rows, which scipy computes by merging sorted column lists
    in C. Measured on templated reasoning-gym text (67k candidate pairs): 0.16 s against 1.7 s
    for sorting both sets of every pair."""
    out = np.zeros(len(i), np.float64)
    if len(i) == 0:
        return out
    docs, inv = np.unique(np.concatenate([i, j]), return_inverse=True)
    sets = unique_sets(sh, docs)
    _, col = np.unique(sets.hashes, return_inverse=True)  # compact int32 columns: faster merges
    index = np.int32 if len(col) < 2**31 else np.int64
    matrix = csr_matrix(
        (np.ones(len(col), np.int8), col.astype(index), sets.offsets.astype(index)),
        shape=(len(docs), int(col.max()) + 1 if len(col) else 1),
    )
    matrix.has_sorted_indices = True  # sorted per row, and col is monotone in the hash
    size = sets.sizes()
    li, lj = inv[: len(i)], inv[len(i) :]
    for s in range(0, len(i), _EDGE_CHUNK):
        x, y = li[s : s + _EDGE_CHUNK], lj[s : s + _EDGE_CHUNK]
        inter = matrix[x].multiply(matrix[y]).getnnz(axis=1)
        union = size[x] + size[y] - inter
        out[s : s + len(x)] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


@dataclass
class NearDuplicates:
    """Confirmed near-duplicate pairs between class representatives.

    ``rep[d]`` is the lowest index of the documents whose shingle set equals d's (d itself for
    most); the pairs (i, j) join representatives only, and stand for every member of both
    classes, whose Jaccard is the same."""

    i: np.ndarray
    j: np.ndarray
    jaccard: np.ndarray
    rep: np.ndarray
    candidates: int  # LSH candidate pairs before confirmation
    signatures: np.ndarray
    shingles: Shingles

    def members(self) -> dict[int, list[int]]:
        """Class representative -> every document of its class (for classes of two or more)."""
        out: dict[int, list[int]] = {}
        for d in np.flatnonzero(self.rep != np.arange(len(self.rep))).tolist():
            out.setdefault(int(self.rep[d]), [int(self.rep[d])]).append(d)
        return out

    def document_pairs(self) -> set[tuple[int, int]]:
        """Every confirmed pair of documents, classes expanded (quadratic in a class's size:
        for tests and reports on small inputs, not for the pipeline)."""
        cls = self.members()
        out = {(a, b) for ms in cls.values() for k, a in enumerate(ms) for b in ms[k + 1 :]}
        for x, y in zip(self.i.tolist(), self.j.tolist()):
            out |= {(min(a, b), max(a, b)) for a in cls.get(x, [x]) for b in cls.get(y, [y])}
        return out

    def linked(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every document: whether it is confirmed similar to a document of ``mask`` (another
        one), that partner's index, and the Jaccard (1.0 for an identical text)."""
        mask = np.asarray(mask, bool)
        n = len(self.rep)
        partner, best = np.full(n, -1), np.full(n, -1.0)
        members = self.members()
        for cls in members.values():
            hits = [d for d in cls if mask[d]]
            if hits:
                for d in cls:
                    other = next((h for h in hits if h != d), None)
                    if other is not None:
                        partner[d], best[d] = other, 1.0
        for a, b, j in zip(self.i.tolist(), self.j.tolist(), self.jaccard.tolist()):
            for x, y in ((a, b), (b, a)):
                hit = next((d for d in members.get(y, [y]) if mask[d]), None)
                if hit is not None:
                    for d in members.get(x, [x]):
                        if j > best[d]:
                            partner[d], best[d] = hit, j
        return partner >= 0, partner, best


def find_near_duplicates(
    texts: pl.Series | list[str],
    settings: NearDupSettings,
    usable: np.ndarray | None = None,
    pair_filter: PairFilter | None = None,
    scope: np.ndarray | None = None,
) -> NearDuplicates:
    """Near-duplicate pairs among ``texts``: LSH candidates confirmed by exact Jaccard >=
    threshold. ``usable`` masks documents out; ``scope`` labels keep documents of different
    labels apart; ``pair_filter(i, j) -> bool mask`` vetoes pairs of class representatives
    (the lowest index of identical texts, so put what differs inside a class into ``scope``)."""
    return find_near_duplicates_from(shingle(texts, settings), settings, usable, pair_filter, scope)


def find_near_duplicates_from(
    sh: Shingles,
    settings: NearDupSettings,
    usable: np.ndarray | None = None,
    pair_filter: PairFilter | None = None,
    scope: np.ndarray | None = None,
    sig: np.ndarray | None = None,
) -> NearDuplicates:
    sig = signatures(sh, settings) if sig is None else sig
    ok = sh.sizes() > 0 if usable is None else (np.asarray(usable, bool) & (sh.sizes() > 0))
    rep = identical_classes(sh, sig, ok, scope)
    i, j = candidate_pairs(sig, ok & (rep == np.arange(sh.n)), settings.threshold, scope)
    n_candidates = len(i)
    if pair_filter is not None and len(i):
        keep = pair_filter(i, j)
        i, j = i[keep], j[keep]
    jac = exact_jaccard(sh, i, j)
    hit = jac >= settings.threshold - 1e-12
    return NearDuplicates(i[hit], j[hit], jac[hit], rep, n_candidates, sig, sh)


@numba.njit(cache=True, nogil=True)
def _greedy(  # pragma: no cover (jit)
    visit: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    state: np.ndarray,
    set_ptr: np.ndarray,
    set_vals: np.ndarray,
    threshold: float,
    partner: np.ndarray,
    pj: np.ndarray,
) -> int:
    """The sequential greedy, compiled: each class in rank order is dropped when a kept
    neighbour (every neighbour already visited is decided) has exact Jaccard >= threshold,
    else kept. A pair is confirmed only when its earlier side was kept. Why numba: the same
    rule in numpy needs one vectorised round per step of the longest dependency chain (297
    rounds on templated reasoning-gym text, 2.1 s); this loop takes a small fraction of that."""
    confirmed = 0
    for v in visit:
        best = -1.0
        who = -1
        a0, a1 = set_ptr[v], set_ptr[v + 1]
        for k in range(indptr[v], indptr[v + 1]):
            u = indices[k]
            if state[u] != 1:
                continue
            b0, b1 = set_ptr[u], set_ptr[u + 1]
            small, large = min(a1 - a0, b1 - b0), max(a1 - a0, b1 - b0)
            if small < threshold * large:  # Jaccard <= small / large: cannot reach the threshold
                continue
            x, y, inter = a0, b0, 0
            while x < a1 and y < b1:
                if set_vals[x] == set_vals[y]:
                    inter += 1
                    x += 1
                    y += 1
                elif set_vals[x] < set_vals[y]:
                    x += 1
                else:
                    y += 1
            union = (a1 - a0) + (b1 - b0) - inter
            j = inter / union if union > 0 else 0.0
            confirmed += 1
            if j >= threshold:  # the first kept partner found is named: one is all (a) needs
                best = j
                who = u
                break
        if who >= 0:
            state[v] = 2
            partner[v] = who
            pj[v] = best
        else:
            state[v] = 1
    return confirmed


@dataclass
class Selection:
    """Which documents near-duplicate removal keeps, and for each dropped one the kept document
    it is confirmed similar to."""

    keep: np.ndarray  # bool per document
    duplicate_of: np.ndarray  # index of the kept partner, -1 when kept
    jaccard: np.ndarray  # exact Jaccard with that partner (1.0: identical), nan when kept
    candidates: int  # LSH candidate pairs (between classes of identical texts)
    confirmed: int  # pairs whose exact Jaccard was computed


def select_representatives(
    sh: Shingles,
    settings: NearDupSettings,
    priority: np.ndarray | None = None,
    scope: np.ndarray | None = None,
    extra: list[tuple[np.ndarray, np.ndarray]] = (),
    forced: np.ndarray | None = None,
    sig: np.ndarray | None = None,
) -> Selection:
    """Keep documents so that (a) every dropped document has an exact Jaccard >= threshold with
    a *kept* one, which it names, and (b) no candidate pair at or above the threshold remains
    among the kept ones.

    Greedy, best first: ``forced`` documents, then the highest ``priority`` (say, the verifier's
    score), then the fewest LSH candidates (the minimum-degree rule of greedy independent sets:
    a text like many others goes after the ones it would knock out), then input order. A
    document is kept unless a kept document is confirmed similar to it; then it is dropped as a
    duplicate of that kept one. Dropping whole
    connected components instead removes rows that are only similar to something similar to
    them, which on templated text chains hundreds of distinct rows together.

    ``scope`` labels keep documents apart (never candidates across labels); each ``extra``
    (usable mask, scope labels) adds the candidate pairs of one more such pass. ``forced``
    documents (rows accepted earlier) are kept whatever they resemble.

    Cost: candidates come from LSH over one member per class of identical texts; a candidate
    pair is confirmed exactly only when its earlier side has been kept (``_greedy``, compiled),
    so in a cluster of m alike texts with k kept the work is about m k confirmations, not
    m^2 / 2."""
    n = sh.n
    sig = signatures(sh, settings) if sig is None else sig
    forced = np.zeros(n, bool) if forced is None else np.asarray(forced, bool)
    ok = sh.sizes() > 0
    rep = identical_classes(sh, sig, ok, scope)
    lead = np.arange(n) == rep
    i, j = candidate_pairs(sig, ok & lead, settings.threshold, scope)
    pairs = [np.stack([i, j], 1)]
    for usable, sc in extra:
        a, b = candidate_pairs(sig, ok & np.asarray(usable, bool), settings.threshold, sc)
        pairs.append(np.stack([rep[a], rep[b]], 1))
    e = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    e = e[e[:, 0] != e[:, 1]]
    if len(pairs) > 1:  # extra passes may repeat a pair
        packed = _sorted_unique(
            np.minimum(e[:, 0], e[:, 1]).astype(np.uint64) * np.uint64(n)
            + np.maximum(e[:, 0], e[:, 1]).astype(np.uint64)
        )
        e = np.stack([(packed // np.uint64(n)).astype(np.int64), (packed % np.uint64(n)).astype(np.int64)], 1)
    degree = np.bincount(e.ravel(), minlength=n)[rep] + np.bincount(rep, minlength=n)[rep]
    prio = np.zeros(n) if priority is None else np.asarray(priority, float)
    order = np.lexsort((np.arange(n), degree, -prio, ~forced))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    # class priority: its best member; forced when it holds a forced document
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, rep, rank)
    cls_forced = np.zeros(n, bool)
    cls_forced[rep[forced]] = True
    earlier = best[e[:, 0]] <= best[e[:, 1]]
    u = np.where(earlier, e[:, 0], e[:, 1])
    v = np.where(earlier, e[:, 1], e[:, 0])
    live = ~(cls_forced[u] & cls_forced[v])  # rows accepted earlier never compete
    u, v = u[live], v[live]
    n_candidates = len(u)

    state = np.where(lead & ok, 0, 3).astype(np.int8)  # 0 undecided, 1 kept, 2 dropped, 3 not a class lead
    state[lead & cls_forced] = 1
    partner, pj = np.full(n, -1, np.int64), np.full(n, np.nan)
    confirmed = 0
    if len(u):
        # only classes with a candidate take part: shingle sets and adjacency over those alone
        mark = np.zeros(n, bool)
        mark[u] = mark[v] = True
        involved = np.flatnonzero(mark)
        local = np.cumsum(mark) - 1  # document -> its row among the involved (no sort needed)
        lu, lv = local[u], local[v]
        sets = unique_sets(sh, involved)
        k = len(involved)
        adj = csr_matrix(
            (np.ones(2 * len(u), np.int8), (np.concatenate([lv, lu]), np.concatenate([lu, lv]))), shape=(k, k)
        )
        local_state = state[involved]
        visit = np.argsort(best[involved], kind="stable")  # classes by their best member's rank
        visit = visit[local_state[visit] == 0]
        local_partner, local_j = np.full(k, -1, np.int64), np.full(k, np.nan)
        confirmed = _greedy(
            visit,
            adj.indptr.astype(np.int64),
            adj.indices.astype(np.int64),
            local_state,
            sets.offsets,
            sets.hashes,
            settings.threshold - 1e-12,
            local_partner,
            local_j,
        )
        state[involved] = local_state
        lost_local = local_partner >= 0
        partner[involved[lost_local]] = involved[local_partner[lost_local]]
        pj[involved[lost_local]] = local_j[lost_local]
    state[state == 0] = 1

    # back to documents: a kept class keeps its best member (and any forced member)
    keeper = np.full(n, -1)  # per class (at its lead): the best-ranked member
    has = best < n
    keeper[has] = order[best[has]]
    keep = np.zeros(n, bool)
    dup_of, dup_j = np.full(n, -1), np.full(n, np.nan)
    cls_state = state[rep]
    kept_cls = cls_state == 1
    keep[kept_cls & ((keeper[rep] == np.arange(n)) | forced)] = True
    twin = kept_cls & ~keep & ok
    dup_of[twin], dup_j[twin] = keeper[rep[twin]], 1.0
    lost = cls_state == 2
    dup_of[lost], dup_j[lost] = keeper[partner[rep[lost]]], pj[rep[lost]]
    keep[~ok] = True  # nothing to compare (no shingles): never a duplicate
    return Selection(keep, dup_of, dup_j, n_candidates, confirmed)


def estimated_similarity(sig: np.ndarray, a: int, others: np.ndarray) -> np.ndarray:
    """MinHash estimate of Jaccard between document a and each of ``others``."""
    return (sig[others] == sig[a]).mean(axis=1)
