"""``verifiers_proven``, the blocking check on verified_set, through ``dagster.materialize`` on an
ephemeral instance and a temp DuckDB file (the named generator double of tests/doubles.py), and
called as a function. Each broken verifier is forced for real and caught before any of its
verdicts reach filtered_set; the default verifiers pass. One expected outcome per test."""

import json
import sys

import dagster as dg
import polars as pl

from synth_assets.assets.evaluation import GeneratorEvalConfig
from synth_assets.assets.pipeline import (
    CustomCanaryConfig,
    CustomVerifierConfig,
    RawCandidatesConfig,
    VerifiedSetConfig,
)
from synth_assets.assets.pipeline_checks import verifiers_proven
from synth_assets.assets.sources import TaskPoolConfig
from synth_assets.core.tasks.sources import conform
from synth_assets.core.verify.canaries import CANARY_SCHEMA, CANARY_TABLE
from synth_assets.core.verify.verification import VERDICT_SCHEMA
from synth_assets.core.warehouse import Warehouse
from synth_assets.definitions import defs
from synth_assets.resources import SandboxResource, WarehouseResource
from tests.doubles import OracleGeneratorResource, register_pass_everything_double
from tests.runs import failure_messages, run_offline

CHECK = "verifiers_proven"


def evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == CHECK)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def caught(result: dg.ExecuteInProcessResult) -> tuple:
    """What a caught verifier looks like: the check failed as an ERROR, verified_set stored its
    rows, and filtered_set (so the mix) was never built from them."""
    e = evaluation(result)
    return e.passed, e.severity, "verified_set" in materialized(result), "filtered_set" in materialized(result)


CAUGHT = (False, dg.AssetCheckSeverity.ERROR, True, False)


def custom_run(offline_resources, instance, tmp_path, verifier: CustomVerifierConfig) -> dg.ExecuteInProcessResult:
    """A generation of three tasks of the user's file, checked by ``verifier``; the generator
    double answers each right on sample 0, wrong on sample 1."""
    tasks = tmp_path / "tasks.jsonl"
    kind = f"custom:{verifier.name}"
    rows = [{"task_id": f"t{i}", "prompt": f"Say {i}.", "answer": str(i), "verifier": kind} for i in range(3)]
    tasks.write_text("\n".join(json.dumps(r) for r in rows))
    answers = {f"user/tasks/t{i}": f" {i}" for i in range(3)}
    resources = {**offline_resources, "generator": OracleGeneratorResource(answers_json=json.dumps(answers))}
    return run_offline(
        resources,
        instance,
        task_pool=TaskPoolConfig(reasoning_gym_families=[], humaneval_tasks=0, user_task_files=[str(tasks)]),
        verified_set=VerifiedSetConfig(custom_verifiers=[verifier]),
        generator_eval=GeneratorEvalConfig(max_tasks=0, reasoning_items=False),
    )


def test_the_default_verifiers_are_proven_and_the_report_is_on_verified_sets_page(offline_resources, instance):
    result = run_offline(offline_resources, instance)
    assert result.success, failure_messages(result)
    e = evaluation(result)
    page = result.asset_materializations_for_node("verified_set")[0].metadata
    assert (e.passed, e.metadata["canaries_wrong"].value, e.metadata["proven"].value, page["canaries_wrong"].value) == (
        True,
        0,
        ["python_tests", "reasoning_gym:gcd", "reasoning_gym:letter_counting"],
        0,
    )


def test_a_scorer_that_passes_everything_is_caught_before_filtered_set(offline_resources, instance, db_path):
    family = register_pass_everything_double()
    result = run_offline(
        offline_resources,
        instance,
        task_pool=TaskPoolConfig(reasoning_gym_families=[family], tasks_per_family=3, humaneval_tasks=0),
        raw_candidates=RawCandidatesConfig(samples_per_task=2),
    )
    # the double passed every candidate, right or wrong: the check stops them
    assert (Warehouse(db_path).read("verified_set", generation=1)["verdict"] == "pass").all()
    assert caught(result) == CAUGHT


def test_a_sandbox_that_cannot_start_its_programs_is_caught_and_alerted(offline_resources, instance, db_path):
    # an interpreter outside what the sandbox mounts (this virtualenv's): bubblewrap starts, the program cannot
    resources = {**offline_resources, "sandbox": SandboxResource(python_executable=sys.executable)}
    result = run_offline(resources, instance)
    sensor = defs.get_sensor_def("quality_check_alerts")
    sensor(dg.build_sensor_context(instance=instance, resources={"warehouse": resources["warehouse"]}))
    alerts = Warehouse(db_path).read("alerts").filter(pl.col("check_name") == CHECK)
    assert (caught(result), alerts["severity"].to_list(), "python_tests" in alerts["description"][0]) == (
        CAUGHT,
        ["ERROR"],
        True,
    )


def test_a_custom_verifier_without_canaries_warns_and_names_it(offline_resources, instance, tmp_path):
    verifier = CustomVerifierConfig(name="answer", callable="tests.doubles:answer_matches_verifier")
    result = custom_run(offline_resources, instance, tmp_path, verifier)
    e = evaluation(result)
    assert (e.passed, e.severity, "custom:answer" in e.description, "filtered_set" in materialized(result)) == (
        False,
        dg.AssetCheckSeverity.WARN,
        True,
        True,
    )


def test_a_custom_verifier_whose_canaries_disagree_is_caught_before_filtered_set(offline_resources, instance, tmp_path):
    verifier = CustomVerifierConfig(
        name="lenient",
        callable="tests.doubles:pass_everything_verifier_double",
        canaries=[
            CustomCanaryConfig(completion=" 7", answer="7", expect="pass", name="right"),
            CustomCanaryConfig(completion=" 8", answer="7", expect="fail", name="off by one"),
        ],
    )
    assert caught(custom_run(offline_resources, instance, tmp_path, verifier)) == CAUGHT


def test_the_check_called_as_a_function_recomputes_each_verdict_from_the_warehouse(warehouse):
    row = {"candidate_id": "a", "generation": 1, "verifier": "exact", "verifier_name": "exact_match"}
    verified = conform([{**row, "verifier_version": "1"}], VERDICT_SCHEMA)
    warehouse.write_generation("raw_candidates", verified.select("candidate_id", "generation"), 1)
    warehouse.write_generation("verified_set", verified, 1)
    exact = {"verifier": "exact_match", "verifier_version": "1", "task_id": "t1", "ok": True}
    stored = conform(
        [
            {**exact, "canary": "true answer", "expected": "pass", "actual": "pass"},
            # stored as ok by a producer with a bug: the check reads the verdicts, not the flag
            {**exact, "canary": "empty answer", "expected": "not pass", "actual": "pass"},
        ],
        CANARY_SCHEMA,
    ).with_columns(pl.lit(1, dtype=pl.Int64).alias("generation"))
    warehouse.write_generation(CANARY_TABLE, stored, 1)
    context = dg.build_asset_check_context(resources={"warehouse": WarehouseResource(path=warehouse.path)})
    result = verifiers_proven(context)
    table = result.metadata["wrong_canaries"].value
    assert (result.passed, result.severity, "| exact_match | 1 | empty answer | t1 | not pass | pass |" in table) == (
        False,
        dg.AssetCheckSeverity.ERROR,
        True,
    )
