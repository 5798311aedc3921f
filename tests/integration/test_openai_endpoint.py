"""Generators against a real OpenAI-compatible endpoint (llama-cpp-python's own server on the
packaged Gemma model), behind a fault-injecting proxy: faults lose and repeat nothing, samples
of one prompt share a request with ``n`` (or not, on servers without it), the response cache
across a SIGKILL of ``synth run``, and several generators in one run."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from synth_assets.core.generators.generation import SampleRequest
from synth_assets.core.generators.openai_backend import EndpointSettings, OpenAICompatibleGenerator, group_requests
from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import GeneratorMember, MixtureGeneratorResource, OpenAIGeneratorResource
from tests.conftest import SERVED_MODEL
from tests.fault_proxy import FAULTS, FaultProxy, cached_keys
from tests.runs import failure_messages, materialize_raw

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.model
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
        assert res.success, failure_messages(res)
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


@pytest.mark.model
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


@pytest.mark.model
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


@pytest.mark.model
@pytest.mark.slow
def test_a_key_that_is_not_set_fails_naming_the_variable(llama_server, db_path, instance, monkeypatch):
    monkeypatch.delenv("SYNTH_NO_SUCH_KEY", raising=False)
    gen = OpenAIGeneratorResource(base_url=llama_server + "/v1", model=SERVED_MODEL, api_key_env="SYNTH_NO_SUCH_KEY")
    res = materialize_raw(db_path, gen, instance)
    assert not res.success and "export SYNTH_NO_SUCH_KEY=<key>" in failure_messages(res)


@pytest.mark.model
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
                # no resampling: the generation's 32 samples are fixed in advance
                "raw_candidates": {"config": {"samples_per_task": 2, "resample_unsolved": 0}},
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
        "task_pool,capability_frontier,raw_candidates",
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


@pytest.mark.model
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
    assert res.success, failure_messages(res)
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
    # the run's cost is the tutor's tokens at its price (1 USD per million either way); plain is unpriced
    expected = (tutor["prompt_tokens"].sum() + tutor["completion_tokens"].sum()) / 1e6
    assert expected > 0 and meta["cost_usd"].value == pytest.approx(expected, abs=1e-6)
