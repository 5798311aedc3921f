"""Batched decoding on llama.cpp: many sequences advance together, one forward pass per step.

llama-cpp-python's ``create_completion`` decodes one sequence at a time, so six samples of a
task cost six decodes of every token. Here up to ``parallel`` requests share one llama.cpp
context (a KV stream each): a prompt is evaluated once and its cache copied to every sequence
that samples it (``llama_memory_seq_cp``), then each step decodes one token of every live
sequence in a single ``llama_decode`` call. Each sequence keeps the sampler chain
``create_completion`` builds (top-k 40, typical 1, top-p, min-p 0.05, temperature, then a
distribution seeded with the request's seed; greedy at temperature 0) and its stop strings.

Why not llama.cpp's server: it would be a second process with its own model copy and an HTTP
hop per request; the context here lives in the generator that already holds the weights, and
a LoRA adapter set on the model applies to it the same way.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from synth_assets.core.generators.generation import Sample, SampleRequest

if TYPE_CHECKING:  # llama_cpp is imported when a decoder is built, never at import time
    import llama_cpp
    from llama_cpp._internals import LlamaSampler

# cached shared prefixes: the default pool's seven answer families, a code family and a spare
PREFIX_SLOTS = 8


@dataclass
class _Seq:
    req: SampleRequest
    index: int  # position in the caller's request list
    seq_id: int
    sampler: object
    pos: int = 0  # tokens in this sequence's cache
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    raw: bytes = b""  # the sampled tokens' pieces, appended one by one (detokenizing all each step is O(n^2))
    done: str = ""  # finish reason once finished
    prompt_tokens: int = 0
    t0: float = 0.0
    feed: int = -1  # the token this sequence decodes at ``pos`` in the next step
    logits_of: _Seq | None = None  # the sample of the same prompt whose logits give this one's first token


class BatchedDecoder:
    """One llama.cpp context with ``parallel`` sequences over a loaded ``llama_cpp.Llama``."""

    def __init__(
        self,
        llm: llama_cpp.Llama,
        parallel: int,
        n_ctx_per_seq: int,
        lora_adapter: llama_cpp.llama_adapter_lora_p | None = None,
        lora_scale: float = 1.0,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        import llama_cpp
        from llama_cpp import _internals as internals

        self._cpp, self._internals, self._llm, self._log = llama_cpp, internals, llm, log
        self.parallel = parallel
        params = llama_cpp.llama_context_default_params()
        # the sequences after the ``parallel`` decoding ones hold cached shared prefixes (a family's
        # few-shot examples under one template each)
        self.prefix_slots = PREFIX_SLOTS
        params.n_seq_max = parallel + self.prefix_slots
        # A KV stream per sequence, not one unified cache: in a unified cache every token's
        # attention walks the cells of all sequences (masked), so a prompt token costs more the
        # further the used cells spread; the held-out evaluation ran 1.16x faster this way
        # (bench/kv_spread.py). Copies between streams move whole buffers (``_copy``).
        params.kv_unified = False
        # the sliding-window layers keep only their window (not a full-size cache): a copy moves
        # a stream's whole buffer, 22 MB a sequence instead of 38 MB for the default model
        params.swa_full = False
        params.n_ctx = params.n_seq_max * n_ctx_per_seq
        params.n_batch = max(512, parallel)
        params.n_ubatch = max(512, parallel)
        params.n_threads = params.n_threads_batch = llm.context_params.n_threads
        self.n_ctx_per_seq = n_ctx_per_seq
        self._ctx = internals.LlamaContext(model=llm._model, params=params, verbose=False)
        if lora_adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(lora_adapter)
            scales = (ctypes.c_float * 1)(lora_scale)
            if llama_cpp.llama_set_adapters_lora(self._ctx.ctx, adapters, 1, scales):
                raise RuntimeError("llama.cpp refused the LoRA adapter on the batched context")
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._n_batch = params.n_batch
        self._bos = [llm.token_bos()] if llm._model.add_bos_token() and llm.token_bos() >= 0 else []
        self._vocab = llm._model.vocab
        self._n_swa = llama_cpp.llama_model_n_swa(llm._model.model)
        self._prefixes: dict[int, list[int]] = {}  # slot sequence id -> its tokens, least recently used first
        self.min_prefix = 32  # a shorter shared prefix is not worth a copy
        # a forward pass's fixed cost in prompt tokens (see ``_pad_plan``); 0 never grows a tail.
        # Measured on the F16 copy, 2 cores: 13.2 ms a pass against 2.66 ms a token
        # (bench/admission_passes.py); a guess of 24 grew more tokens than the passes it saved
        self.pass_cost_tokens = 5
        # move running sequences down before an admission so the new ones get consecutive ids
        # (a gap splits their prompts' evaluation into one more forward pass); off only to measure it
        self.compact_admissions = True
        # what the bench and the tests read: work done, not time
        self.prompt_tokens_evaluated = 0
        self.decode_steps = 0
        self.tokens_decoded = 0
        self.prompt_tokens_regrown = 0  # evaluated again to save a forward pass (``_pad_plan``)

    def close(self) -> None:
        if self._batch is not None:
            self._cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None

    # ------------------------------------------------------------------ pieces
    def _sampler(self, req: SampleRequest) -> LlamaSampler:
        s = self._internals.LlamaSampler()
        if req.temperature <= 0:
            s.add_greedy()
        else:
            s.add_top_k(40)
            s.add_typical(1.0, 1)
            s.add_top_p(req.top_p, 1)
            s.add_min_p(0.05, 1)
            s.add_temp(req.temperature)
            s.add_dist(req.seed & 0xFFFFFFFF)
        return s

    def _fill(self, items: list[tuple[int, int, int, bool]]) -> None:
        """Batch of (token, position, sequence id, wants logits)."""
        b = self._batch
        b.n_tokens = len(items)
        for k, (tok, pos, sid, want) in enumerate(items):
            b.token[k] = tok
            b.pos[k] = pos
            b.seq_id[k][0] = sid
            b.n_seq_id[k] = 1
            b.logits[k] = want

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        self._fill(items)
        rc = self._cpp.llama_decode(self._ctx.ctx, self._batch)
        if rc != 0:
            raise MemoryError(f"llama_decode returned {rc} for a batch of {len(items)} tokens")

    @property
    def shared_prefix_tokens(self) -> int:
        """Tokens of the most recently used cached prefix."""
        return len(next(reversed(self._prefixes.values()), []))

    @staticmethod
    def _common(a: list[int], b: list[int]) -> int:
        n = 0
        for x, y in zip(a, b):
            if x != y:
                break
            n += 1
        return n

    def _gain(self, lcp: list[int], k: int) -> int:
        """Prompt tokens saved by caching ``lcp`` for ``k`` distinct prompts that start with it,
        given what the cached prefixes already serve, minus its own evaluation."""
        served = max((self._common(p, lcp) for p in self._prefixes.values()), default=0)
        return k * (len(lcp) - (served if served >= self.min_prefix else 0)) - len(lcp)

    def _clusters(self, prompts: list[list[int]]) -> list[list[int]]:
        """The common prefixes worth caching among ``prompts``. Sorted token lists put every
        group side by side, and a sorted run's common prefix is the smallest common prefix of
        its neighbours; a run is split where that is smallest (two families that share only the
        instruction line) whenever caching the parts saves more than caching the whole."""
        distinct = sorted({tuple(p) for p in prompts})
        adj = [self._common(a, b) for a, b in zip(distinct, distinct[1:])]

        def best(lo: int, hi: int) -> tuple[int, list[list[int]]]:
            if hi - lo < 2:
                return 0, []
            n = min(adj[lo : hi - 1])
            whole = list(distinct[lo][:n])
            merged = (self._gain(whole, hi - lo), [whole]) if n >= self.min_prefix else (0, [])
            cuts = [lo] + [i + 1 for i in range(lo, hi - 1) if adj[i] == n] + [hi]
            parts = [best(a, b) for a, b in zip(cuts, cuts[1:])]
            split = (sum(g for g, _ in parts), [x for _, xs in parts for x in xs])
            top = max(merged, split, key=lambda c: c[0])
            return top if top[0] > 0 else (0, [])

        return best(0, len(distinct))[1]

    def _refresh_prefix(self, prompts: list[list[int]]) -> None:
        """Cache the common prefix of every group of prompts that the cached prefixes do not
        serve well (a family's few-shot examples: 110-430 of their 140-490 tokens), each in a
        slot of its own, so a batch that spans two families or two templates finds both cached.
        The least recently used prefix makes room."""
        mem = self._cpp.llama_get_memory(self._ctx.ctx)
        for lcp in self._clusters(prompts):  # prompts are cut to n_ctx_per_seq, so a prefix fits
            while len(self._prefixes) >= self.prefix_slots:
                self._evict(mem)
            slot = next(s for s in range(self.parallel, self.parallel + self.prefix_slots) if s not in self._prefixes)
            self._cpp.llama_memory_seq_rm(mem, slot, -1, -1)
            for start in range(0, len(lcp), self._n_batch):
                chunk = lcp[start : start + self._n_batch]
                self._decode([(t, start + k, slot, False) for k, t in enumerate(chunk)])
            self.prompt_tokens_evaluated += len(lcp)
            self._prefixes[slot] = lcp

    def _copy(self, mem: llama_cpp.llama_memory_t, src: int, dst: int, keep: int | None = None) -> None:
        """``dst`` becomes ``src``'s first ``keep`` tokens (all when None). llama.cpp copies a
        whole stream between streams (a partial copy asserts), so the rest is cut after."""
        self._cpp.llama_memory_seq_cp(mem, src, dst, -1, -1)
        if keep is not None:
            self._cpp.llama_memory_seq_rm(mem, dst, keep, -1)

    def _window_kept(self, mem: llama_cpp.llama_memory_t, src: int, keep: int) -> bool:
        """Whether ``src`` still holds the sliding-window cells a copy cut at ``keep`` needs:
        a sliding-window cache drops cells older than the window as a sequence grows."""
        return self._n_swa <= 0 or self._cpp.llama_memory_seq_pos_min(mem, src) <= max(0, keep - self._n_swa)

    def forget_prefixes(self) -> None:
        """Drop every cached prefix: the next call starts cold (benches compare from one state;
        outputs depend, by rounding, on whether a prefix was evaluated alone or came cached)."""
        mem = self._cpp.llama_get_memory(self._ctx.ctx)
        while self._prefixes:
            self._evict(mem)

    def _evict(self, mem: llama_cpp.llama_memory_t) -> None:
        slot = next(iter(self._prefixes))
        del self._prefixes[slot]
        self._cpp.llama_memory_seq_rm(mem, slot, -1, -1)

    def _cached_part(self, tokens: list[int], mem: llama_cpp.llama_memory_t) -> tuple[int, int]:
        """The slot whose cached prefix shares the most with ``tokens``, and how many tokens
        (0 when under ``min_prefix``); a slot that serves is marked recently used."""
        best, n = -1, 0
        for slot, prefix in self._prefixes.items():
            k = min(self._common(prefix, tokens), len(tokens) - 1)  # the last token is always evaluated
            if k > n and self._window_kept(mem, slot, k):
                best, n = slot, k
        if n < self.min_prefix:
            return -1, 0
        self._prefixes[best] = self._prefixes.pop(best)
        return best, n

    # ------------------------------------------------------------------ the loop
    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        """Samples in request order, decoded continuously: up to ``parallel`` sequences advance
        together, and a finished one's slot takes the next request at once, so a long answer
        never holds a batch of short ones back. A prompt is evaluated once however many samples
        it has. When the context cannot hold the batch, the rest is retried with half as many
        sequences (with a log line), down to one, never a crash."""
        reqs = list(requests)
        done, width = 0, self.parallel
        while done < len(reqs):
            try:
                for sample in self._stream(reqs, done, width):
                    done += 1
                    yield sample
            except MemoryError as exc:
                if width == 1:
                    raise
                width = max(1, width // 2)
                self._log(f"batched decoding: {exc}; retrying {len(reqs) - done} requests {width} at a time")
                self._prefixes.clear()
                self._cpp.llama_memory_clear(self._cpp.llama_get_memory(self._ctx.ctx), True)

    def _prompt_tokens(self, req: SampleRequest) -> list[int]:
        """The prompt as create_completion tokenizes it (BOS, special tokens parsed)."""
        t = self._bos + self._llm.tokenize(req.prompt.encode("utf-8"), add_bos=False, special=True)
        return t[-max(1, self.n_ctx_per_seq - req.max_tokens) :]  # as llama-cpp-python: keep the tail

    def _stream(self, reqs: list[SampleRequest], first: int, width: int) -> Iterator[Sample]:
        cpp = self._cpp
        mem = cpp.llama_get_memory(self._ctx.ctx)
        for sid in range(self.parallel):  # the prefix slots (ids from ``parallel``) stay cached
            cpp.llama_memory_seq_rm(mem, sid, -1, -1)
        free = list(range(width))
        active: dict[int, _Seq] = {}
        holder: dict[str, _Seq] = {}  # prompt -> an active sequence whose cache starts with it
        results: dict[int, Sample] = {}
        nxt = admit = first
        while nxt < len(reqs):
            if free and admit < len(reqs):
                if self.compact_admissions and min(len(free), len(reqs) - admit) > 1:
                    # the new sequences' prompts are evaluated in one llama_decode, which llama.cpp
                    # splits wherever their ids are not consecutive: running ones move down first
                    self._compact(active, free, mem)
                batch = []
                free.sort()  # low ids first: the stepping sequences stay a contiguous run
                while free and admit < len(reqs):
                    batch.append(
                        _Seq(reqs[admit], admit, free.pop(0), self._sampler(reqs[admit]), t0=time.perf_counter())
                    )
                    admit += 1
                self._admit(batch, reqs[admit] if admit < len(reqs) else None, holder, mem)
                active.update({q.seq_id: q for q in batch})
            self._compact(active, free, mem)
            self._step(active, mem)
            for q in [q for q in active.values() if q.done]:
                results[q.index] = Sample(
                    text=q.text,
                    finish_reason=q.done,
                    prompt_tokens=q.prompt_tokens,
                    completion_tokens=len(q.tokens),
                    latency_s=time.perf_counter() - q.t0,
                )
                del active[q.seq_id]
                cpp.llama_memory_seq_rm(mem, q.seq_id, -1, -1)
                free.append(q.seq_id)
                if holder.get(q.req.prompt) is q:
                    heir = next((o for o in active.values() if o.req.prompt == q.req.prompt), None)
                    if heir is None:
                        del holder[q.req.prompt]
                    else:
                        holder[q.req.prompt] = heir
            while nxt in results:
                yield results.pop(nxt)
                nxt += 1

    def _compact(self, active: dict[int, _Seq], free: list[int], mem: llama_cpp.llama_memory_t) -> None:
        """Keep the running sequences on ids 0..n-1. With a stream per sequence llama.cpp splits
        a batch into runs of consecutive sequence ids, each a forward pass of its own; once
        requests run out and low ids finish, the highest sequence moves into the lowest idle id
        (a stream copy, about 3 ms for the default model) rather than split every later step."""
        n = len(active)
        holes = sorted(set(range(n)) - set(active))
        movers = sorted((sid for sid in active if sid >= n), reverse=True)
        for hole, sid in zip(holes, movers):
            q = active.pop(sid)
            self._copy(mem, sid, hole)
            self._cpp.llama_memory_seq_rm(mem, sid, -1, -1)
            q.seq_id = hole
            active[hole] = q
            free.remove(hole)
            free.append(sid)

    def _step(self, active: dict[int, _Seq], mem: llama_cpp.llama_memory_t) -> None:
        """One token of every active sequence in a single ``llama_decode``: a sampled token, or a
        new prompt's last token (its logits give the prompt's first samples; the prompt's other
        samples decode that token into their own cache without logits and sample from the same
        row)."""
        going = sorted(active.values(), key=lambda q: q.seq_id)
        if not going:
            return
        self._decode([(q.feed, q.pos, q.seq_id, q.logits_of is None) for q in going])
        self.decode_steps += 1
        row = {q.seq_id: k for k, q in enumerate(going)}
        for q in going:
            if not q.tokens:  # nothing sampled yet: ``feed`` was the prompt's last token
                self.prompt_tokens_evaluated += 1
            else:
                self.tokens_decoded += 1
            q.pos += 1
            k = row[(q.logits_of or q).seq_id]
            q.logits_of = None
            self._sample(q, k)

    def _pad_plan(self, tails: list[tuple[int, int]]) -> list[int]:
        """Lengths to evaluate for prompt tails given as (length, longest it can grow to), sorted
        by length. With a KV stream per sequence llama.cpp runs a multi-sequence batch as
        micro-batches in which every sequence has the same number of tokens (``split_equal``), so
        tails of k distinct lengths cost k forward passes, each with a fixed cost (the weights
        read once more) of about ``pass_cost_tokens`` tokens. A tail grows by starting its
        copy of the cached prefix earlier and evaluating those tokens again; the cheapest
        grouping of the sorted tails, each group grown to its longest, is a small dynamic program."""
        inf = float("inf")
        best, cut = [0.0] + [inf] * len(tails), [0] * (len(tails) + 1)
        for j in range(1, len(tails) + 1):
            top = tails[j - 1][0]
            for i in range(j, 0, -1):  # the group i..j, grown to ``top``
                if tails[i - 1][1] < top:
                    break
                cost = best[i - 1] + self.pass_cost_tokens + (j - i + 1) * top
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        out, j = [0] * len(tails), len(tails)
        while j:
            out[cut[j] - 1 : j] = [tails[j - 1][0]] * (j - cut[j] + 1)
            j = cut[j] - 1
        return out

    def _admit(
        self, batch: list[_Seq], upcoming: SampleRequest | None, holder: dict[str, _Seq], mem: llama_cpp.llama_memory_t
    ) -> None:
        """Evaluate the prompts of newly admitted sequences but their last tokens (one
        llama_decode for all of them, no logits); each last token is decoded in the next step
        beside the running sequences, so its logits cost no pass of their own. A prompt an active
        sequence already holds is copied from it; otherwise the cached shared prefix is copied and
        only the rest evaluated. The prompt's other samples copy the evaluated cache.

        The tails to evaluate take the lowest of the new ids in order of length, grown where that
        saves a forward pass (``_pad_plan``), so llama.cpp runs them in as few micro-batches as
        their lengths allow: one per distinct length, and one more per gap in the ids."""
        by_prompt: dict[str, list[_Seq]] = {}
        for q in batch:
            by_prompt.setdefault(q.req.prompt, []).append(q)
        toks = {p: self._prompt_tokens(g[0].req) for p, g in by_prompt.items()}
        seen = list(toks.values()) + ([self._prompt_tokens(upcoming)] if upcoming is not None else [])
        self._refresh_prefix(seen)
        # per prompt: where its cache comes from, how much of it, and how far back that can start
        plan: dict[str, tuple[int, int, int]] = {}  # prompt -> (source sequence or -1, start, earliest start)
        for prompt, group in by_prompt.items():
            t, had = toks[prompt], holder.get(prompt)
            if had is not None and self._window_kept(mem, had.seq_id, len(t) - 1):
                plan[prompt] = (had.seq_id, len(t) - 1, len(t) - 1)  # a running sample holds the prompt
            else:
                slot, start = self._cached_part(t, mem)
                plan[prompt] = (slot, start, 0 if start and self._window_kept(mem, slot, 0) else start)
                holder[prompt] = group[0]
        tailed = sorted(
            (p for p in by_prompt if plan[p][1] < len(toks[p]) - 1), key=lambda p: len(toks[p]) - 1 - plan[p][1]
        )
        grown = self._pad_plan([(len(toks[p]) - 1 - plan[p][1], len(toks[p]) - 1 - plan[p][2]) for p in tailed])
        for p, n in zip(tailed, grown):
            src, start, earliest = plan[p]
            self.prompt_tokens_regrown += n - (len(toks[p]) - 1 - start)
            plan[p] = (src, len(toks[p]) - 1 - n, earliest)
        ids = sorted(q.seq_id for q in batch)
        owners = [by_prompt[p][0] for p in tailed]
        rest = [q for q in batch if all(q is not o for o in owners)]
        for q, sid in zip(owners + rest, ids):
            q.seq_id = sid
        items: list[tuple[int, int, int, bool]] = []
        for prompt, group in sorted(by_prompt.items(), key=lambda kv: kv[1][0].seq_id):
            owner, t, (src, start, _) = group[0], toks[prompt], plan[prompt]
            if start:
                self._copy(mem, src, owner.seq_id, start)
            items += [(t[k], k, owner.seq_id, False) for k in range(start, len(t) - 1)]
            for q in group:
                q.prompt_tokens, q.pos, q.feed = len(t), len(t) - 1, t[-1]
                q.logits_of = owner if q is not owner else None
        self.prompt_tokens_evaluated += len(items)
        for c in range(0, len(items), self._n_batch):
            self._decode(items[c : c + self._n_batch])
        for group in by_prompt.values():
            for q in group[1:]:  # after the owner's evaluation: its cache holds all but the last token
                self._copy(mem, group[0].seq_id, q.seq_id)

    def _sample(self, s: _Seq, idx: int) -> None:
        cpp = self._cpp
        tok = cpp.llama_sampler_sample(s.sampler.sampler, self._ctx.ctx, idx)
        if cpp.llama_vocab_is_eog(self._vocab, tok):
            s.done = "stop"
            return
        s.tokens.append(tok)
        s.feed = tok
        s.raw += self._llm._model.detokenize([tok])  # what detokenize(s.tokens) returns, piece by piece
        text = s.raw.decode("utf-8", errors="ignore")
        hits = [text.index(x) for x in s.req.stop if x and x in text]
        if hits:
            s.text, s.done = text[: min(hits)], "stop"
            return
        s.text = text
        if len(s.tokens) >= s.req.max_tokens or s.pos + 1 >= self.n_ctx_per_seq:
            s.done = "length"
