"""The default run, stage by stage, with the generator one request at a time and batched.

    .venv/bin/python bench/default_run.py     # parallel 1, then 16, the generator's default (about 25 minutes)
    .venv/bin/python bench/default_run.py --parallel 1,8,16 --select "not group:training"

Each mode runs ``synth run`` on the embedded defaults (generation 1, the loop left out unless
``--select`` says otherwise) in its own fresh DuckDB file and Dagster instance, in its own
process, one after the other on the same machine. Printed per mode: every step's wall time
from the instance's step statistics, the run's wall time and what Dagster itself took (run time
minus the steps' time), the generator's work (prompt tokens evaluated against the prompt tokens
the requests carried: the rest was reused from a cache; tokens decoded and decode steps), and
the candidates per minute of ``raw_candidates``. The last lines give the ratios, raw and with
each run's time divided by the machine probe taken around it (``probe``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, logging, os, sys, time
sys.path.insert(0, os.environ["BENCH_ROOT"])
work = {"prompt_tokens_evaluated": 0, "decode_steps": 0, "tokens_decoded": 0}
from synth_assets.core.generators import llama_batched
_close = llama_batched.BatchedDecoder.close
def close(self):
    for k in work:
        work[k] += getattr(self, k, 0)
    _close(self)
llama_batched.BatchedDecoder.close = close
import dagster as dg
from synth_assets import cli
t0 = time.perf_counter()
rc = cli.run(os.environ["BENCH_SELECT"], None)
wall = time.perf_counter() - t0
from synth_assets.core.warehouse import Warehouse
with dg.DagsterInstance.get() as inst:
    run = inst.get_runs(limit=1)[0]
    steps = {s.step_key: s.end_time - s.start_time for s in inst.get_run_step_stats(run.run_id)
             if s.end_time and s.start_time}
    stats = inst.get_run_stats(run.run_id)
    run_s = (stats.end_time or 0) - (stats.start_time or 0)
wh = Warehouse(os.environ["SYNTH_DUCKDB_PATH"])
raw = wh.read("raw_candidates")
print("BENCH " + json.dumps({"rc": rc, "wall_s": wall, "run_s": run_s, "steps": steps, "work": work,
    "candidates": raw.height, "prompt_tokens": int(raw["prompt_tokens"].sum()),
    "completion_tokens": int(raw["completion_tokens"].sum())}))
"""


PROBE = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.generation import SampleRequest
gen = LlamaCppGenerator(parallel=1)
req = SampleRequest("probe", open(sys.argv[1] + "/README.md").read()[:2000], "probe", 0.0, 1.0, 48, (), 0, 0)
best = float("inf")
for _ in range(3):
    gen._llm.reset()  # no reuse of the previous call's prompt
    t0 = time.perf_counter()
    list(gen.generate([req]))
    best = min(best, time.perf_counter() - t0)
print(best)
"""


def probe() -> float:
    """Seconds for a fixed piece of model work (a README prompt, 48 greedy tokens, one request at
    a time, best of 3), in a process of its own: the machine's speed at that moment. This machine
    is shared, and the modes run one after the other for many minutes, so a ratio of wall times
    can move with the machine; probes before, between and after the modes show by how much."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"default_run: the machine probe failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def one(parallel: int, select: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DAGSTER_HOME": tmp,
            "SYNTH_DUCKDB_PATH": str(Path(tmp) / "warehouse.duckdb"),
            "SYNTH_LLAMA_PARALLEL": str(parallel),
            "BENCH_ROOT": str(ROOT),
            "BENCH_SELECT": select,
        }
        (Path(tmp) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise SystemExit(
                f"parallel {parallel}: the run printed no result\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        res = json.loads(line[6:])
        res["process_s"] = time.perf_counter() - t0
        return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", default="1,16")
    ap.add_argument("--select", default="not group:training")
    args = ap.parse_args()
    probes = [probe()]
    results = {}
    for p in args.parallel.split(","):
        results[int(p)] = one(int(p), args.select)
        probes.append(probe())
    modes = list(results)
    steps = sorted(
        {k for r in results.values() for k in r["steps"]},
        key=lambda k: -max(r["steps"].get(k, 0) for r in results.values()),
    )
    print(f"{'step':<34}" + "".join(f"{f'parallel {p}':>14}" for p in modes))
    for k in steps:
        print(f"{k:<34}" + "".join(f"{results[p]['steps'].get(k, 0):>13.1f}s" for p in modes))
    rows = [("run (Dagster's run time)", "run_s"), ("process (imports, model load, run)", "process_s")]
    for label, key in rows:
        print(f"{label:<34}" + "".join(f"{results[p][key]:>13.1f}s" for p in modes))
    print(
        f"{'Dagster beyond the steps':<34}"
        + "".join(f"{results[p]['run_s'] - sum(results[p]['steps'].values()):>13.1f}s" for p in modes)
    )
    print(
        f"{'candidates per minute (raw)':<34}"
        + "".join(
            f"{60 * results[p]['candidates'] / max(results[p]['steps'].get('raw_candidates', 1e-9), 1e-9):>14.0f}"
            for p in modes
        )
    )
    for p in modes:
        r, w = results[p], results[p]["work"]
        reused = (1 - w["prompt_tokens_evaluated"] / r["prompt_tokens"]) if w["prompt_tokens_evaluated"] else None
        print(
            f"parallel {p}: {r['candidates']} candidates carrying {r['prompt_tokens']} prompt tokens and "
            f"{r['completion_tokens']} completion tokens; batched decoder: {w['prompt_tokens_evaluated']} prompt "
            f"tokens evaluated"
            + (
                f" ({reused:.0%} of the candidates' prompt tokens reused)"
                if reused is not None
                else " (one request at a time: llama-cpp-python reuses the previous prompt's prefix)"
            )
            + f", {w['tokens_decoded']} tokens in {w['decode_steps']} decode steps; exit {r['rc']}"
        )
    print(
        "machine probe (a fixed model task, seconds; before, between and after the modes): "
        + ", ".join(f"{x:.2f}" for x in probes)
    )
    # each mode's speed: the mean of the probes on either side of it
    speed = {p: (probes[i] + probes[i + 1]) / 2 for i, p in enumerate(modes)}
    base = modes[0]
    for p in modes[1:]:
        a, b = results[base], results[p]
        gen_a, gen_b = a["steps"].get("raw_candidates", 0), b["steps"].get("raw_candidates", 1e-9)
        print(
            f"parallel {p} vs {base}: raw_candidates {gen_a / max(gen_b, 1e-9):.2f}x faster, "
            f"whole run {a['run_s'] / b['run_s']:.2f}x; with each run's time divided by its probes' mean "
            f"{(a['run_s'] / speed[base]) / (b['run_s'] / speed[p]):.2f}x"
        )


if __name__ == "__main__":
    main()
