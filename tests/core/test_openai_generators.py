"""Generators for real workloads: an OpenAI-compatible endpoint (llama-cpp-python's own server on
the packaged Gemma model) behind a fault-injecting proxy, the response cache across a SIGKILL,
several generators in one run, and imported candidates."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.assets.pipeline import RawCandidatesConfig, raw_candidates
from synth_assets.assets.sources import TaskPoolConfig, task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import SampleRequest
from synth_assets.core.generators.import_backend import ImportedGenerator
from synth_assets.core.generators.mixture import route
from synth_assets.core.generators.openai_backend import (
    EndpointSettings,
    OpenAICompatibleGenerator,
    RetryableError,
    group_requests,
    parse_response,
    split_tokens,
)
from synth_assets.core.generators.response_cache import _TABLE
from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import (
    GenerationalIOManager,
    GeneratorMember,
    HumanEvalSplitResource,
    ImportGeneratorResource,
    MixtureGeneratorResource,
    OpenAIGeneratorResource,
    WarehouseResource,
)
from tests.conftest import SERVED_MODEL, materialize_generation
from tests.fault_proxy import FAULTS, FaultProxy

ROOT = Path(__file__).resolve().parent.parent
POOL = TaskPoolConfig(
    reasoning_gym_families=["gcd", "letter_counting"], tasks_per_family=3, humaneval_tasks=0, include_synthesized=False
)


def cached_keys(path: str) -> set[str]:
    """Every key in a response cache file; empty when the file does not exist."""
    import duckdb

    if not Path(path).exists():
        return set()
    con = duckdb.connect(path, read_only=True)
    try:
        if not con.execute("select count(*) from information_schema.tables where table_name = ?", [_TABLE]).fetchone()[
            0
        ]:
            return set()
        return {r[0] for r in con.execute(f"select key from {_TABLE}").fetchall()}
    finally:
        con.close()


def materialize_raw(db_path: str, generator, instance, samples: int = 2, pool: TaskPoolConfig = POOL):
    wh = WarehouseResource(path=db_path)
    return materialize_generation(
        [task_pool, raw_candidates, *synthesized_tasks.to_source_assets()],
        instance,
        raise_on_error=False,
        resources={
            "warehouse": wh,
            "io_manager": GenerationalIOManager(warehouse=wh),
            "generator": generator,
            "humaneval_split": HumanEvalSplitResource(),
        },
        run_config=dg.RunConfig({"task_pool": pool, "raw_candidates": RawCandidatesConfig(samples_per_task=samples)}),
    )


def failure_text(result) -> str:
    out = []
    for ev in result.all_events:
        if ev.event_type == dg.DagsterEventType.STEP_FAILURE:
            d = ev.step_failure_data
            out.append((d.user_failure_data.description if d.user_failure_data else "") or d.error.message)
    return "\n".join(out)


# ------------------------------------------------------------------ units
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

    cases = {
        '{"task_id": "a"}': r"has no 'completion' column",
        '{"task_id": "a", "completion": "x", "sample_index": "two"}': r"row 1 \(task a\): field 'sample_index' is 'two'",
        '{"task_id": "a", "completion": "x"}\n{"task_id": "", "completion": "y"}': r"row 2 .*field 'task_id' is missing",
        '{"task_id": "a", "completion": "x", "sample_index": 0}\n{"task_id": "a", "completion": "y", "sample_index": 0}': "sample_index 0 more than once",
        "[1, 2]": "line 1 must be a JSON object",
    }
    for i, (text, message) in enumerate(cases.items()):
        bad = tmp_path / f"bad{i}.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(SynthConfigError, match=message) as err:
            ImportedGenerator([str(bad)])
        assert str(bad) in str(err.value)


def test_imported_candidates_flow_through_raw_candidates(db_path, instance, tmp_path):
    pool = TaskPoolConfig(
        reasoning_gym_families=["gcd"], tasks_per_family=3, humaneval_tasks=0, include_synthesized=False
    )
    from synth_assets.core.tasks.sources import reasoning_gym_tasks

    ids = reasoning_gym_tasks(["gcd"], 3, pool.seed)["task_id"].to_list()
    path = tmp_path / "elsewhere.parquet"
    pl.DataFrame(
        {
            "task_id": [t for t in ids for _ in range(2)],
            "completion": ["6", "7"] * 3,
            "model": ["batch-llm"] * 6,
            "prompt_tokens": [10] * 6,
            "completion_tokens": [1] * 6,
        }
    ).write_parquet(path)
    res = materialize_raw(
        db_path, ImportGeneratorResource(import_files=[str(path)], model_terms="CC-BY-4.0"), instance, pool=pool
    )
    assert res.success, failure_text(res)
    raw = Warehouse(db_path).read("raw_candidates")
    assert raw.height == 6 and set(raw["generator"]) == {"import"} and set(raw["model"]) == {"batch-llm"}
    assert set(raw["model_terms"]) == {"CC-BY-4.0"} and raw["candidate_id"].n_unique() == 6

    # more samples than the file holds: a clear error, and nothing written
    res = materialize_raw(db_path, ImportGeneratorResource(import_files=[str(path)]), instance, samples=3, pool=pool)
    assert not res.success and "set raw_candidates.samples_per_task" in failure_text(res)
    assert Warehouse(db_path).read("raw_candidates")["generation"].unique().to_list() == [1]


# ------------------------------------------------------------------ against the real local server
@pytest.mark.slow
def test_faults_lose_nothing_duplicate_nothing_and_keep_the_key_secret(llama_server, db_path, instance, monkeypatch):
    """Every kind of fault, once per request, in front of the real server: every sample arrives
    once, nothing is asked for again after delivery, Retry-After is honoured, and the API key
    never reaches the warehouse, the cache or the run's events."""
    secret = "sk-test-7f3a9c-never-log-me"
    monkeypatch.setenv("SYNTH_TEST_API_KEY", secret)
    kinds = [*FAULTS, None]
    proxy = FaultProxy(
        llama_server,
        plan=lambda n, attempt: (
            kinds[n % len(kinds)] if attempt == 1 else ("500" if attempt == 2 and n % 5 == 0 else None)
        ),
        timeout_s=6.0,
        require_key=secret,
    )
    cache = str(Path(db_path).parent / "cache.duckdb")
    try:
        gen = OpenAIGeneratorResource(
            base_url=proxy.url,
            model=SERVED_MODEL,
            api_key_env="SYNTH_TEST_API_KEY",
            concurrency=3,
            timeout_s=5.0,
            backoff_s=0.2,
            max_retries=6,
            price_per_million=[0.5, 2.0],
            cache_path=cache,
        )
        res = materialize_raw(db_path, gen, instance)
        assert res.success, failure_text(res)
    finally:
        proxy.close()
    raw = Warehouse(db_path).read("raw_candidates")
    assert raw.height == 6 * 2 and raw["candidate_id"].n_unique() == 12
    assert raw.select(pl.struct("task_id", "sample_index").n_unique()).item() == 12
    assert set(raw["generator"]) == {"openai_compatible"} and set(raw["model"]) == {SERVED_MODEL}

    delivered = Counter(a.rid for a in proxy.delivered())
    assert len(delivered) == 12 and set(delivered.values()) == {1}, "a sample was lost or requested again"
    assert set(proxy.faults()) == set(FAULTS)
    for a in proxy.attempts:  # the retry after a 429 waited for Retry-After: 1
        if a.fault == "429":
            nxt = min(b.at for b in proxy.attempts if b.rid == a.rid and b.attempt == a.attempt + 1)
            assert nxt - a.at >= 0.95
    assert all(a.authorization == f"Bearer {secret}" for a in proxy.attempts)

    meta = res.asset_materializations_for_node("raw_candidates")[0].metadata
    stats = meta["endpoint_stats"].value[SERVED_MODEL]
    assert stats["retries"] >= 12 and stats["completed"] == 12 and stats["cache_hits"] == 0
    expected = (raw["prompt_tokens"].sum() * 0.5 + raw["completion_tokens"].sum() * 2.0) / 1e6
    assert meta["cost_usd"].value == pytest.approx(expected, rel=1e-6) and expected > 0
    assert len(cached_keys(cache)) == 12

    for f in Path(db_path).parent.glob("*.duckdb*"):
        assert secret.encode() not in f.read_bytes(), f
    logs = " ".join(str(ev.message) + str(getattr(ev, "dagster_event", "")) for ev in instance.all_logs(res.run_id))
    assert secret not in logs


def _two_tasks_six_samples() -> list[SampleRequest]:
    return [
        SampleRequest(t, f"Q: What is {t}?\nA:", "t", (0.7, 1.0)[i % 2], 0.95, 6, ("\n",), 1000 * k + i, i)
        for k, t in enumerate(["2+2", "3+5"])
        for i in range(6)
    ]


@pytest.mark.slow
def test_samples_of_one_prompt_arrive_in_one_request_with_n(llama_server, tmp_path):
    """Against a server that honours n (the proxy's vLLM double over the real model): 12 samples
    in 4 requests of n=3; each sample is its choice of its group's request, cached under its own
    key; the prompt's tokens are counted once per request."""
    proxy = FaultProxy(llama_server, serve_n=True)
    cache = str(tmp_path / "cache.duckdb")
    reqs = _two_tasks_six_samples()
    try:
        gen = OpenAICompatibleGenerator(
            EndpointSettings(base_url=proxy.url, model=SERVED_MODEL, samples_per_request=4), cache_path=cache
        )
        out = list(gen.generate(reqs))
    finally:
        proxy.close()
    assert [a.n for a in proxy.attempts] == [3, 3, 3, 3]
    for g in group_requests(reqs, 4):
        served = proxy.served[f"{reqs[g[0]].seed}|{reqs[g[0]].prompt}"]
        assert [out[i].text for i in g] == [t.split("\n")[0] for t in served]
        assert out[g[0]].prompt_tokens > 0 and all(out[i].prompt_tokens == 0 for i in g[1:])
    assert gen.stats.completed == 12 and gen.stats.requests == 4 and gen.n_supported
    assert len(cached_keys(cache)) == 12


@pytest.mark.slow
@pytest.mark.parametrize("server", ["ignores", "rejects"])
def test_a_server_without_n_gets_one_sample_per_request(llama_server, server):
    """llama-cpp-python's server answers n=3 with one choice (kept); others answer 400: either way
    the client says so once and asks for every other sample alone, with its own seed; nothing
    is lost or asked for twice."""
    proxy = FaultProxy(llama_server, reject_n=server == "rejects")
    logs: list[str] = []
    reqs = _two_tasks_six_samples()
    try:
        gen = OpenAICompatibleGenerator(
            EndpointSettings(base_url=proxy.url, model=SERVED_MODEL, samples_per_request=4, concurrency=1),
            log=logs.append,
        )
        out = list(gen.generate(reqs))
    finally:
        proxy.close()
    assert len(out) == 12 and not gen.n_supported
    assert [a.n for a in proxy.attempts] == [3] + [1] * (11 if server == "ignores" else 12)
    assert sorted(a.seed for a in proxy.delivered()) == sorted(r.seed for r in reqs)
    why = "answered n=3 with 1 choice(s)" if server == "ignores" else "rejected n=3 (HTTP 400"
    assert sum(why in m and "asking one sample per request" in m for m in logs) == 1


@pytest.mark.slow
def test_a_key_that_is_not_set_fails_naming_the_variable(llama_server, db_path, instance, monkeypatch):
    monkeypatch.delenv("SYNTH_NO_SUCH_KEY", raising=False)
    gen = OpenAIGeneratorResource(base_url=llama_server + "/v1", model=SERVED_MODEL, api_key_env="SYNTH_NO_SUCH_KEY")
    res = materialize_raw(db_path, gen, instance)
    assert not res.success and "export SYNTH_NO_SUCH_KEY=<key>" in failure_text(res)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_without_requesting_a_completed_sample(llama_server, tmp_path):
    """A real `synth run` against the server, killed with SIGKILL mid-generation, then the same
    generation run again: no sample that was in the response cache is requested twice."""
    proxy = FaultProxy(llama_server)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    db, cache = tmp_path / "warehouse.duckdb", tmp_path / "response_cache.duckdb"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNTH_DUCKDB_PATH": str(db),
        "SYNTH_GENERATOR": "openai",
        "SYNTH_OPENAI_BASE_URL": proxy.url,
        "SYNTH_OPENAI_MODEL": SERVED_MODEL,
        "SYNTH_OPENAI_CONCURRENCY": "2",
    }
    config = json.dumps(
        {
            "ops": {
                "task_pool": {
                    "config": {
                        "reasoning_gym_families": ["gcd", "chain_sum"],
                        "tasks_per_family": 8,
                        "humaneval_tasks": 0,
                        "include_synthesized": False,
                    }
                },
                "raw_candidates": {"config": {"samples_per_task": 2}},
            }
        }
    )
    (tmp_path / "run.yaml").write_text(config)
    cmd = [
        str(Path(sys.executable).parent / "synth"),
        "run",
        "--generation",
        "1",
        "--select",
        "task_pool,raw_candidates",
        "-c",
        str(tmp_path / "run.yaml"),
    ]
    try:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 300
        while len(proxy.delivered()) < 8 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.2)  # the cache commits within milliseconds of a delivery
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        before = len(proxy.attempts)
        done = cached_keys(str(cache))
        assert 8 <= len(done) < 32, len(done)
        assert not Path(db).exists() or not Warehouse(str(db)).table_exists("raw_candidates")

        again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        proxy.close()
    raw = Warehouse(str(db)).read("raw_candidates")
    assert raw.height == 32 and raw["candidate_id"].n_unique() == 32 and raw["generation"].unique().to_list() == [1]
    assert int(raw["cached"].sum()) == len(done)
    cached_seeds = set(raw.filter(pl.col("cached"))["seed"])
    asked_again = {a.seed for a in proxy.attempts[before:]}
    assert not cached_seeds & asked_again, "a cached sample was requested again after the restart"
    assert asked_again == set(raw.filter(~pl.col("cached"))["seed"])
    assert float(raw.filter(pl.col("cached"))["cost_usd"].sum()) == 0.0


@pytest.mark.slow
def test_several_generators_in_one_run_with_shares_and_provenance(llama_server, db_path, instance, tmp_path):
    members = [
        GeneratorMember(
            name="tutor",
            share=3,
            base_url=llama_server + "/v1",
            model=SERVED_MODEL,
            concurrency=2,
            system_prompt="You are a careful maths tutor.",
            temperature=0.3,
            price_per_million=[1.0, 1.0],
        ),
        GeneratorMember(name="plain", share=1, base_url=llama_server + "/v1", model=SERVED_MODEL, concurrency=2),
    ]
    res = materialize_raw(
        db_path, MixtureGeneratorResource(members=members, cache_path=str(tmp_path / "c.duckdb")), instance
    )
    assert res.success, failure_text(res)
    raw = Warehouse(db_path).read("raw_candidates")
    by = Counter(raw["generator"])
    assert by == {"openai_compatible:tutor": 9, "openai_compatible:plain": 3}
    tutor = raw.filter(pl.col("generator") == "openai_compatible:tutor")
    assert set(tutor["temperature"]) == {0.3} and tutor["prompt_template"].str.ends_with("+tutor").all()
    assert (
        tutor["cost_usd"].null_count() == 0
        and raw.filter(pl.col("generator") == "openai_compatible:plain")["cost_usd"].null_count() == 3
    )
    assert raw.group_by("task_id").agg(pl.col("generator").n_unique())["generator"].max() == 2  # sources interleave
    meta = res.asset_materializations_for_node("raw_candidates")[0].metadata
    acc = meta["by_generator"].value
    assert acc[f"openai_compatible:tutor / {SERVED_MODEL}"]["samples"] == 9
    assert meta["cost_usd"].value is None or meta["cost_usd"].value > 0


def test_generator_from_the_environment_names_what_is_missing(monkeypatch, tmp_path):
    from synth_assets.resources import generator_from_env

    monkeypatch.setenv("SYNTH_GENERATOR", "openai")
    monkeypatch.delenv("SYNTH_OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("SYNTH_OPENAI_MODEL", "m")
    with pytest.raises(SynthConfigError, match="needs SYNTH_OPENAI_BASE_URL"):
        generator_from_env()
    monkeypatch.setenv("SYNTH_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert isinstance(generator_from_env(), OpenAIGeneratorResource)

    monkeypatch.setenv("SYNTH_GENERATOR", "mixture")
    gens = tmp_path / "generators.yaml"
    gens.write_text("members:\n  - {name: a, share: -1, base_url: 'http://x/v1', model: m}\n")
    monkeypatch.setenv("SYNTH_GENERATORS_FILE", str(gens))
    with pytest.raises(SynthConfigError, match=r"generators.yaml.*share"):
        generator_from_env()
    gens.write_text(
        "members:\n  - {name: a, share: 2, base_url: 'http://x/v1', model: m}\n"
        "  - {name: b, share: 1, backend: import, import_files: []}\n"
    )
    res = generator_from_env()
    with pytest.raises(SynthConfigError, match="import_files: list at least one"):
        res.build()
    monkeypatch.setenv("SYNTH_GENERATOR", "gpt")
    with pytest.raises(SynthConfigError, match="use llama_cpp, openai, import or mixture"):
        generator_from_env()


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


def test_endpoint_numbers_from_the_environment_reach_the_generator(monkeypatch):
    import dagster as dg

    from synth_assets.resources import generator_from_env

    monkeypatch.setenv("SYNTH_GENERATOR", "openai")
    monkeypatch.setenv("SYNTH_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNTH_OPENAI_MODEL", "m")
    monkeypatch.setenv("SYNTH_OPENAI_CONCURRENCY", "3")
    monkeypatch.setenv("SYNTH_OPENAI_SAMPLES_PER_REQUEST", "4")
    with dg.build_resources({"generator": generator_from_env()}) as res:
        s = res.generator.settings()
    assert (s.concurrency, s.samples_per_request) == (3, 4)
    monkeypatch.setenv("SYNTH_OPENAI_SAMPLES_PER_REQUEST", "0")
    with pytest.raises(SynthConfigError, match="SYNTH_OPENAI_SAMPLES_PER_REQUEST='0': a whole number from 1 to 128"):
        generator_from_env()


def test_a_ray_address_in_the_environment_sends_endpoint_requests_to_the_cluster(monkeypatch):
    """SYNTH_RAY_ADDRESS reaches the endpoint generator; an address nobody listens on fails
    before any request, naming the cluster (the fan-out itself: tests/test_ray_fanout.py)."""
    import dagster as dg

    from synth_assets.resources import generator_from_env

    monkeypatch.setenv("SYNTH_GENERATOR", "openai")
    monkeypatch.setenv("SYNTH_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNTH_OPENAI_MODEL", "m")
    monkeypatch.setenv("SYNTH_RAY_ADDRESS", "127.0.0.1:9")
    with dg.build_resources({"generator": generator_from_env()}) as res:
        with pytest.raises(SynthConfigError, match=r"Ray cluster at 127.0.0.1:9 is unreachable .*nothing was run"):
            res.generator.build()
