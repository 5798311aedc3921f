"""Batched decoding on the embedded model (issue 16): prompts evaluated once, a shared few-shot
prefix cached across tasks, samples in request order, and a group that does not fit retried in
halves rather than crashing."""

import pytest

from synth_assets.core.generation import SampleRequest, answer_prompt
from synth_assets.core.llama_backend import LlamaCppGenerator
from synth_assets.core.llama_batched import BatchedDecoder

SHOTS = [(f"What is {a} + {a + 1}?", str(2 * a + 1)) for a in range(3, 6)]


def req(prompt: str, i: int = 0, temperature: float = 0.0, seed: int = 0, max_tokens: int = 8) -> SampleRequest:
    return SampleRequest(task_id=f"t{i}", prompt=prompt, prompt_template="p", temperature=temperature, top_p=0.95,
                         max_tokens=max_tokens, stop=("\n",), seed=seed, sample_index=i)


@pytest.fixture(scope="module")
def gen():
    g = LlamaCppGenerator(n_ctx=512, parallel=8)
    yield g
    g.close()


def test_samples_of_one_prompt_share_one_evaluation(gen):
    dec: BatchedDecoder = gen._batched
    prompt = answer_prompt("What is 12 + 30?", SHOTS)
    before = dec.prompt_tokens_evaluated
    out = list(gen.generate([req(prompt, i) for i in range(6)]))
    n_prompt = out[0].prompt_tokens
    assert dec.prompt_tokens_evaluated - before <= n_prompt  # once, not six times
    assert len({s.text for s in out}) == 1  # greedy copies of one cache say the same thing


def test_a_family_prefix_is_evaluated_once_across_tasks(gen):
    dec: BatchedDecoder = gen._batched
    words = "apple banana cherry dog elephant fish garden house island jungle kite lemon mountain night ocean piano"
    prompts = [answer_prompt(f"Spell the word {w} backwards.", SHOTS) for w in words.split()]  # two groups of 8
    list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    before = dec.prompt_tokens_evaluated
    out = list(gen.generate([req(p, i) for i, p in enumerate(prompts)]))
    shared = dec.shared_prefix_tokens
    assert shared > 50  # the three examples and the question up to the word
    # the second pass finds the prefix cached: only each prompt's own tail is evaluated
    assert dec.prompt_tokens_evaluated - before == sum(s.prompt_tokens - shared for s in out)


def test_sampled_outputs_come_back_in_request_order_and_are_reproducible(gen):
    prompts = [answer_prompt(q, SHOTS) for q, _ in [("What is 9 + 9?", 0), ("What is 2 + 40?", 0)]]
    reqs = [req(p, i, temperature=1.0, seed=100 + i) for i in range(5) for p in prompts]
    first = [(s.text, s.finish_reason) for s in gen.generate(reqs)]
    again = [(s.text, s.finish_reason) for s in gen.generate(reqs)]
    assert first == again
    assert len(first) == len(reqs)


class TightDecoderDouble(BatchedDecoder):
    """Test double: a decoder whose context 'cannot hold' more than two sequences at once."""

    def _group(self, reqs):
        if len(reqs) > 2:
            raise MemoryError(f"no KV slot for {len(reqs)} sequences")
        return super()._group(reqs)


def test_a_group_that_does_not_fit_is_retried_in_halves(gen):
    lines = []
    dec = TightDecoderDouble(gen._llm, parallel=8, n_ctx_per_seq=512, log=lines.append)
    # prompts of five different lengths: the order of the samples shows in their prompt sizes
    prompts = [answer_prompt(f"What is {'7' * (1 + 3 * k)} + 1?", SHOTS) for k in range(5)]
    out = list(dec.generate([req(p, i) for i, p in enumerate(prompts)]))
    dec.close()
    sizes = [s.prompt_tokens for s in out]
    assert len(out) == 5 and sizes == sorted(set(sizes))
    assert lines == ["batched decoding: no KV slot for 5 sequences; retrying 5 requests 4 at a time",
                     "batched decoding: no KV slot for 4 sequences; retrying 4 requests 2 at a time"]
