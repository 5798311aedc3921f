"""Shared fixtures: a temp DuckDB file and an ephemeral Dagster instance per test."""

from pathlib import Path

import dagster as dg
import pytest

from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import (
    GenerationalIOManager,
    HumanEvalSplitResource,
    LlamaCppGeneratorResource,
    SandboxResource,
    WarehouseResource,
)


@pytest.fixture(autouse=True)
def own_response_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's generators cache their samples in a file of its own: a sample another test
    cached must never stand in for one this test generates."""
    monkeypatch.setenv("SYNTH_RESPONSE_CACHE", str(tmp_path / "response_cache.duckdb"))


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "warehouse.duckdb")


@pytest.fixture
def warehouse(db_path: str) -> Warehouse:
    return Warehouse(db_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def materialize_generation(
    assets: list, instance: dg.DagsterInstance, generation: int | None = None, **kwargs
) -> dg.ExecuteInProcessResult:
    """``dg.materialize`` of one generation: the next one (added as a partition, as ``synth
    run`` and the schedule do), or ``generation`` again."""
    from synth_assets.assets._common import add_generation

    return dg.materialize(assets, instance=instance, partition_key=add_generation(instance, generation), **kwargs)


@pytest.fixture
def resources(db_path: str, tmp_path: Path) -> dict:
    """The production resources, pointed at a temp DuckDB file; the real model and sandbox."""
    wh = WarehouseResource(path=db_path)
    return {
        "warehouse": wh,
        "io_manager": GenerationalIOManager(warehouse=wh),
        "generator": LlamaCppGeneratorResource(),
        "sandbox": SandboxResource(),
        "humaneval_split": HumanEvalSplitResource(),
    }


FAMILIES, PER_FAMILY, HUMANEVAL = ["gcd", "letter_counting"], 3, 2
N_TASKS = len(FAMILIES) * PER_FAMILY + HUMANEVAL


def _offline_config() -> dict:
    from synth_assets.assets.evaluation import GeneratorEvalConfig
    from synth_assets.assets.pipeline import RawCandidatesConfig
    from synth_assets.assets.sources import TaskPoolConfig
    from synth_assets.assets.synthesis import SynthesizedTasksConfig
    from synth_assets.assets.training import HeldoutConfig

    return {
        "heldout_reasoning": HeldoutConfig(families=["gcd"], items_per_family=3),
        "synthesized_tasks": SynthesizedTasksConfig(enabled=False),
        "task_pool": TaskPoolConfig(
            reasoning_gym_families=FAMILIES, tasks_per_family=PER_FAMILY, humaneval_tasks=HUMANEVAL
        ),
        "raw_candidates": RawCandidatesConfig(samples_per_task=2),  # the double: sample 0 right, sample 1 wrong
        "generator_eval": GeneratorEvalConfig(max_tasks=2),
    }


OFFLINE_CONFIG = _offline_config()


@pytest.fixture
def offline_resources(db_path: str) -> dict:
    """The production resources on a temp DuckDB file, with the named generator double
    (tests/doubles.py) in place of the model: right answers on sample 0, wrong on sample 1."""
    import json

    import polars as pl

    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.tasks.sources import humaneval_tasks, reasoning_gym_tasks
    from synth_assets.core.training.heldout import heldout_items
    from tests.doubles import OracleGeneratorResource, reference_answers

    tasks = pl.concat([reasoning_gym_tasks(FAMILIES, PER_FAMILY, 42), humaneval_tasks(HUMANEVAL, 0.3, 0.2)])
    # the held-out reasoning items too: the double answers them right (sample 0 is the greedy one)
    items = heldout_items(OFFLINE_CONFIG["heldout_reasoning"], PromptSettings())
    answers = reference_answers(tasks) | {r["item_id"]: f" {r['answer']}" for r in items.iter_rows(named=True)}
    wh = WarehouseResource(path=db_path)
    OracleGeneratorResource.builds = 0
    return {
        "warehouse": wh,
        "io_manager": GenerationalIOManager(warehouse=wh),
        "generator": OracleGeneratorResource(answers_json=json.dumps(answers)),
        "sandbox": SandboxResource(),
        "humaneval_split": HumanEvalSplitResource(),
    }


SERVED_MODEL = "gemma-3-270m"


def start_llama_server(threads: int = 2):
    """llama-cpp-python's own OpenAI-compatible server on the packaged Gemma model, on a free
    port; returns (process, base URL without /v1)."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from synth_assets.core.generators.llama_backend import ensure_model_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import tempfile

    # its log (a line per request) goes to a file: a pipe nobody reads fills up after a few
    # hundred requests and then blocks the server
    log = tempfile.NamedTemporaryFile(prefix="llama_server_", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(ensure_model_file()),
            "--model_alias",
            SERVED_MODEL,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            str(threads),
            "--n_ctx",
            "2048",
            "--interrupt_requests",
            "False",
            "--verbose",
            "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ},
    )
    log.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {Path(log.name).read_text(errors='replace')[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not answer within 120 s")


@pytest.fixture(scope="session")
def llama_server() -> str:
    """A real local OpenAI-compatible server (shared by the tests of one session)."""
    import os
    import signal

    proc, url = start_llama_server()
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
