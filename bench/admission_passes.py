"""How the batched decoder's admissions are laid out for llama.cpp, and what that buys, same process.

    .venv/bin/python bench/admission_passes.py                  # pass costs, then 2 alternating rounds
    .venv/bin/python bench/admission_passes.py --rounds 3 --per-family 10

With a KV stream per sequence llama.cpp runs a multi-sequence batch as micro-batches of
consecutive sequence ids in which every sequence has the same number of tokens
(``split_equal``), and each micro-batch is a forward pass. First this prints what a pass costs
on the F16 copy (a fixed part and a part per token, least squares over one sequence's tails of
1-64 tokens after a 300-token prompt), the figure behind ``BatchedDecoder.pass_cost_tokens``.
Then it runs the held-out evaluation's requests (greedy, 24 tokens, 16 sequences, cold caches
each run) three ways, alternating: as before (new sequences take whatever ids are free, tails
as they are), consecutive ids (running sequences move down first), and consecutive ids with
tails grown to a common length where that saves a pass (the default). Printed per run: wall
time, prompt tokens evaluated, tokens grown, and the micro-batches its llama_decode calls split
into (counted after the run by the same rule as llama.cpp's ``split_equal``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import BatchedDecoder
from synth_assets.core.training.evaluation import heldout_requests
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

Item = tuple[int, int, int, bool]


def micro_batches(items: list[Item], n_ubatch: int) -> int:
    """How many ubatches llama.cpp's ``split_equal(n_ubatch, sequential=true)`` makes of a batch
    whose tokens are in sequence-id order, as the decoder sends them (llama-batch.cpp): each a run
    of consecutive sequence ids, each sequence giving the same number of tokens."""
    by_seq: dict[int, int] = {}
    for _, _, sid, _ in items:
        by_seq[sid] = by_seq.get(sid, 0) + 1
    left, order, n = dict(by_seq), list(dict.fromkeys(sid for _, _, sid, _ in items)), 0
    while any(left.values()):
        first = next(s for s in order if left[s])
        run = [first]
        while left.get(run[-1] + 1):
            run.append(run[-1] + 1)
        take = min(min(left[s] for s in run), max(1, n_ubatch // len(run)))
        for s in run:
            left[s] -= take
        n += 1
    return n


def pass_costs(dec: BatchedDecoder, prompt: list[int], rounds: int = 7) -> tuple[float, float]:
    """Fixed and per-token milliseconds of one sequence's pass after ``prompt``."""
    cpp = dec._cpp
    mem = cpp.llama_get_memory(dec._ctx.ctx)
    base = len(prompt)
    dec._decode([(t, k, 0, False) for k, t in enumerate(prompt)])
    sizes = (1, 2, 4, 8, 16, 32, 64)
    got: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            items = [(prompt[k % base], base + k, 0, False) for k in range(n)]
            t0 = time.perf_counter()
            dec._decode(items)
            got[n].append((time.perf_counter() - t0) * 1000)
            cpp.llama_memory_seq_rm(mem, 0, base, -1)
    cpp.llama_memory_seq_rm(mem, 0, -1, -1)
    xs, ys = list(sizes), [statistics.median(got[n]) for n in sizes]
    slope, fixed = statistics.linear_regression(xs, ys)
    for n, y in zip(xs, ys):
        print(f"  {n:3d} tokens: {y:6.1f} ms")
    return fixed, slope


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    _, reqs = heldout_requests(heldout_items(HeldoutSettings(items_per_family=args.per_family), PromptSettings()))
    gen = LlamaCppGenerator(parallel=16)  # the batched path: the F16 copy
    dec = gen._batched
    print("one sequence's forward pass after a 300-token prompt (medians of 7):")
    fixed, per_token = pass_costs(dec, dec._prompt_tokens(reqs[0])[:300])
    print(
        f"fixed {fixed:.1f} ms a pass, {per_token:.2f} ms a token: a pass costs as much as "
        f"{fixed / per_token:.1f} tokens (the decoder assumes {dec.pass_cost_tokens})\n"
    )
    dec.close()
    gen._batched = None

    variants = {"as before": (False, 0), "consecutive ids": (True, 0), "consecutive, grown tails": (True, None)}
    times: dict[str, list[float]] = {v: [] for v in variants}
    answers: dict[str, list[str]] = {}
    print(f"{len(reqs)} held-out requests, 16 sequences, cold caches each run")
    for r in range(args.rounds):
        for name, (compact, cost) in variants.items():
            dec = BatchedDecoder(gen._llm, 16, 2048)
            dec.compact_admissions = compact
            if cost is not None:
                dec.pass_cost_tokens = cost
            calls: list[list[Item]] = []
            decode = dec._decode
            dec._decode = lambda items, decode=decode, calls=calls: (calls.append(items), decode(items))[1]
            t0 = time.perf_counter()
            out = list(dec.generate(reqs))
            dt = time.perf_counter() - t0
            times[name].append(dt)
            answers[name] = [s.text for s in out]
            passes = sum(micro_batches(c, dec._n_batch) for c in calls)
            print(
                f"round {r + 1} {name:<26} {dt:6.1f} s  prompt tokens {dec.prompt_tokens_evaluated} "
                f"(grown {dec.prompt_tokens_regrown})  decode steps {dec.decode_steps}  forward passes {passes}",
                flush=True,
            )
            dec.close()
    base = times["as before"]
    for name, ts in times.items():
        print(
            f"{name:<26} best {min(ts):6.1f} s, median {statistics.median(ts):6.1f} s: "
            f"{min(base) / min(ts):.3f}x best, {statistics.median(base) / statistics.median(ts):.3f}x median"
        )
    same = sum(a == b for a, b in zip(answers["as before"], answers["consecutive, grown tails"]))
    print(f"identical greedy answers, default vs as before: {same}/{len(reqs)}")
    gen.close()


if __name__ == "__main__":
    main()
