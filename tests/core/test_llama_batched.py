"""Batched decoding on the embedded model (issue 16): prompts evaluated once, a shared few-shot
prefix cached across tasks, samples in request order, and a group that does not fit retried in
halves rather than crashing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.generators.generation import SampleRequest, answer_prompt
from synth_assets.core.generators.llama_backend import LlamaCppGenerator
from synth_assets.core.generators.llama_batched import BatchedDecoder

SHOTS = [(f"What is {a} + {a + 1}?", str(2 * a + 1)) for a in range(3, 6)]


def req(prompt: str, i: int = 0, temperature: float = 0.0, seed: int = 0, max_tokens: int = 8) -> SampleRequest:
    return SampleRequest(
        task_id=f"t{i}",
        prompt=prompt,
        prompt_template="p",
        temperature=temperature,
        top_p=0.95,
        max_tokens=max_tokens,
        stop=("\n",),
        seed=seed,
        sample_index=i,
    )


@pytest.fixture(scope="module")
def gen():
    g = LlamaCppGenerator(n_ctx=512, parallel=8)
    yield g
    g.close()


@pytest.mark.model
def test_samples_of_one_prompt_share_one_evaluation(gen):
    dec: BatchedDecoder = gen._batched
    prompt = answer_prompt("What is 12 + 30?", SHOTS)
    before = dec.prompt_tokens_evaluated
    out = list(gen.generate([req(prompt, i) for i in range(6)]))
    n_prompt = out[0].prompt_tokens
    # once, not six times: the other five decode only the prompt's last token into their caches
    assert dec.prompt_tokens_evaluated - before <= n_prompt + 5
    assert len({s.text for s in out}) == 1  # greedy copies of one cache say the same thing


@pytest.mark.slow
@pytest.mark.model
def test_a_family_prefix_is_evaluated_once_across_tasks(gen):
    dec: BatchedDecoder = gen._batched
    words = "apple banana cherry dog elephant fish garden house island jungle kite lemon mountain night ocean piano"
    prompts = [answer_prompt(f"Spell the word {w} backwards.", SHOTS) for w in words.split()]  # two groups of 8
    list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    before = dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown
    out = list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    shared = dec.shared_prefix_tokens
    assert shared > 50  # the three examples and the question up to the word
    # the second pass finds the prefix cached: only each prompt's own tail is evaluated (and what
    # was evaluated again to even out the tails' lengths, counted apart)
    assert dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown - before == sum(
        s.prompt_tokens - shared for s in out
    )


@pytest.mark.model
def test_forgotten_prefixes_are_evaluated_again(gen):
    """Benches compare runs from one cold state: after forget_prefixes nothing is served cached."""
    dec: BatchedDecoder = gen._batched
    prompts = [answer_prompt(f"Spell the word {w} backwards.", SHOTS) for w in ("apple", "banana", "cherry")]
    list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    assert dec.shared_prefix_tokens > 50  # something was cached to forget
    dec.forget_prefixes()
    assert dec.shared_prefix_tokens == 0
    before = dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown
    out = list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    # the shared prefix is evaluated again (once), then each prompt's own tail
    assert dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown - before == dec.shared_prefix_tokens + sum(
        s.prompt_tokens - dec.shared_prefix_tokens for s in out
    )


@pytest.mark.slow
@pytest.mark.model
def test_two_families_in_one_batch_each_find_their_own_prefix_cached(gen):
    """A batch that spans two families (or a family's two prompt templates, as the held-out
    evaluation's rephrased variant) caches each family's prefix in a slot of its own; with one
    cached prefix the two shared only the instruction line and were evaluated whole."""
    dec = BatchedDecoder(gen._llm, parallel=8, n_ctx_per_seq=512)  # no prefix cached by other tests
    spell = [(f"Spell {w} backwards.", w[::-1]) for w in ("cat", "door", "window")]
    words = ["apple", "banana", "cherry", "lemon"]
    reqs = [
        req(answer_prompt(f"How many letters are in the word {w}?", shots), i)
        for i, (w, shots) in enumerate((w, s) for w in words for s in (SHOTS, spell))
    ]  # alternating
    list(dec.generate(reqs))
    before = dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown
    out = list(dec.generate(reqs))
    dec.close()
    tokens = [dec._prompt_tokens(r) for r in reqs]
    shared = {}
    for fam in (0, 1):
        mine = tokens[fam::2]
        shared[fam] = min(BatchedDecoder._common(mine[0], t) for t in mine[1:])
    assert min(shared.values()) > 50  # the three examples and the question up to the word
    assert dec.prompt_tokens_evaluated - dec.prompt_tokens_regrown - before == sum(
        s.prompt_tokens - shared[i % 2] for i, s in enumerate(out)
    )


@pytest.mark.slow
@pytest.mark.model
def test_a_long_answer_does_not_hold_back_short_ones(gen):
    """Continuous batching: 1 request of 40 tokens beside 12 of 1 token; the short ones take the
    freed slots while the long one runs, so the whole takes about as many decode steps as the
    long one alone, not one batch after another."""
    dec: BatchedDecoder = gen._batched
    long_req = SampleRequest("long", "Write a story about a dragon.\n", "p", 1.0, 0.95, 40, (), 7, 0)
    short = [req(answer_prompt(f"What is {a} + 1?", SHOTS), i, max_tokens=1) for i, a in enumerate(range(12))]
    before = dec.decode_steps
    out = list(gen.generate([long_req] + short))
    assert out[0].completion_tokens == 40 and all(s.completion_tokens == 1 for s in out[1:])
    # the long one's 40 steps (its first token comes from the step that decodes the prompt's last
    # token); each short one finishes inside them
    assert dec.decode_steps - before == 40


@pytest.mark.model
def test_sampled_outputs_come_back_in_request_order_and_are_reproducible(gen):
    prompts = [answer_prompt(q, SHOTS) for q, _ in [("What is 9 + 9?", 0), ("What is 2 + 40?", 0)]]
    reqs = [req(p, i, temperature=1.0, seed=100 + i) for i in range(5) for p in prompts]
    first = [(s.text, s.finish_reason) for s in gen.generate(reqs)]
    again = [(s.text, s.finish_reason) for s in gen.generate(reqs)]
    assert first == again
    assert len(first) == len(reqs)


class TightDecoderDouble(BatchedDecoder):
    """Test double: a decoder whose context 'cannot hold' more than two new sequences at once."""

    def _admit(self, batch, *rest):
        if len(batch) > 2:
            raise MemoryError(f"no KV slot for {len(batch)} sequences")
        return super()._admit(batch, *rest)


@pytest.mark.model
def test_a_group_that_does_not_fit_is_retried_in_halves(gen):
    lines = []
    dec = TightDecoderDouble(gen._llm, parallel=8, n_ctx_per_seq=512, log=lines.append)
    # prompts of five different lengths: the order of the samples shows in their prompt sizes
    prompts = [answer_prompt(f"What is {'7' * (1 + 3 * k)} + 1?", SHOTS) for k in range(5)]
    out = list(dec.generate([req(p, i) for i, p in enumerate(prompts)]))
    dec.close()
    sizes = [s.prompt_tokens for s in out]
    assert len(out) == 5 and sizes == sorted(set(sizes))
    assert lines == [
        "batched decoding: no KV slot for 5 sequences; retrying 5 requests 4 at a time",
        "batched decoding: no KV slot for 4 sequences; retrying 5 requests 2 at a time",
    ]


class DecodeRecordingDecoderDouble(BatchedDecoder):
    """Test double: the real decoder, keeping each batch it hands to ``llama_decode`` and who
    made the call (an admission or a step)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.batches: list[tuple[str, list[tuple[int, int, int, bool]]]] = []
        self._admitting = False

    def _admit(self, *a):
        self._admitting = True
        try:
            return super()._admit(*a)
        finally:
            self._admitting = False

    def _decode(self, items):
        self.batches.append(("admit" if self._admitting else "step", list(items)))
        return super()._decode(items)

    @property
    def calls(self) -> list[str]:
        return [who for who, _ in self.batches]

    @property
    def admitted(self) -> list[list[tuple[int, int, int, bool]]]:
        """The admissions' prompt tails (not a cached prefix's evaluation, whose ids are the slots')."""
        return [
            items
            for who, items in self.batches
            if who == "admit" and all(sid < self.parallel for _, _, sid, _ in items)
        ]


@pytest.mark.model
def test_a_late_sample_copies_the_running_one_cut_to_the_prompt_and_needs_no_call_of_its_own(gen):
    """A sample admitted while another sample of its prompt is running copies that sequence's
    cache cut back to the prompt (a KV stream is copied whole, so the cut is what keeps the
    running one's answer out), and its last prompt token is decoded in the next step beside the
    others rather than in a llama_decode of its own."""
    dec = DecodeRecordingDecoderDouble(gen._llm, parallel=2, n_ctx_per_seq=512)
    story = SampleRequest("s", "Write a story about a dragon.\n", "p", 0.0, 1.0, 20, (), 0, 0)
    short = req(answer_prompt("What is 2 + 2?", SHOTS), 1, max_tokens=1)
    out = list(dec.generate([story, short, story]))  # the second story takes the short one's slot
    first_admissions = dec.calls.index("step")
    late = dec.calls[first_admissions:]
    dec.close()
    assert out[2].text == out[0].text and out[0].completion_tokens == 20  # greedy, from the prompt alone
    assert late.count("admit") == 0


def _plan_cost(tails: list[tuple[int, int]], grown: list[int], pass_cost: int) -> int:
    """What llama.cpp's equal-split micro-batches cost: a pass per distinct length, plus tokens."""
    return pass_cost * len(set(grown)) + sum(grown)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 80)), min_size=1, max_size=7), st.integers(0, 40))
def test_the_padding_plan_is_the_cheapest_feasible_grouping(raw, pass_cost):
    """Each tail grows only up to what it can (its cached prefix re-evaluated), never shrinks, and
    the plan costs no more than any grouping of the sorted tails tried by brute force."""
    import itertools
    from types import SimpleNamespace

    tails = sorted((n, n + extra) for n, extra in raw)
    grown = BatchedDecoder._pad_plan(SimpleNamespace(pass_cost_tokens=pass_cost), tails)
    assert all(n <= g <= cap for (n, cap), g in zip(tails, grown))
    best = None
    for cuts in itertools.product((False, True), repeat=len(tails) - 1):  # a cut after tail k or not
        groups, start = [], 0
        for k, c in enumerate(cuts):
            if c:
                groups.append((start, k + 1))
                start = k + 1
        groups.append((start, len(tails)))
        option = [tails[b - 1][0] for a, b in groups for _ in range(a, b)]
        if all(g <= cap for (_, cap), g in zip(tails, option)):
            cost = _plan_cost(tails, option, pass_cost)
            best = cost if best is None else min(best, cost)
    assert _plan_cost(tails, grown, pass_cost) == best


def _tail_lengths(items):
    per: dict[int, int] = {}
    for _, _, sid, _ in items:
        per[sid] = per.get(sid, 0) + 1
    return per


@pytest.mark.model
def test_tails_of_nearby_lengths_are_grown_to_one_length_on_consecutive_ids(gen):
    """Four prompts of one family whose own tails differ by a few tokens: with a KV stream per
    sequence llama.cpp would run them as one micro-batch per distinct length, so each is grown to
    the longest (its copy of the cached prefix starts earlier) and they go in one pass."""
    dec = DecodeRecordingDecoderDouble(gen._llm, parallel=8, n_ctx_per_seq=512)
    # digits are a token each: tails of 1 to 4 digits after the shared question start
    reqs = [req(answer_prompt(f"What is {'7' * (1 + k)} + 1?", SHOTS), k) for k in range(4)]
    list(dec.generate(reqs))  # caches the family's prefix
    dec.batches.clear()
    before = dec.prompt_tokens_regrown
    list(dec.generate(reqs))
    dec.close()
    [items] = dec.admitted
    lengths = _tail_lengths(items)
    own = sorted(len(dec._prompt_tokens(r)) for r in reqs)
    assert len(set(own)) > 1  # the prompts' own tails do differ
    assert sorted(lengths) == list(range(min(lengths), min(lengths) + 4)) and len(set(lengths.values())) == 1
    assert dec.prompt_tokens_regrown - before == sum(max(own) - n for n in own)


@pytest.mark.model
def test_new_sequences_take_consecutive_ids_when_running_ones_sit_between_the_free_ones(gen):
    """Sequences 0 and 2 finish while 1 and 3 still run: before two new prompts are admitted the
    running one at the top moves into the lowest hole, so the new ones get ids 2 and 3 and their
    prompts go to llama.cpp as one run of ids (a gap would split the batch into two passes)."""
    dec = DecodeRecordingDecoderDouble(gen._llm, parallel=4, n_ctx_per_seq=512)
    dec.pass_cost_tokens = 0  # no growing: only the ids are under test
    story = SampleRequest("s", "Write a story about a dragon.\n", "p", 0.0, 1.0, 12, (), 0, 0)
    story2 = SampleRequest("s2", "Write a story about a castle.\n", "p", 0.0, 1.0, 12, (), 0, 0)
    short = [
        req(answer_prompt(f"Spell the word {w} backwards.", SHOTS), i, max_tokens=1)
        for i, w in enumerate(["cat", "dog", "lemon", "piano"])
    ]
    out = list(dec.generate([short[0], story, short[1], story2, short[2], short[3]]))
    dec.close()
    assert [s.completion_tokens for s in out] == [1, 12, 1, 12, 1, 1]
    second = dec.admitted[1]
    assert sorted(_tail_lengths(second)) == [2, 3]
