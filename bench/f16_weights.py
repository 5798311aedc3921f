"""The model's stored 4/5-bit block weights against their F16 copy (``core/generators/f16_weights.py``), same run.

    .venv/bin/python bench/f16_weights.py                   # kernel rates, then the held-out evaluation
    .venv/bin/python bench/f16_weights.py --heldout 0       # kernel rates only

Both files are loaded side by side and measured alternately, round by round: a 512-token prompt
of one sequence, eight 64-token prompts in one batch, a decode step of 16 sequences (logits for
each) and of one. Then the held-out evaluation's requests (``--heldout`` items per family and
variant, greedy, as ``generator_eval`` sends them) through the batched decoder on each file,
alternating: wall time, accuracy with its 95% Wilson interval, McNemar's p for the paired
difference, and how many greedy answers are identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_assets.core.generators.f16_weights import f16_copy
from synth_assets.core.generators.llama_backend import LlamaCppGenerator, model_cache_dir, packaged_sha256
from synth_assets.core.generators.llama_batched import BatchedDecoder
from synth_assets.core.stats import mcnemar_p, wilson
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items, score

PARALLEL = 16


def rates(dec: BatchedDecoder, toks: list[int]) -> dict[str, float]:
    """Tokens per second of four batch shapes on ``dec``'s context."""
    cpp = dec._cpp
    mem = cpp.llama_get_memory(dec._ctx.ctx)

    def timed(items: list[tuple[int, int, int, bool]]) -> float:
        t0 = time.perf_counter()
        dec._decode(items)
        return time.perf_counter() - t0

    out = {}
    cpp.llama_memory_clear(mem, True)
    out["prompt, 512 tokens of 1 sequence"] = 512 / timed([(t, k, 0, k == 511) for k, t in enumerate(toks[:512])])
    cpp.llama_memory_clear(mem, True)
    batch = [(toks[s * 64 + k], k, s, k == 63) for s in range(8) for k in range(64)]
    out["prompt, 8 sequences x 64 tokens"] = 512 / timed(batch)
    for width in (16, 1):
        cpp.llama_memory_clear(mem, True)
        for s in range(width):
            dec._decode([(t, k, s, False) for k, t in enumerate(toks[:32])])
        secs = sum(timed([(toks[32 + step], 32 + step, s, True) for s in range(width)]) for step in range(8))
        out[f"decode step, {width} sequence{'s' if width > 1 else ''}"] = 8 * width / secs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the kernel rates")
    ap.add_argument("--heldout", type=int, default=20, help="held-out items per family and variant (0: skip)")
    ap.add_argument("--heldout-rounds", type=int, default=2)
    args = ap.parse_args()
    stored = LlamaCppGenerator(parallel=1)
    t0 = time.perf_counter()
    f16_path = f16_copy(stored.path, packaged_sha256(), model_cache_dir(), log=print)
    print(
        f"F16 copy {f16_path} ready in {time.perf_counter() - t0:.1f} s "
        f"({f16_path.stat().st_size / 1e6:.0f} MB; stored file {stored.path.stat().st_size / 1e6:.0f} MB)"
    )
    f16 = LlamaCppGenerator(model_path=str(f16_path), parallel=1)
    gens = {"stored": stored, "f16": f16}
    decs = {k: BatchedDecoder(g._llm, PARALLEL, 2048) for k, g in gens.items()}
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    toks = stored._llm.tokenize(text.encode("utf-8"))[:600]
    got: dict[str, dict[str, list[float]]] = {k: {} for k in decs}
    for r in range(args.rounds):
        for k in list(decs) if r % 2 == 0 else list(decs)[::-1]:
            for shape, rate in rates(decs[k], toks).items():
                got[k].setdefault(shape, []).append(rate)
    print(f"\n{f'tokens/s, median of {args.rounds} alternating rounds':<40} {'stored':>8} {'f16':>8} {'ratio':>7}")
    for shape in got["stored"]:
        a, b = statistics.median(got["stored"][shape]), statistics.median(got["f16"][shape])
        print(f"{shape:<40} {a:>8.0f} {b:>8.0f} {b / a:>6.2f}x")
    if args.heldout:
        from synth_assets.core.generators.generation import PromptSettings
        from synth_assets.core.training.evaluation import heldout_requests

        items, reqs = heldout_requests(heldout_items(HeldoutSettings(items_per_family=args.heldout), PromptSettings()))
        rows = list(items.iter_rows(named=True))
        times: dict[str, list[float]] = {k: [] for k in decs}
        answers: dict[str, list[str]] = {}
        for r in range(args.heldout_rounds):
            for k in list(decs) if r % 2 == 0 else list(decs)[::-1]:
                t0 = time.perf_counter()
                answers[k] = [s.text for s in decs[k].generate(reqs)]
                times[k].append(time.perf_counter() - t0)
        print(f"\nheld-out evaluation, {len(reqs)} items, {PARALLEL} sequences, alternating:")
        right = {k: [score(row, a) for row, a in zip(rows, ans)] for k, ans in answers.items()}
        for k, ts in times.items():
            n = sum(right[k])
            lo, hi = wilson(n, len(rows))
            print(
                f"  {k:<7} " + " ".join(f"{t:.1f} s" for t in ts) + f"  (best {min(ts):.1f} s); "
                f"accuracy {n}/{len(rows)} [{lo:.2f}, {hi:.2f}]"
            )
        same = sum(a == b for a, b in zip(answers["stored"], answers["f16"]))
        print(
            f"  f16 vs stored, best of each: {min(times['stored']) / min(times['f16']):.2f}x; identical greedy "
            f"answers {same}/{len(rows)}; McNemar p = {mcnemar_p(right['stored'], right['f16']):.2f}"
        )
    for d in decs.values():
        d.close()
    for g in gens.values():
        g.close()


if __name__ == "__main__":
    main()
