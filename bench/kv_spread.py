"""What a prompt token costs in the batched decoder's shared context, against how far the used
KV cells spread (why caching more prefixes cut prompt tokens but not time, README "Batched
decoding").

    .venv/bin/python bench/kv_spread.py

One ``BatchedDecoder`` context of the default size (16 sequences of 2,048 tokens). Before each
measurement a filler sequence is written up to a cell index and all but its last 256 cells
removed again, so the same few cells are used but they sit that far into the cache. Printed:
the best of three evaluations of one 200-token prompt (tokens/s) and of a one-token decode step
at each spread, and the ratio to the most compact case.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.llama_backend import LlamaCppGenerator  # noqa: E402


def main() -> None:
    gen = LlamaCppGenerator(parallel=16)
    dec = gen._batched
    cpp = dec._cpp
    mem = cpp.llama_get_memory(dec._ctx.ctx)
    rng = random.Random(0)
    filler = dec.parallel + 1  # a prefix slot's sequence id

    def prompt(seq: int, n: int, start: int = 0) -> list[tuple[int, int, int, bool]]:
        return [(rng.randrange(1000, 20000), start + k, seq, k == n - 1) for k in range(n)]

    first = None
    print(f"{'highest used cell':>18} {'200-token prompt':>17} {'tokens/s':>9} {'vs compact':>11} {'1-token step':>13}")
    for spread in (512, 8192, 20000, 33000):
        cpp.llama_memory_clear(mem, True)
        for c in range(0, spread, 512):
            dec._decode(prompt(filler, min(512, spread - c), c))
        cpp.llama_memory_seq_rm(mem, filler, 0, spread - 256)  # keep the last 256 cells only
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
        print(f"{spread:>18} {best * 1000:>14.0f} ms {rate:>9.0f} {rate / first:>10.2f}x {step * 1000:>10.1f} ms")
    gen.close()


if __name__ == "__main__":
    main()
