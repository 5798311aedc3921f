"""Generators for real workloads, their parts without a server: routing between generators,
parsing endpoint responses, samples of one prompt sharing a request, validating imported
candidate files, rate limits, and mixture members. Against a real server:
tests/integration/test_openai_endpoint.py; chosen from the environment and in a run:
tests/dagster/test_generator_resources.py."""

import json
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import SampleRequest
from synth_assets.core.generators.import_backend import ImportedGenerator
from synth_assets.core.generators.mixture import route
from synth_assets.core.generators.openai_backend import RetryableError, group_requests, parse_response, split_tokens


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 500), shares=st.lists(st.floats(0.01, 100), min_size=1, max_size=6))
def test_routing_realises_every_share_to_within_one_sample(n, shares):
    got = Counter(route(n, shares))
    for j, s in enumerate(shares):
        assert abs(got.get(j, 0) - n * s / sum(shares)) <= 1.0 + 1e-9


def test_routing_is_deterministic_and_interleaved():
    assert route(8, [3, 1]) == route(8, [3, 1])
    assert route(4, [1, 1]) == [0, 1, 0, 1]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"choices": []}',
        b'{"choices": [{"text": 5}]}',
        b'{"choices": [{"text": "x"}], "usage": {"prompt_tokens": -1}}',
        b"<html>busy</html>",
    ],
)
def test_malformed_responses_are_retryable(body):
    with pytest.raises(RetryableError, match="malformed"):
        parse_response(body, "completions")


def test_well_formed_responses_parse_for_both_apis():
    assert parse_response(
        b'{"choices": [{"text": " 4", "finish_reason": "stop"}], "usage": '
        b'{"prompt_tokens": 3, "completion_tokens": 1}}',
        "completions",
    ) == ([(" 4", "stop")], 3, 1)
    assert parse_response(b'{"choices": [{"message": {"content": "hi"}}]}', "chat")[0] == [("hi", "stop")]


def test_choices_of_one_request_come_back_in_index_order():
    body = b'{"choices": [{"text": "b", "index": 1, "finish_reason": "length"}, {"text": "a", "index": 0}]}'
    assert parse_response(body, "completions")[0] == [("a", "stop"), ("b", "length")]


@settings(max_examples=300, deadline=None)
@given(total=st.integers(0, 10_000), texts=st.lists(st.text(max_size=40), min_size=1, max_size=16))
def test_a_requests_completion_tokens_are_shared_exactly(total, texts):
    shares = split_tokens(total, texts)
    assert len(shares) == len(texts) and sum(shares) == total and min(shares) >= 0


def test_samples_of_one_prompt_and_sampling_share_a_request():
    # six samples of one task at alternating temperatures (the default plan), then another task
    reqs = [SampleRequest("a", "p", "t", (0.7, 1.0)[i % 2], 0.95, 8, (), 100 + i, i) for i in range(6)]
    reqs.append(SampleRequest("b", "q", "t", 0.7, 0.95, 8, (), 7, 0))
    assert group_requests(reqs, 2) == [[0, 2], [1, 3], [4], [5], [6]]
    assert group_requests(reqs, 8) == [[0, 2, 4], [1, 3, 5], [6]]
    assert group_requests(reqs, 1) == [[i] for i in range(7)]


def _req(task: str, i: int) -> SampleRequest:
    return SampleRequest(task, "p", "t", 0.7, 0.95, 8, (), 1, i)


def test_import_file_is_validated_with_file_row_and_field(tmp_path):
    good = tmp_path / "batch.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"task_id": "a", "completion": "4", "model": "big-model", "completion_tokens": 1},
                {"task_id": "a", "completion": "5"},
                {"task_id": "b", "completion": ""},
            ]
        )
        + "\n"
    )
    gen = ImportedGenerator([str(good)], terms="Apache-2.0")
    out = list(gen.generate([_req("a", 0), _req("a", 1), _req("b", 0)]))
    assert [s.text for s in out] == ["4", "5", ""] and out[0].model == "big-model" and out[1].model == "batch"
    with pytest.raises(SynthConfigError, match=r"no imported candidate for 1 of 2 requests, e.g. task b sample 1"):
        list(gen.generate([_req("b", 0), _req("b", 1)]))

    once = '{"task_id": "a", "completion": "x", "sample_index": 0}'
    twice = once + "\n" + once.replace('"x"', '"y"')
    cases = {
        '{"task_id": "a"}': r"has no 'completion' column",
        '{"task_id": "a", "completion": "x", "sample_index": "two"}': (
            r"row 1 \(task a\): field 'sample_index' is 'two'"
        ),
        '{"task_id": "a", "completion": "x"}\n{"task_id": "", "completion": "y"}': (
            r"row 2 .*field 'task_id' is missing"
        ),
        twice: "sample_index 0 more than once",
        "[1, 2]": "line 1 must be a JSON object",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(SynthConfigError, match=message) as err:
            ImportedGenerator([str(bad)])
        assert str(bad) in str(err.value)


def test_rate_limits_hold_the_long_run_rate():
    import asyncio

    from synth_assets.core.generators.openai_backend import TokenBucket

    async def takes(per_minute: float, amounts: list[float], burst_s: float = 10.0) -> float:
        bucket = TokenBucket(per_minute, burst_s)
        t0 = time.monotonic()
        for a in amounts:
            await bucket.take(a)
        return time.monotonic() - t0

    # 120 requests a minute: a burst of 20, then 2 a second -> 26 requests take about 3 s
    assert 2.8 <= asyncio.run(takes(120, [1] * 26)) < 10  # the upper bound only catches a limiter that stalls
    # takes larger than the burst run into debt: 100 tokens/s with a burst of 100, three takes of
    # 150 -> the second and third each wait 1.5 s, so the long-run rate holds
    assert 2.8 <= asyncio.run(takes(6000, [150] * 3, burst_s=1.0)) < 10


class EchoGeneratorDouble:
    """Test double: answers with the prompt it was sent (no model), to see what a member received."""

    name = "echo_double"

    def __init__(self, model: str) -> None:
        self.model = model

    def generate(self, requests):
        from synth_assets.core.generators.generation import Sample

        for r in requests:
            yield Sample(r.prompt, "stop", 1, 1, 0.0)


def test_mixture_members_wrap_prompts_and_override_temperature():
    from synth_assets.core.generators.mixture import Member, MixtureGenerator

    mix = MixtureGenerator(
        [
            Member(
                "socratic",
                EchoGeneratorDouble("a"),
                1,
                temperature=0.2,
                template_suffix="socratic",
                prompt_template="Think step by step.\n{prompt}",
            ),
            Member("plain", EchoGeneratorDouble("b"), 1),
        ]
    )
    reqs = [_req("t", i) for i in range(4)]
    out = list(mix.generate(reqs))
    assert [s.generator for s in out] == ["echo_double:socratic", "echo_double:plain"] * 2
    assert out[0].text == "Think step by step.\np" and out[1].text == "p"
    assert out[0].request.temperature == 0.2 and out[0].request.prompt_template == "t+socratic"
    assert out[1].request == reqs[1]
    with pytest.raises(SynthConfigError, match="must contain {prompt}"):
        MixtureGenerator([Member("x", EchoGeneratorDouble("a"), 1, prompt_template="no placeholder")])
