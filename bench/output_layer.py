"""What the output layer costs in a batched decoding step, and whether a cheaper search for the
next token's candidates would pay, same process.

    .venv/bin/python bench/output_layer.py                 # 16 sequences, 4 alternating rounds
    .venv/bin/python bench/output_layer.py --per-family 10

Gemma 3's output layer is its 262,144-word embedding (640 wide): every sequence needs every
word's logit at every step. First this times a decoding step of 16 sequences (and of one) on the
F16 copy the batched path uses, whole, and stopped right after the final norm: a scheduler
callback that reads the final hidden state (``result_norm``) and ends the graph there, so the
difference is what the output layer costs. Then it captures the final hidden states of real
requests (the ``raw_candidates`` requests of reasoning-gym tasks of the seven default families,
and the held-out evaluation's), fits a rank-r basis on the candidates' states and, on the
held-out evaluation's states (out of sample), measures how often the M words a rank-r screen
ranks highest hold the true best word, all of the true top 40 (the sampler's top-k), and every
word within 3 of the best logit (all that min-p 0.05 can keep); and what the screen costs here
(the projection of all 262k words, the top-M selection, the exact logits of the M words) against
the output layer it would replace, and what the whole layer costs in numpy and torch.

Measurement only: the callback and the ggml tensor layout below are not used by the platform.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp

from synth_assets.core.generators.generation import PromptSettings, SamplingPlan, plan_requests
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import BatchedDecoder
from synth_assets.core.tasks.sources import (
    DEFAULT_FAMILIES,
    reasoning_gym_tasks,
)
from synth_assets.core.training.evaluation import heldout_requests
from synth_assets.core.training.heldout import HeldoutSettings, heldout_items

PARALLEL = 16


class GgmlTensor(ctypes.Structure):
    """``struct ggml_tensor`` of the ggml that llama-cpp-python 0.3.36 ships (include/ggml.h);
    checked against its size (336 bytes) and by the logits test below."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


class FinalNorm:
    """A scheduler callback that copies the final hidden state of every output row and, when
    ``stop`` is set, ends the graph there (the output layer is never computed)."""

    def __init__(self) -> None:
        self.stop, self.rows = False, []
        self.fn = llama_cpp.ggml_backend_sched_eval_callback(self._cb)

    def _cb(self, t, ask, _ud) -> bool:
        g = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
        if ask:
            return g.name == b"result_norm"
        n0, n1 = g.ne[0], g.ne[1]
        self.rows.append(
            np.frombuffer((ctypes.c_float * (n0 * n1)).from_address(g.data), np.float32).reshape(n1, n0).copy()
        )
        return not self.stop


def decoder_with(callback: FinalNorm, llm) -> BatchedDecoder:
    """A batched decoder as the platform builds it, its context carrying ``callback``."""
    plain = llama_cpp.llama_context_default_params

    def params():
        p = plain()
        p.cb_eval = callback.fn
        return p

    llama_cpp.llama_context_default_params = params
    try:
        return BatchedDecoder(llm, PARALLEL, 2048)
    finally:
        llama_cpp.llama_context_default_params = plain


def step_times(
    dec: BatchedDecoder, cb: FinalNorm | None, prompts: list[list[int]], width: int, steps: int = 6
) -> float:
    """Milliseconds of one decoding step of ``width`` sequences after their prompts."""
    cpp = dec._cpp
    mem = cpp.llama_get_memory(dec._ctx.ctx)
    cpp.llama_memory_clear(mem, True)
    for s in range(width):
        items = [(t, k, s, False) for k, t in enumerate(prompts[s][:-steps])]
        for c in range(0, len(items), dec._n_batch):  # a prompt longer than a batch goes in parts
            dec._decode(items[c : c + dec._n_batch])
    if cb is not None:
        cb.stop = True
    t0 = time.perf_counter()
    for j in range(steps):
        dec._decode([(p[len(p) - steps + j], len(p) - steps + j, s, True) for s, p in enumerate(prompts[:width])])
    if cb is not None:
        cb.stop = False
    return (time.perf_counter() - t0) / steps * 1000


def output_embedding(path: Path) -> np.ndarray:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    t = next(t for t in GGUFReader(path).tensors if t.name == "token_embd.weight")
    return dequantize(t.data, t.tensor_type).reshape(-1, int(t.shape[0])).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-family", type=int, default=4, help="reasoning-gym tasks per family (6 samples each)")
    ap.add_argument("--heldout", type=int, default=5, help="held-out items per family and variant")
    args = ap.parse_args()
    gen = LlamaCppGenerator(parallel=PARALLEL)  # the batched path's model (the F16 copy)
    print(f"model: {gen.weights_path.name}")
    cb = FinalNorm()
    plain, hooked = gen._batched, decoder_with(cb, gen._llm)

    _, heldout = heldout_requests(heldout_items(HeldoutSettings(items_per_family=args.heldout), PromptSettings()))
    prompts = [plain._prompt_tokens(r) for r in heldout[:: max(1, len(heldout) // PARALLEL)][:PARALLEL]]
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, dec, c in (("whole", plain, None), ("stopped after the final norm", hooked, cb))[
            :: 1 if r % 2 == 0 else -1
        ]:
            for width in (PARALLEL, 1):
                times.setdefault(f"{width:>2} sequence{'s' if width > 1 else ''}, {name}", []).append(
                    step_times(dec, c, prompts, width)
                )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\ndecoding step after held-out prompts of {min(map(len, prompts))}-{max(map(len, prompts))} tokens, "
        f"median of {args.rounds} alternating rounds:"
    )
    for k, v in med.items():
        print(f"  {k:<45} {v:7.1f} ms")
    whole, body = med[f"{PARALLEL} sequences, whole"], med[f"{PARALLEL} sequences, stopped after the final norm"]
    out_ms = whole - body
    print(
        f"  the output layer: {out_ms:.1f} ms of a {PARALLEL}-sequence step ({out_ms / whole:.0%}), "
        f"{out_ms / PARALLEL:.2f} ms a sequence"
    )

    # the final hidden states of real requests, as the batched decoder produces them
    tasks = reasoning_gym_tasks(DEFAULT_FAMILIES, args.per_family, 42)
    cand = [r for _t, r in plan_requests(tasks, SamplingPlan(samples_per_task=6), generation=1)]
    cb.rows.clear()
    list(hooked.generate(cand))
    train = np.concatenate(cb.rows)
    cb.rows.clear()
    list(hooked.generate(heldout))
    test = np.concatenate(cb.rows)
    emb = output_embedding(gen.weights_path)
    print(
        f"\nfinal hidden states: {len(train)} from {len(cand)} candidate requests (fit), {len(test)} from "
        f"{len(heldout)} held-out requests (test); output layer {emb.shape[0]:,} x {emb.shape[1]}"
    )
    exact = test @ emb.T
    order = np.argpartition(-exact, 40, axis=1)[:, :40]
    order = np.take_along_axis(order, np.argsort(-np.take_along_axis(exact, order, 1), axis=1), 1)  # best first
    top = np.take_along_axis(exact, order[:, :1], 1)
    near = exact >= top - 3.0  # min-p 0.05 keeps p >= 0.05 p_max: logit >= max + ln 0.05
    print(f"  words within 3 of the best logit: {near.sum(1).mean():.1f} on average")
    _, energy, basis = np.linalg.svd(train, full_matrices=False)
    share = np.cumsum(energy**2) / np.sum(energy**2)
    print(
        f"  share of the fitted states' energy in 32 / 64 / 128 directions: "
        f"{share[31]:.3f} / {share[63]:.3f} / {share[127]:.3f}"
    )
    import torch

    torch.set_num_threads(gen._llm.context_params.n_threads)
    batch = test[:PARALLEL]
    emb_t = torch.from_numpy(emb)

    def timed(f, n: int = 5) -> float:
        f()
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - t0) / n * 1000

    print(
        f"  the whole output layer for {PARALLEL} rows elsewhere: numpy F32 "
        f"{timed(lambda: batch @ emb.T):.1f} ms, torch F32 {timed(lambda: torch.from_numpy(batch) @ emb_t.T):.1f} ms "
        f"(llama.cpp's Q8_0 kernels: {out_ms:.1f} ms)"
    )
    print(
        f"\n{'rank':>4} {'M':>5} {'best word':>10} {'top 40':>8} {'within 3':>9} {'screen ms':>10} "
        f"{'vs output layer':>16}"
    )
    for rank in (64, 128):
        q = basis[:rank].T.astype(np.float32)
        proj = np.ascontiguousarray(emb @ q)
        approx = (test @ q) @ proj.T
        for m in (256, 1024):
            cand_ids = np.argpartition(-approx, m, axis=1)[:, :m]
            held = np.zeros_like(near)
            np.put_along_axis(held, cand_ids, True, 1)
            best = np.take_along_axis(held, order[:, :1], 1).mean()
            all40 = np.take_along_axis(held, order, 1).all(1).mean()
            allnear = (held | ~near).all(1).mean()

            def screen(q: np.ndarray = q, proj: np.ndarray = proj, m: int = m) -> np.ndarray:
                a = torch.from_numpy((batch @ q) @ proj.T)
                ids = a.topk(m, dim=1, sorted=False).indices.numpy()
                return np.einsum("kd,kmd->km", batch, emb[ids])

            ms = timed(screen)
            print(f"{rank:>4} {m:>5} {best:>10.4f} {all40:>8.4f} {allnear:>9.4f} {ms:>10.1f} {ms / out_ms:>15.2f}x")
    hooked.close()
    gen.close()


if __name__ == "__main__":
    main()
