"""The one Definitions object of the platform: assets, checks, resources, job, schedule, sensor."""

import os

import dagster as dg

from quality_checks.gx_checks import SUITE_ASSETS, gx_suite_checks
from synth_assets.alerts import build_alert_sensor
from synth_assets.assets._common import GENERATIONS, add_generation, storage_of
from synth_assets.assets.evaluation import generator_eval, training_export
from synth_assets.assets.feedback import FEEDBACK_SOURCES
from synth_assets.assets.frontier import capability_frontier
from synth_assets.assets.judging import judge_calibration
from synth_assets.assets.pipeline import (
    filtered_set,
    mixed_training_set,
    preference_pairs,
    raw_candidates,
    review_queue,
    verified_set,
)
from synth_assets.assets.pipeline_checks import PIPELINE_CHECKS
from synth_assets.assets.reports import drift_report, no_failed_drift_metric
from synth_assets.assets.sources import heldout_eval, human_reference, task_pool
from synth_assets.assets.synthesis import synthesized_tasks
from synth_assets.assets.training import TRAINING_ASSETS, heldout_reasoning, promotion_gate
from synth_assets.console_log import console_logger
from synth_assets.core.errors import SynthConfigError
from synth_assets.profiles import SMOKE_RUN_CONFIG
from synth_assets.recovery import newest_generation, settle_runs
from synth_assets.resources import default_resources

# the generation stages (with their sources and reports), and the loop that trains on them
GENERATION_ASSETS = [
    synthesized_tasks,
    task_pool,
    human_reference,
    heldout_eval,
    heldout_reasoning,
    capability_frontier,
    raw_candidates,
    verified_set,
    judge_calibration,
    preference_pairs,
    filtered_set,
    review_queue,
    mixed_training_set,
    training_export,
    generator_eval,
    drift_report,
    *FEEDBACK_SOURCES,
]
ALL_ASSETS = [*GENERATION_ASSETS, *TRAINING_ASSETS]
STORAGE = storage_of(ALL_ASSETS)
GX_CHECKS = [gx_suite_checks(a, STORAGE.get(a, "")) for a in SUITE_ASSETS]
GENERATION_CHECKS = [*PIPELINE_CHECKS, no_failed_drift_metric, *GX_CHECKS]
ALL_CHECKS = [*GENERATION_CHECKS, promotion_gate]
CHECK_KEYS = [key for c in [*ALL_CHECKS, judge_calibration] for key in c.check_keys]

nightly_job = dg.define_asset_job(
    "nightly_regeneration",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*(s.key for s in FEEDBACK_SOURCES)),
    partitions_def=GENERATIONS,
    description="Materialize a generation: tasks, candidates, verification, curation, mix, export, "
    "held-out evaluation and drift report, with every check; then the loop: train a candidate generator on "
    "the mix, evaluate it against the model in service, and promote it if the gate passes.",
)


smoke_job = dg.define_asset_job(
    "smoke_generation",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(*(s.key for s in FEEDBACK_SOURCES))
    - dg.AssetSelection.groups("training"),
    partitions_def=GENERATIONS,
    config=SMOKE_RUN_CONFIG,
    description="A generation at smoke size (about a minute), without the training group: for demos and trying "
    "the platform out. Everything stays real; the Launchpad shows the sizes.",
)


@dg.schedule(
    name="nightly_regeneration_schedule",
    job=nightly_job,
    cron_schedule=os.environ.get("SYNTH_NIGHTLY_CRON", "0 3 * * *"),
    execution_timezone=os.environ.get("SYNTH_NIGHTLY_TIMEZONE", "UTC"),
    default_status=(
        dg.DefaultScheduleStatus.STOPPED
        if os.environ.get("SYNTH_NIGHTLY_STATUS", "running").lower() == "stopped"
        else dg.DefaultScheduleStatus.RUNNING
    ),
    description="Every night: complete the newest generation if a killed run left it unfinished, else add the "
    "next generation (partition) and materialize it.",
)
def nightly_regeneration_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    for line in settle_runs(context.instance).marked_failed:  # runs a killed process left STARTED
        context.log.warning(line)
    graph = defs.resolve_asset_graph()
    selected = set(nightly_job.selection.resolve(graph))
    newest = newest_generation(context.instance, graph, selected)
    if newest.state == "running":
        return dg.SkipReason(f"generation {newest.generation} still has a run in progress ({newest.runs[0]})")
    why = generator_not_ready()
    if why:  # no run and no new generation: the tick's reason names the model, its URL and the fix
        return dg.SkipReason(why)
    if newest.state == "unfinished" and newest.missing:
        return dg.RunRequest(
            run_key=f"generation-{newest.generation}-completion-{len(newest.runs)}",
            partition_key=newest.generation,
            asset_selection=sorted(newest.missing, key=lambda k: k.to_user_string()),
            tags={"synth/completes": newest.generation},
        )
    key = add_generation(context.instance)
    return dg.RunRequest(run_key=f"generation-{key}", partition_key=key)


def generator_not_ready() -> str | None:
    """Why the configured generator cannot start a generation, or None: a model in service
    behind an endpoint must answer before a run adds a generation (``GeneratorResource.preflight``)."""
    try:
        with defs.resources["generator"].process_config_and_initialize_cm() as generator:
            generator.preflight()
    except SynthConfigError as exc:
        return str(exc)
    return None


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
    jobs=[nightly_job, smoke_job],
    schedules=[nightly_regeneration_schedule],
    sensors=[build_alert_sensor(CHECK_KEYS)],
    resources=default_resources(),
    executor=_executor,
    loggers={"console": console_logger},
)
