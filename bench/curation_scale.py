"""Curation at scale: throughput and peak memory at 10k, 100k and 1M candidate rows, and the
near-duplicate stage against datasketch's MinHashLSH on the same corpus in the same run.

    .venv/bin/python bench/curation_scale.py                    # 10k, 100k, 1M; datasketch up to 100k
    .venv/bin/python bench/curation_scale.py --datasketch-max 1000000   # datasketch at 1M too (~4 min more)

The corpus imitates a generation: tasks with 6 samples each; 80% free-text completions
(20-60 words from a Zipf vocabulary), 10% short procedural answers, 10% code; 85% pass
verification; 40% of samples are edited copies of their task's first sample (0-10 words
changed, so Jaccard spans the threshold), 0.5% copy another task's text, and 0.1% quote a
held-out item. Every size runs in its own process so peak RSS is that size's alone.

Truth is exact Jaccard (Python sets of word 5-shingles) over every pair of samples of a task
plus every planted cross-task pair, plus any other pair a method reported (verified exactly):
random 20-60-word texts share no 5-shingles by chance. Ours: recall is the share of true pairs
that lost a member (none left among the kept rows), drop precision the share of dropped rows
whose named kept partner is a true pair. datasketch: pairs reported against true pairs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.curate.curation import REFERENCE_TEXT_SCHEMA, CurationSettings, curate
from synth_assets.core.curate.near_duplicates import NearDupSettings, select_representatives, shingle
from synth_assets.core.tasks.sources import conform
from synth_assets.core.verify.verification import VERDICT_SCHEMA

VOCAB = 30_000
SAMPLES = 6
K = 5
THRESHOLD = 0.8


def _texts(ids: np.ndarray, lens: np.ndarray) -> pl.Series:
    df = pl.DataFrame({"w": ids.astype(np.int32), "n": lens})
    return df.select(
        pl.col("w")
        .arr.to_list()
        .list.head(pl.col("n"))
        .list.eval(pl.lit("w") + pl.element().cast(pl.String))
        .list.join(" ")
    )["w"]


def build_corpus(n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
    p /= p.sum()
    width = 60
    ids = rng.choice(VOCAB, size=(n, width), p=p)
    lens = rng.integers(20, width + 1, n)
    task = np.arange(n) // SAMPLES
    first = task * SAMPLES
    copy = (np.arange(n) % SAMPLES != 0) & (rng.random(n) < 0.4)
    ids[copy] = ids[first[copy]]
    lens[copy] = lens[first[copy]]
    edits = rng.integers(0, 11, n) * copy
    for e in range(1, 11):
        rows = np.flatnonzero(edits >= e)
        ids[rows, rng.integers(0, width, len(rows))] = rng.choice(VOCAB, size=len(rows), p=p)
    cross = np.flatnonzero((rng.random(n) < 0.005) & (task > 0))
    src = first[rng.integers(0, task[cross])] if len(cross) else cross
    ids[cross], lens[cross] = ids[src], lens[src]
    planted = list(zip(src.tolist(), cross.tolist()))
    text = _texts(ids, lens)
    kind = rng.random(n // SAMPLES + 1)[task]
    domain = np.where(kind < 0.8, "text", np.where(kind < 0.9, "procedural", "code"))
    answer = pl.Series((rng.integers(0, 40, n // SAMPLES + 1)[task]).astype(str))
    completion = (
        pl.when(pl.lit(pl.Series(domain)) == "code").then("    s = '" + text + "'\n    return s\n").otherwise(text)
    )
    refs = _texts(rng.choice(VOCAB, size=(1000, width), p=p), np.full(1000, width))
    leak = np.flatnonzero(rng.random(n) < 0.001)
    df = pl.DataFrame(
        {
            "candidate_id": [f"c{i}" for i in range(n)],
            "generation": np.ones(n, np.int64),
            "task_id": [f"t{t}" for t in task],
            "family": pl.Series(domain) + "_family",
            "domain": domain,
            "prompt": np.where(domain == "code", "def f():\n", "Task:"),
            "verifier": np.where(
                domain == "text", "judge", np.where(domain == "code", "python_tests", "reasoning_gym")
            ),
            "completion": text,
            "answer": answer,
            "verdict": np.where(rng.random(n) < 0.85, "pass", "fail"),
            "score": 1.0,
        }
    ).with_columns(
        completion=completion,
        extracted_answer=pl.when(pl.col("domain") == "procedural").then(pl.col("answer")),
    )
    if len(leak):
        quote = refs.gather(rng.integers(0, 1000, len(leak))).str.split(" ").list.head(20).list.join(" ")
        df = df.with_columns(df["completion"].scatter(leak, quote))
        df = df.with_columns(
            pl.when(pl.col("domain") == "procedural")
            .then(pl.col("completion"))
            .otherwise(pl.col("extracted_answer"))
            .alias("extracted_answer")
        )
    df = conform(df, VERDICT_SCHEMA)
    references = conform(
        pl.DataFrame({"ref_source": "heldout", "ref_id": [str(i) for i in range(1000)], "text": refs}),
        REFERENCE_TEXT_SCHEMA,
    )
    return df, references, planted


def shingle_sets(texts: list[str]) -> list[frozenset]:
    out = []
    for t in texts:
        w = t.lower().split()
        out.append(
            frozenset([" ".join(w)]) if len(w) < K else frozenset(" ".join(w[i : i + K]) for i in range(len(w) - K + 1))
        )
    return out


def truth_pairs(sets: list[frozenset], n: int, planted, extra: set) -> set[tuple[int, int]]:
    universe = set(extra) | {(min(a, b), max(a, b)) for a, b in planted if a != b}
    for t0 in range(0, n, SAMPLES):
        for a in range(t0, min(t0 + SAMPLES, n)):
            for b in range(a + 1, min(t0 + SAMPLES, n)):
                universe.add((a, b))
    return {(a, b) for a, b in universe if len(sets[a] & sets[b]) / len(sets[a] | sets[b]) >= THRESHOLD}


def run_datasketch(sets: list[frozenset]) -> tuple[float, set]:
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    encoded = [[s.encode() for s in ss] for ss in sets]
    sigs = MinHash.bulk(encoded, num_perm=128)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    with lsh.insertion_session() as session:
        for i, m in enumerate(sigs):
            session.insert(i, m)
    pairs = set()
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return time.perf_counter() - t0, pairs


def worker(n: int, datasketch: bool) -> dict:
    corpus, refs, planted = build_corpus(n)
    texts = corpus.select(
        pl.when(pl.col("verifier") == "python_tests")
        .then(pl.col("completion"))
        .otherwise(pl.coalesce("extracted_answer", "completion"))
        .str.strip_chars()
    )["completion"]
    rss_corpus = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cur = curate(corpus, CurationSettings(), refs)
    wall = time.perf_counter() - t0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert cur.kept.height + cur.dropped.height == n

    st = NearDupSettings(threshold=THRESHOLD)
    t0 = time.perf_counter()
    sel = select_representatives(shingle(texts, st), st)
    ours_s = time.perf_counter() - t0
    # pairs the selection settled: a dropped row and the kept row it names
    ours = {
        (min(d, int(p)), max(d, int(p)))
        for d, p in zip(np.flatnonzero(~sel.keep).tolist(), sel.duplicate_of[~sel.keep].tolist())
    }
    out = {
        "rows": n,
        "curate_s": round(wall, 2),
        "rows_per_s": round(n / wall),
        "rss_corpus_mb": round(rss_corpus),
        "rss_peak_mb": round(rss_peak),
        "kept": cur.kept.height,
        "drops": dict(cur.dropped.group_by("drop_reason").len().sort("drop_reason").iter_rows()),
        "near_dup_s": round(ours_s, 2),
        "lsh_candidates": sel.candidates,
    }
    sets = shingle_sets(texts.to_list())
    ds_pairs: set = set()
    if datasketch:
        ds_s, ds_pairs = run_datasketch(sets)
        out["datasketch_s"] = round(ds_s, 2)
        out["speedup"] = round(ds_s / ours_s, 1)
    truth = truth_pairs(sets, n, planted, ours | ds_pairs)
    # ours: every named partner is a true pair (drop precision), and the true pairs that kept both
    # rows (residual); datasketch: pairs reported against true pairs
    out["ours_drop_precision"] = round(len(ours & truth) / len(ours), 4) if ours else 1.0
    out["ours_recall"] = (
        round(1 - sum(1 for a, b in truth if sel.keep[a] and sel.keep[b]) / len(truth), 4) if truth else 1.0
    )
    if datasketch:
        hit = len(ds_pairs & truth)
        out["datasketch_recall"] = round(hit / len(truth), 4) if truth else 1.0
        out["datasketch_precision"] = round(hit / len(ds_pairs), 4) if ds_pairs else 1.0
    out["true_pairs"] = len(truth)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--datasketch-max", type=int, default=100_000)
    ap.add_argument("--worker", type=int)
    ap.add_argument("--datasketch", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.datasketch)))
        return
    print(
        f"{'rows':>9} {'curate s':>9} {'rows/s':>9} {'peak MB':>8} {'near-dup s':>10} {'datasketch s':>12} "
        f"{'speedup':>8} {'recall':>7} {'drop p.':>7} {'ds rec.':>7} {'ds prec.':>8}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--worker", str(n)] + (["--datasketch"] if n <= args.datasketch_max else [])
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(
            f"{r['rows']:>9} {r['curate_s']:>9} {r['rows_per_s']:>9} {r['rss_peak_mb']:>8} {r['near_dup_s']:>10} "
            f"{r.get('datasketch_s', '-'):>12} {str(r.get('speedup', '-')) + 'x':>8} {r['ours_recall']:>7} "
            f"{r['ours_drop_precision']:>7} {r.get('datasketch_recall', '-'):>7} "
            f"{r.get('datasketch_precision', '-'):>8}"
        )
        print(
            f"          kept {r['kept']}, true pairs {r['true_pairs']}, LSH candidates {r['lsh_candidates']}, "
            f"corpus RSS {r['rss_corpus_mb']} MB, drops {r['drops']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
