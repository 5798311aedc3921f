"""What a prompt token costs beside other sequences' KV cells, in one unified cache (the batched
decoder's layout until 2026-12-02) and in a stream per sequence (its layout since): why the
decoder keeps a stream per sequence (README "Batched decoding").

    .venv/bin/python bench/kv_spread.py                   # then the held-out evaluation, 420 items, twice each
    .venv/bin/python bench/kv_spread.py --heldout 0       # the spread table only

Two llama.cpp contexts of the batched decoder's default size (16 decoding sequences and 8
prefix slots of 2,048 tokens), one with ``kv_unified`` and one without. Before each measurement
a filler sequence is written up to a position and all but its last 256 cells removed again, so
the same few cells are used but, in the unified cache, they sit that far into it. Printed per
layout: the best of three evaluations of one 200-token prompt (tokens/s) and of a one-token
decode step at each spread, and the ratio to the most compact case. Then the held-out
evaluation's requests (``--heldout`` items per family and variant, greedy, as ``evaluate`` sends
them) through the same decoder on either layout, alternating, with the seconds of each run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import PREFIX_SLOTS, BatchedDecoder

PARALLEL, N_CTX_PER_SEQ = 16, 2048


class UnifiedCacheDecoder(BatchedDecoder):
    """The decoder's context as it was: one KV cache shared by every sequence."""

    def __init__(self, llm, parallel: int, n_ctx_per_seq: int) -> None:
        super().__init__(llm, parallel, n_ctx_per_seq)
        self._ctx.close()
        params = self._cpp.llama_context_default_params()
        params.n_seq_max = parallel + PREFIX_SLOTS
        params.kv_unified = True
        params.n_ctx = (parallel + 1) * n_ctx_per_seq
        params.n_batch = params.n_ubatch = max(512, parallel)
        params.n_threads = params.n_threads_batch = llm.context_params.n_threads
        self._ctx = self._internals.LlamaContext(model=llm._model, params=params, verbose=False)


def measure(dec: BatchedDecoder, label: str) -> None:
    cpp = dec._cpp
    mem = cpp.llama_get_memory(dec._ctx.ctx)
    rng = random.Random(0)
    filler = dec.parallel + 1  # a prefix slot's sequence id

    def prompt(seq: int, n: int, start: int = 0) -> list[tuple[int, int, int, bool]]:
        return [(rng.randrange(1000, 20000), start + k, seq, k == n - 1) for k in range(n)]

    first = None
    for spread in (512, 8192, 20000, 33000):
        cpp.llama_memory_clear(mem, True)
        if label == "stream per sequence":  # a stream holds one sequence's 2,048 positions
            filled = min(spread, N_CTX_PER_SEQ)
        else:
            filled = spread
        for c in range(0, filled, 512):
            dec._decode(prompt(filler, min(512, filled - c), c))
        cpp.llama_memory_seq_rm(mem, filler, 0, filled - 256)  # keep the last 256 cells only
        best = float("inf")
        for _ in range(3):
            cpp.llama_memory_seq_rm(mem, 0, -1, -1)
            t0 = time.perf_counter()
            dec._decode(prompt(0, 200))
            best = min(best, time.perf_counter() - t0)
        step = float("inf")
        for r in range(3):
            t0 = time.perf_counter()
            dec._decode([(rng.randrange(1000, 20000), 200 + r, 0, True)])
            step = min(step, time.perf_counter() - t0)
        rate = 200 / best
        first = first or rate
        print(
            f"{label:<22} {spread:>14} {best * 1000:>14.0f} ms {rate:>9.0f} {rate / first:>10.2f}x "
            f"{step * 1000:>10.1f} ms"
        )


def heldout_requests(per_family: int) -> list:
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.training import evaluation
    from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

    return evaluation.heldout_requests(heldout_items(HeldoutSettings(items_per_family=per_family), PromptSettings()))[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heldout", type=int, default=20, help="held-out items per family and variant (0: skip)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    gen = LlamaCppGenerator()
    print(
        f"{'layout':<22} {'filler written':>14} {'200-token prompt':>17} {'tokens/s':>9} {'vs compact':>11} "
        f"{'1-token step':>13}"
    )
    for cls, label in ((UnifiedCacheDecoder, "one unified cache"), (BatchedDecoder, "stream per sequence")):
        dec = cls(gen._llm, PARALLEL, N_CTX_PER_SEQ)
        measure(dec, label)
        dec.close()
    if args.heldout:
        reqs = heldout_requests(args.heldout)
        times: dict[str, list[float]] = {"one unified cache": [], "stream per sequence": []}
        for r in range(args.rounds):
            order = ((UnifiedCacheDecoder, "one unified cache"), (BatchedDecoder, "stream per sequence"))
            for cls, label in order if r % 2 == 0 else order[::-1]:
                dec = cls(gen._llm, PARALLEL, N_CTX_PER_SEQ)
                t0 = time.perf_counter()
                list(dec.generate(reqs))
                times[label].append(time.perf_counter() - t0)
                dec.close()
        print(f"\nheld-out evaluation, {len(reqs)} items, {PARALLEL} sequences, alternating:")
        for label, ts in times.items():
            print(f"  {label:<22} " + " ".join(f"{t:.1f} s" for t in ts) + f"  (best {min(ts):.1f} s)")
        a, b = min(times["one unified cache"]), min(times["stream per sequence"])
        print(f"  stream per sequence vs one unified cache, best of each: {a / b:.2f}x")
    gen.close()


if __name__ == "__main__":
    main()
