"""Generator resources as a run gets them: chosen and configured from the environment
(``generator_from_env``: every backend, each setting checked with the variable named), and
candidates imported from a file flowing through ``raw_candidates``."""

import dagster as dg
import polars as pl
import pytest

from synth_assets.assets.sources import TaskPoolConfig
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import ImportGeneratorResource, OpenAIGeneratorResource, generator_from_env
from tests.runs import failure_messages, materialize_raw


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
    assert res.success, failure_messages(res)
    raw = Warehouse(db_path).read("raw_candidates")
    assert raw.height == 6 and set(raw["generator"]) == {"import"} and set(raw["model"]) == {"batch-llm"}
    assert set(raw["model_terms"]) == {"CC-BY-4.0"} and raw["candidate_id"].n_unique() == 6

    # more samples than the file holds: a clear error, and nothing written
    res = materialize_raw(db_path, ImportGeneratorResource(import_files=[str(path)]), instance, samples=3, pool=pool)
    assert not res.success and "set raw_candidates.samples_per_task" in failure_messages(res)
    assert Warehouse(db_path).read("raw_candidates")["generation"].unique().to_list() == [1]


def test_generator_from_the_environment_names_what_is_missing(monkeypatch, tmp_path):
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


def test_endpoint_numbers_from_the_environment_reach_the_generator(monkeypatch):
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
    before any request, naming the cluster (the fan-out itself: tests/integration/test_ray_fanout.py)."""
    monkeypatch.setenv("SYNTH_GENERATOR", "openai")
    monkeypatch.setenv("SYNTH_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SYNTH_OPENAI_MODEL", "m")
    monkeypatch.setenv("SYNTH_RAY_ADDRESS", "127.0.0.1:9")
    with (
        dg.build_resources({"generator": generator_from_env()}) as res,
        pytest.raises(SynthConfigError, match=r"Ray cluster at 127.0.0.1:9 is unreachable .*nothing was run"),
    ):
        res.generator.build()


def test_the_parallel_setting_comes_from_the_environment_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv("SYNTH_GENERATOR", "llama_cpp")
    monkeypatch.setenv("SYNTH_LLAMA_PARALLEL", "4")
    assert generator_from_env().parallel == 4
    monkeypatch.setenv("SYNTH_LLAMA_PARALLEL", "many")
    with pytest.raises(SynthConfigError, match="SYNTH_LLAMA_PARALLEL='many': a whole number from 1 to 64"):
        generator_from_env()


def test_the_batched_weights_setting_comes_from_the_environment_and_a_typo_is_named(monkeypatch):
    monkeypatch.setenv("SYNTH_GENERATOR", "llama_cpp")
    monkeypatch.setenv("SYNTH_LLAMA_BATCHED_WEIGHTS", "stored")
    assert generator_from_env().batched_weights == "stored"
    monkeypatch.setenv("SYNTH_LLAMA_BATCHED_WEIGHTS", "fp16")
    with pytest.raises(SynthConfigError, match="SYNTH_LLAMA_BATCHED_WEIGHTS='fp16': one of auto, f16, stored"):
        generator_from_env()


class _ClosingDouble:
    """TEST DOUBLE: a built thing that records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_released_generator_is_closed_and_built_again_on_next_use():
    """candidate_model frees the run's generator before training; a later step gets a new one."""
    from synth_assets.resources import GeneratorResource

    class ClosingGeneratorResource(GeneratorResource):
        def build(self) -> _ClosingDouble:
            return _ClosingDouble()

    res = ClosingGeneratorResource()
    first = res.get()
    released = res.release()
    second = res.get()
    assert (released, first.closed, second is first, second.closed, res.release(), res.release()) == (
        True,
        True,
        False,
        False,
        True,
        False,
    )
