"""The Definitions object loads, with its jobs and schedule, and the schedule adds and
requests the next generation."""

import uuid

import dagster as dg

from synth_assets.definitions import defs
from tests.runs import GENERATION_TABLES


def test_definitions_load_with_job_and_schedule():
    dg.Definitions.validate_loadable(defs)
    assert defs.get_job_def("nightly_regeneration")
    sched = defs.get_schedule_def("nightly_regeneration_schedule")
    assert sched.cron_schedule == "0 3 * * *" and sched.default_status == dg.DefaultScheduleStatus.RUNNING
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(GENERATION_TABLES) <= keys


def test_the_nightly_schedule_adds_the_next_generation_and_requests_it(db_path, monkeypatch):
    from synth_assets.definitions import nightly_regeneration_schedule

    monkeypatch.setenv("SYNTH_DUCKDB_PATH", db_path)  # a fresh warehouse: the base model serves

    with dg.instance_for_test() as instance:  # a schedule context needs an instance with a ref
        instance.add_dynamic_partitions("generation", ["1", "2"])
        finished = dg.DagsterRun(  # generation 2's run ended by itself: nothing to complete
            job_name="nightly_regeneration",
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.SUCCESS,
            tags={"dagster/partition": "2"},
        )
        instance.add_run(finished)
        request = nightly_regeneration_schedule(dg.build_schedule_context(instance=instance))
        assert request.partition_key == "3" and request.run_key == "generation-3"
        assert instance.get_dynamic_partitions("generation") == ["1", "2", "3"]
