"""Batched decoding against llama-cpp-python's one-sequence-at-a-time path, same requests, same run.

    .venv/bin/python bench/batched_generation.py                      # 7 families x 10 tasks, 6 samples
    .venv/bin/python bench/batched_generation.py --per-family 4 --widths 1,2,4,8
    .venv/bin/python bench/batched_generation.py --samples-sweep 1,2,4,8,16   # growth with samples a task

The sequential path is llama-cpp-python's ``create_completion`` on the stored model file; the
batched path is the generator a run builds with ``parallel`` > 1 (its decoder, on the F16 copy
of the block weights: ``core/generators/f16_weights.py``). Requests are what ``raw_candidates`` sends on
the defaults (the 3-shot answer prompt, 6 samples a task at temperatures 0.7 and 1.0, seeds
derived per sample) for reasoning-gym tasks of the seven default families (seed 42, as the task
pool draws them). Both paths generate the same requests;
every candidate is verified by the platform's reasoning-gym verifier, and each family's pass
rate is printed with its 95% Wilson interval for both paths (and Fisher's exact p for the
difference). Printed: candidates per minute, decode tokens per second, the ratio, the batched
decoder's work (prompt tokens evaluated, tokens decoded, decode steps), how close batched
decoding comes to the limit (batched tokens/s divided by the single-stream rate times the batch
width), throughput as the number of sequences decoded together grows and as the number of
samples per task grows (both paths, fewer tasks), and the ceiling: the
batched decoder's work at this machine's fastest measured prompt evaluation and decoding rates.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from scipy.stats import fisher_exact

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.generation import SamplingPlan, plan_requests
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import BatchedDecoder
from synth_assets.core.stats import wilson
from synth_assets.core.tasks.sources import (
    DEFAULT_FAMILIES,
    reasoning_gym_tasks,
)
from synth_assets.core.verify.verification import verify_reasoning_gym


def run(gen, requests) -> tuple[list, float]:
    t0 = time.perf_counter()
    out = list(gen.generate(requests))
    return out, time.perf_counter() - t0


def passes(planned, samples) -> dict[str, tuple[int, int]]:
    by: dict[str, list[int]] = {}
    for (task, _req), s in zip(planned, samples):
        v = verify_reasoning_gym({**task, "completion": s.text}, 1.0)
        k, n = by.get(task["family"], [0, 0])
        by[task["family"]] = [k + (v.verdict == "pass"), n + 1]
    return {f: (k, n) for f, (k, n) in by.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=10)
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--widths", default="1,2,4,8,16")
    ap.add_argument("--samples-sweep", default="1,2,4,8", help="samples per task for the growth table ('' skips it)")
    ap.add_argument("--sweep-per-family", type=int, default=3)
    args = ap.parse_args()
    tasks = reasoning_gym_tasks(DEFAULT_FAMILIES, args.per_family, 42)
    planned = plan_requests(tasks, SamplingPlan(samples_per_task=args.samples), generation=1)
    requests = [r for _t, r in planned]
    gen = LlamaCppGenerator()  # one request at a time: the stored weights
    # the generator as a run builds it (the batched path on the F16 copy of the block weights)
    fast = LlamaCppGenerator(parallel=args.parallel)
    batched = fast._batched
    print(f"sequential path: {gen.weights_path.name}; batched path: {fast.weights_path.name}")
    seq, seq_s = run(gen, requests)
    bat, bat_s = run(batched, requests)
    tok_seq = sum(s.completion_tokens for s in seq)
    tok_bat = sum(s.completion_tokens for s in bat)
    n = len(requests)
    print(f"{n} requests ({tasks.height} tasks x {args.samples} samples), parallel {args.parallel}")
    print(f"{'path':<34} {'seconds':>8} {'candidates/min':>15} {'decode tok/s':>13}")
    print(f"{'sequential (create_completion)':<34} {seq_s:>8.1f} {60 * n / seq_s:>15.0f} {tok_seq / seq_s:>13.1f}")
    print(f"{'batched':<34} {bat_s:>8.1f} {60 * n / bat_s:>15.0f} {tok_bat / bat_s:>13.1f}")
    print(f"ratio (candidates per minute): {seq_s / bat_s:.2f}x")
    carried = sum(s.prompt_tokens for s in bat)
    work = (batched.prompt_tokens_evaluated, batched.tokens_decoded)  # the main run's (the sweep adds to the counters)
    print(
        f"batched decoder's work: {batched.prompt_tokens_evaluated} prompt tokens evaluated of the {carried} the "
        f"requests carried, {batched.tokens_decoded} tokens decoded in {batched.decode_steps} steps "
        f"({batched.tokens_decoded / max(batched.decode_steps, 1):.1f} sequences a step)"
    )
    print("\npass rate per family, 95% Wilson interval (sequential | batched):")
    ps, pb = passes(planned, seq), passes(planned, bat)
    for fam in sorted(ps):
        (k1, n1), (k2, n2) = ps[fam], pb[fam]
        lo1, hi1 = wilson(k1, n1)
        lo2, hi2 = wilson(k2, n2)
        inside = lo1 <= k2 / n2 <= hi1
        p = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])[1]
        print(
            f"  {fam:<18} {k1:>3}/{n1:<3} [{lo1:.2f}, {hi1:.2f}] | {k2:>3}/{n2:<3} [{lo2:.2f}, {hi2:.2f}]"
            f"  {'within' if inside else 'OUTSIDE'} the sequential interval; Fisher p={p:.2f}"
        )
    # throughput against the number of sequences decoded together: on the task requests, and in
    # pure decoding (64 tokens a sequence, no stop), whose single-stream rate sets the limit
    from synth_assets.core.generators.generation import SampleRequest

    story = "Write a long story about a dragon and a knight.\n"
    single = None
    print(f"\n{'width':>5} {'candidates/min':>15} {'pure decode tok/s':>18} {'of width x single':>18} {'peak RSS':>9}")
    sub = requests[: 4 * max(int(w) for w in args.widths.split(","))]
    best_decode = 0.0
    for w in (int(x) for x in args.widths.split(",")):
        dec = BatchedDecoder(fast._llm, parallel=w, n_ctx_per_seq=2048)
        _out, secs = run(dec, sub)
        pure = [SampleRequest("s", story, "story", 1.0, 0.95, 64, (), 1000 + i, i) for i in range(w)]
        run(dec, pure)  # warm
        out, psecs = run(dec, pure)
        dec.close()
        rate = sum(s.completion_tokens for s in out) / psecs
        single = rate if w == 1 else single  # the limit is width x the rate of one sequence alone
        best_decode = max(best_decode, rate)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        limit = f"{rate / (single * w):>17.0%}" if single else f"{'(needs width 1)':>17}"
        print(f"{w:>5} {60 * len(sub) / secs:>15.0f} {rate:>18.1f} {limit} {rss:>8.0f}M")
    # throughput against the number of samples per task: the same tasks, both paths
    if args.samples_sweep:
        few = reasoning_gym_tasks(DEFAULT_FAMILIES, args.sweep_per_family, 42)
        print(f"\n{few.height} tasks, both paths from cold caches, candidates per minute as samples per task grow:")
        print(f"{'samples a task':>14} {'requests':>9} {'sequential':>11} {'batched':>9} {'ratio':>7}")
        for k in (int(x) for x in args.samples_sweep.split(",")):
            reqs = [r for _t, r in plan_requests(few, SamplingPlan(samples_per_task=k), generation=1)]
            # cold caches on both sides: no prefix left from an earlier run helps either path
            gen._llm.reset()
            batched.forget_prefixes()
            _o, a = run(gen, reqs)
            _o, b = run(batched, reqs)
            print(f"{k:>14} {len(reqs):>9} {60 * len(reqs) / a:>11.0f} {60 * len(reqs) / b:>9.0f} {a / b:>6.2f}x")
    # the machine's ceiling: the batched decoder's work at the fastest prompt evaluation and the
    # fastest batched decoding measured here; no batching of these requests can beat it
    prompt_rate = prompt_eval_rate(fast)
    floor_s = work[0] / prompt_rate + work[1] / best_decode
    print(
        f"\nceiling on this machine: prompt evaluation {prompt_rate:.0f} tokens/s (512-token batches), batched "
        f"decoding {best_decode:.0f} tokens/s (the widest rate above); the batched decoder's work takes at least "
        f"{floor_s:.1f} s at those rates, so at best {seq_s / floor_s:.2f}x the sequential path "
        f"(measured: {seq_s / bat_s:.2f}x)"
    )
    fast.close()
    gen.close()


def prompt_eval_rate(gen, tokens: int = 512, repeats: int = 3) -> float:
    """Tokens per second evaluating one 512-token prompt (no logits but the last): the most
    efficient batch shape llama.cpp has for prompts, on this machine."""
    dec = BatchedDecoder(gen._llm, parallel=1, n_ctx_per_seq=2048)
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    toks = gen._llm.tokenize(text.encode("utf-8"))[:tokens]
    best = float("inf")
    for _ in range(repeats):
        dec._cpp.llama_memory_clear(dec._cpp.llama_get_memory(dec._ctx.ctx), True)
        t0 = time.perf_counter()
        dec._decode([(t, k, 0, k == len(toks) - 1) for k, t in enumerate(toks)])
        best = min(best, time.perf_counter() - t0)
    dec.close()
    return len(toks) / best


if __name__ == "__main__":
    main()
