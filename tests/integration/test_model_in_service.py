"""The model in service is what the next run generates with, whatever serves it: a promoted
model behind an OpenAI-compatible endpoint (a real llama.cpp server), as the default generator
and as a mixture's 'in_service' member, and the embedded base model again after a rollback; an
endpoint that does not answer stops `synth run` before a generation is added, in one line."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.llama_backend import MODEL_ID
from synth_assets.core.training.registry import Registry
from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import (
    GeneratorMember,
    LlamaCppGeneratorResource,
    MixtureGeneratorResource,
    WarehouseResource,
)
from tests.conftest import SERVED_MODEL
from tests.model_registry_fixtures import promote_endpoint_model
from tests.runs import failure_messages, materialize_raw

ROOT = Path(__file__).resolve().parents[2]


def _closed_url() -> str:
    """An address nothing listens on: a port the OS just handed out, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_model_in_service_whose_endpoint_does_not_answer_is_named_with_its_url_and_the_fix(db_path):
    url = _closed_url()
    model_id = promote_endpoint_model(Registry(Warehouse(db_path)), url, SERVED_MODEL)
    generator = LlamaCppGeneratorResource(registry=WarehouseResource(path=db_path))
    with pytest.raises(SynthConfigError) as err:
        generator.preflight()
    assert str(err.value).startswith(f"generator: {model_id} is in service at {url} (model '{SERVED_MODEL}'), ")
    assert str(err.value).endswith("start its server, or roll back to the base model with `synth models serve base`")


def test_synth_run_stops_before_adding_a_generation_when_the_endpoint_in_service_does_not_answer(tmp_path):
    db = str(tmp_path / "warehouse.duckdb")
    url = _closed_url()
    model_id = promote_endpoint_model(Registry(Warehouse(db)), url, SERVED_MODEL)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_DUCKDB_PATH": db}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "synth"), "run"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert (out.returncode, len(errors), f"{model_id} is in service at {url}" in errors[0]) == (2, 1, True)
    assert "generation 1" not in out.stdout and not Warehouse(db).table_exists("task_pool")


@pytest.mark.model
@pytest.mark.slow
def test_the_endpoint_in_service_generates_as_default_and_as_a_mixture_member_until_a_rollback(
    llama_server, db_path, instance
):
    reg = Registry(Warehouse(db_path))
    promote_endpoint_model(reg, llama_server + "/v1", SERVED_MODEL)
    registry = WarehouseResource(path=db_path)

    def generated_by(generator) -> list[tuple[str, str]]:
        res = materialize_raw(db_path, generator, instance, samples=1)
        assert res.success, failure_messages(res)
        return res.output_for_node("raw_candidates").select("generator", "model").unique().rows()

    default = generated_by(LlamaCppGeneratorResource(registry=registry))
    member = generated_by(
        MixtureGeneratorResource(
            members=[GeneratorMember(name="svc", share=1, backend="in_service")], registry=registry
        )
    )
    reg.serve("base", "rollback", "test: rolled back by hand")
    after_rollback = generated_by(LlamaCppGeneratorResource(registry=registry))
    assert (default, member, after_rollback) == (
        [("openai_compatible", SERVED_MODEL)],
        [("openai_compatible:svc", SERVED_MODEL)],
        [("llama_cpp", MODEL_ID)],
    )
    assert pl.Series(Warehouse(db_path).read("raw_candidates")["generation"]).unique().sort().to_list() == [1, 2, 3]


def test_the_nightly_schedule_skips_with_the_reason_when_the_endpoint_in_service_does_not_answer(db_path, monkeypatch):
    """The schedule's tick adds no generation and requests no run; its skip reason is the line."""
    import dagster as dg

    from synth_assets.definitions import nightly_regeneration_schedule

    monkeypatch.setenv("SYNTH_DUCKDB_PATH", db_path)  # the definitions' warehouse reads it when used
    url = _closed_url()
    model_id = promote_endpoint_model(Registry(Warehouse(db_path)), url, SERVED_MODEL)
    with dg.instance_for_test() as instance:
        tick = nightly_regeneration_schedule(dg.build_schedule_context(instance=instance))
        assert (
            isinstance(tick, dg.SkipReason),
            f"generator: {model_id} is in service at {url}" in (tick.skip_message or ""),
            instance.get_dynamic_partitions("generation"),
        ) == (True, True, [])
