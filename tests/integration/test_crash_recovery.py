"""A killed run loses nothing and shows: ``synth run`` killed with SIGKILL in the middle of a step,
then ``synth run`` again. The first run is marked failed with why, the same generation is
completed (what the killed run made is kept, the response cache hands back its samples), the
counts equal what an uninterrupted run makes, and no second generation is created."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from synth_assets.core.warehouse import Warehouse
from synth_assets.recovery import START_TAG, newest_generation, process_tags, settle_runs

SYNTH = str(Path(sys.executable).parent / "synth")


def _env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SYNTH_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "SYNTH_RESPONSE_CACHE": str(tmp_path / "cache.duckdb"),
    }


def _kill_when(args: list[str], env: dict, pattern: str, timeout_s: float = 1200) -> str:
    """Start ``synth run``, SIGKILL its whole process group at the first output line matching
    ``pattern``; the output up to there."""
    proc = subprocess.Popen(
        [SYNTH, "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen, deadline = [], time.monotonic() + timeout_s
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line) or time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return "".join(seen)


def _instance_facts(env: dict) -> tuple[list[str], list[str]]:
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()  # newest first
        return [r.status.value for r in reversed(runs)], instance.get_dynamic_partitions("generation")


SMOKE_NO_TRAINING = ["--profile", "smoke", "--select", "not group:training"]


@pytest.mark.model
@pytest.mark.slow
def test_a_run_killed_in_raw_candidates_is_marked_failed_and_its_generation_completed(tmp_path):
    env = _env(tmp_path)
    cfg = tmp_path / "run.yaml"
    # progress after every sample, so the kill lands with some samples made and some not
    cfg.write_text(
        json.dumps(
            {
                "ops": {
                    "raw_candidates": {
                        # no resampling: the generation's sample count is then fixed in advance
                        "config": {"samples_per_task": 4, "resample_unsolved": 0, "progress_every_s": 0.01}
                    }
                }
            }
        )
    )
    before = _kill_when([*SMOKE_NO_TRAINING, "-c", str(cfg)], env, r"generated ([3-9]|1\d)/\d\d samples")
    assert "generated" in before  # the kill landed inside raw_candidates

    again = subprocess.run(
        [SYNTH, "run", *SMOKE_NO_TRAINING, "-c", str(cfg)], env=env, capture_output=True, text=True, timeout=1200
    )
    statuses, generations = _instance_facts(env)
    wh = Warehouse(env["SYNTH_DUCKDB_PATH"])
    # the tasks the generation samples: the pool's, at the levels the frontier chose
    n_tasks = wh.sql(
        "select count(*) n from synth.task_pool where family not like '%@%' "
        "or family in (select family from synth.capability_frontier where chosen)"
    )["n"][0]
    raw = wh.sql(
        "select count(*) n, count(distinct candidate_id) ids, sum(cached::int) cached, max(generation) g "
        "from synth.raw_candidates"
    ).row(0, named=True)
    assert (
        again.returncode,
        "marked failed: the process that ran it" in again.stdout,
        "generation 1 did not finish" in again.stdout,
        statuses,
        generations,
        raw["n"],
        raw["ids"],
        raw["g"],
        raw["cached"] > 0,
    ) == (0, True, True, ["FAILURE", "SUCCESS"], ["1"], n_tasks * 4, n_tasks * 4, 1, True), again.stdout + again.stderr


@pytest.mark.model
@pytest.mark.slow
def test_a_run_killed_while_training_is_completed_from_the_training_step(tmp_path):
    env = _env(tmp_path)
    _kill_when(["--profile", "smoke"], env, r"training \(sft\) on \d+ rows")
    wh = Warehouse(env["SYNTH_DUCKDB_PATH"])
    mix_before = wh.sql("select count(*) n from synth.mixed_training_set")["n"][0]
    again = subprocess.run([SYNTH, "run", "--profile", "smoke"], env=env, capture_output=True, text=True, timeout=1200)
    statuses, generations = _instance_facts(env)
    completing = re.search(r"completing it, (\d+) of (\d+) assets to materialize \(([^)]*)\)", again.stdout)
    registered = wh.sql("select count(*) n from synth.model_registry where mix_generation = 1")["n"][0]
    completed = completing.group(3) if completing else ""  # no such line: the assert shows the run's output
    assert (  # the completing run ends as the gate decides (a refusal is a failed step): only the first is asserted
        again.returncode,
        statuses[0],
        generations,
        "raw_candidates" in completed,
        "candidate_model" in completed,
        wh.sql("select count(*) n from synth.mixed_training_set")["n"][0],
        registered,
    ) == (0, "FAILURE", ["1"], False, True, mix_before, 1), again.stdout + again.stderr


def _dead_process_tags() -> dict[str, str]:
    """Tags naming a process that ran and is gone (a child started, read and killed)."""
    from synth_assets.recovery import _start_time

    child = subprocess.Popen(["sleep", "60"])
    tags = {**process_tags(), "synth/pid": str(child.pid), START_TAG: _start_time(child.pid)}
    child.kill()
    child.wait()
    return tags


def _run_record(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name="nightly_regeneration", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags
    )
    return instance.add_run(run)


def test_a_run_whose_process_is_gone_is_marked_failed_with_why(instance):
    run = _run_record(instance, {**_dead_process_tags(), "dagster/partition": "3"})
    settled = settle_runs(instance)
    after = instance.get_run_by_id(run.run_id)
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    assert (
        after.status,
        len(settled.marked_failed),
        "is gone" in failure[0].event_log_entry.dagster_event.message,
    ) == (
        dg.DagsterRunStatus.FAILURE,
        1,
        True,
    )


def test_a_run_whose_process_lives_is_left_running_and_named(instance):
    run = _run_record(instance, process_tags())
    settled = settle_runs(instance)
    assert (instance.get_run_by_id(run.run_id).status, settled.marked_failed, len(settled.running)) == (
        dg.DagsterRunStatus.STARTED,
        [],
        1,
    )


def test_a_reused_pid_is_not_taken_for_the_run_s_process(instance):
    """Our own pid with another start time: the run's process is gone and the pid was reused."""
    run = _run_record(instance, {**process_tags(), START_TAG: "1"})
    settle_runs(instance)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_generation_without_any_run_is_unfinished_and_missing_everything(instance):
    from synth_assets.assets._common import add_generation
    from synth_assets.definitions import defs, nightly_job

    graph = defs.resolve_asset_graph()
    selected = set(nightly_job.selection.resolve(graph))
    add_generation(instance)  # the process died between adding the partition and launching the run
    state = newest_generation(instance, graph, selected)
    assert (state.generation, state.state, state.missing == selected) == ("1", "unfinished", True)


def test_the_schedule_completes_an_unfinished_generation_instead_of_adding_one(db_path, monkeypatch):
    from synth_assets.assets._common import add_generation
    from synth_assets.definitions import nightly_regeneration_schedule

    monkeypatch.setenv("SYNTH_DUCKDB_PATH", db_path)  # a fresh warehouse: the base model serves

    with dg.instance_for_test() as instance:  # a schedule's context needs an instance with a ref
        add_generation(instance)
        request = nightly_regeneration_schedule(dg.build_schedule_context(instance=instance))
        assert (request.partition_key, instance.get_dynamic_partitions("generation")) == ("1", ["1"])


def test_a_run_the_daemon_launches_names_its_process_in_its_tags(tmp_path):
    """Dagster's default launcher cannot tell that a run's worker died: the run names its own
    process (the warehouse resource tags it), so the next ``synth run`` or schedule tick can."""
    from synth_assets.resources import WarehouseResource

    @dg.asset
    def touches_the_warehouse(warehouse: WarehouseResource) -> None:
        warehouse.get()

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [touches_the_warehouse],
            instance=instance,
            resources={"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))},
        )
        tags = instance.get_run_by_id(result.run_id).tags
    assert tags.get("synth/pid") == str(os.getpid())
