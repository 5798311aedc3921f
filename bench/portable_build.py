"""The portable llama.cpp build (instruction sets probed by running them, scripts/llama_cmake_args.sh)
against llama.cpp's native build (-march=native, AMX where the CPU advertises it), same requests,
alternating runs in child processes.

    # build the native one beside the venv (about 5 minutes on 2 cores), then compare:
    CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/pip install --no-cache-dir --no-deps --target /tmp/native_llama \
        llama-cpp-python==0.3.36
    .venv/bin/python bench/portable_build.py --native /tmp/native_llama --rounds 2

Each child builds the generator a run builds (batched, 16 sequences) and generates what
raw_candidates sends on the defaults for reasoning-gym tasks (``--tasks`` a family, 6 samples
each), then 24 of the same requests one at a time; it prints samples a minute and decoded tokens
a second for both. The build in use is named by llama.cpp's own system info line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def child(tasks_per_family: int) -> None:
    import llama_cpp

    from synth_assets.core.generators.generation import SamplingPlan, plan_requests
    from synth_assets.core.generators.llama_backend import LlamaCppGenerator
    from synth_assets.core.tasks.sources import DEFAULT_FAMILIES, reasoning_gym_tasks

    families = [f for f in DEFAULT_FAMILIES if f != "projectile_design"]
    tasks = reasoning_gym_tasks(families, tasks_per_family, 42)
    requests = [r for _, r in plan_requests(tasks, SamplingPlan(), 1)]
    out = {"system_info": llama_cpp.llama_print_system_info().decode()}
    for name, parallel, reqs in (("batched", 16, requests), ("sequential", 1, requests[:24])):
        gen = LlamaCppGenerator(parallel=parallel)
        list(gen.generate(reqs[:4]))  # warm: model loaded, F16 copy mapped
        t0 = time.perf_counter()
        samples = list(gen.generate(reqs))
        wall = time.perf_counter() - t0
        out[name] = {
            "samples_per_min": len(samples) / wall * 60,
            "tokens_per_s": sum(s.completion_tokens for s in samples) / wall,
            "samples": len(samples),
        }
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--native", help="a --target folder holding the native llama_cpp package (required)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=8, help="tasks a family")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.tasks)
        return
    if not args.native:
        ap.error("--native is required: the folder the native build was installed into (see above)")
    results: dict[str, list[dict]] = {"portable": [], "native": []}
    for _ in range(args.rounds):
        for build in ("portable", "native"):
            env = dict(os.environ)
            if build == "native":
                env["PYTHONPATH"] = args.native + os.pathsep + env.get("PYTHONPATH", "")
            proc = subprocess.run(
                [sys.executable, __file__, "--child", "--tasks", str(args.tasks)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                sys.exit(f"{build} child failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
            results[build].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"{build}: {results[build][-1]['batched']['samples_per_min']:.0f} samples/min batched", flush=True)
    print(f"\n{'build':<10}{'batched samples/min':>22}{'tokens/s':>10}{'one at a time tokens/s':>24}")
    for build, runs in results.items():
        b = statistics.median(r["batched"]["samples_per_min"] for r in runs)
        bt = statistics.median(r["batched"]["tokens_per_s"] for r in runs)
        st = statistics.median(r["sequential"]["tokens_per_s"] for r in runs)
        print(f"{build:<10}{b:>22.0f}{bt:>10.1f}{st:>24.1f}")
    for build, runs in results.items():
        print(f"{build}: {runs[0]['system_info']}")


if __name__ == "__main__":
    main()
