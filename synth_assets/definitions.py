"""The one Definitions object of the platform: assets, checks, resources, job and schedule."""


import os

import dagster as dg

from quality_checks.checks import ALL_CHECKS
from synth_assets.assets.pipeline import (
    filtered_set,
    mixed_training_set,
    preference_pairs,
    raw_candidates,
    verified_set,
)
from synth_assets.assets.reports import drift_report
from synth_assets.assets.sources import heldout_eval, human_reference, task_pool
from synth_assets.resources import default_resources

ALL_ASSETS = [task_pool, human_reference, heldout_eval, raw_candidates, verified_set, preference_pairs,
              filtered_set, mixed_training_set, drift_report]

nightly_job = dg.define_asset_job(
    "nightly_regeneration",
    selection=dg.AssetSelection.all(),
    description="Materialize a new generation: tasks, candidates, verification, curation, mix, drift report.",
)

nightly_schedule = dg.ScheduleDefinition(
    name="nightly_regeneration_schedule",
    job=nightly_job,
    cron_schedule=os.environ.get("SYNTH_NIGHTLY_CRON", "0 3 * * *"),
    execution_timezone=os.environ.get("SYNTH_NIGHTLY_TIMEZONE", "UTC"),
    default_status=(
        dg.DefaultScheduleStatus.STOPPED
        if os.environ.get("SYNTH_NIGHTLY_STATUS", "running").lower() == "stopped"
        else dg.DefaultScheduleStatus.RUNNING
    ),
)

# One process runs every step: the model loads once and DuckDB has a single writer. Set
# SYNTH_EXECUTOR=multiprocess to run independent steps in parallel processes.
_executor = (
    dg.multiprocess_executor.configured({"max_concurrent": int(os.environ.get("SYNTH_MAX_CONCURRENT", 2))})
    if os.environ.get("SYNTH_EXECUTOR") == "multiprocess"
    else dg.in_process_executor
)

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    resources=default_resources(),
    executor=_executor,
)
