"""One cached prefix against eight, on the held-out evaluation's requests, alternating in one process.

    .venv/bin/python bench/prefix_slots.py              # 20 items per family and variant (420 items)

Requests are ``generator_eval``'s (greedy, 24 tokens, the answer stop) for the default held-out
items, sorted by family and variant as the evaluation sends them. Each repetition runs a fresh
decoder with one prefix slot, then one with eight; printed: wall time and prompt tokens
evaluated (the count is deterministic, the time moves with the machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import BatchedDecoder
from synth_assets.core.training.evaluation import heldout_requests
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    _, reqs = heldout_requests(heldout_items(HeldoutSettings(items_per_family=args.per_family), PromptSettings()))
    gen = LlamaCppGenerator(parallel=1)
    print(f"{len(reqs)} held-out requests, 16 sequences")
    for _ in range(args.repeats):
        for slots in (1, 8):
            dec = BatchedDecoder(gen._llm, 16, 2048)
            dec.prefix_slots = slots
            t0 = time.perf_counter()
            list(dec.generate(reqs))
            print(
                f"prefix slots {slots}: {time.perf_counter() - t0:6.1f} s, "
                f"{dec.prompt_tokens_evaluated} prompt tokens evaluated",
                flush=True,
            )
            dec.close()
    gen.close()


if __name__ == "__main__":
    main()
