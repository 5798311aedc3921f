"""Runs that died: shown as failed, and their generation completed by the next run.

A run can die anywhere (a signal, the OOM killer, a reboot, a laptop lid). Dagster then keeps
it ``STARTED`` for ever, because the process that would have written its end is gone, and the
generation it was making is half made. Two things make that safe:

- ``synth run`` writes its process (pid, host and the process's start time, so a reused pid is
  not mistaken for it) into the run's tags. Before it starts anything it marks every run of this
  host whose process is gone as failed, with why; a run whose process is alive is running, and
  a second writer of the DuckDB file is refused.
- A generation is *unfinished* when none of its runs ended by itself: no run succeeded and none
  failed at a step (a step failure or a refused gate is an ending; a killed process is not).
  ``synth run`` and the nightly schedule complete the newest generation when it is unfinished,
  materializing only what its runs did not (an asset counts as done when it was materialized
  and every check on it was evaluated), and everything downstream of that; the response cache
  hands back the samples the killed run already had. ``synth run --new`` starts a new one
  deliberately.

Runs the daemon launched (the schedule, the UI) are watched by Dagster's run monitoring
(``run_monitoring`` in ``dagster_home/dagster.yaml``), which fails a run whose worker died.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from synth_assets.assets._common import GENERATIONS

PID_TAG, HOST_TAG, START_TAG = "synth/pid", "synth/host", "synth/process_start"
PARTITION_TAG = "dagster/partition"
IN_PROGRESS = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None
    when there is no such process: with the pid, it names one process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the command name may hold spaces and parentheses


def process_tags() -> dict[str, str]:
    """Tags that name this process, for the run it executes."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(), START_TAG: _start_time(pid) or ""}


def process_alive(tags: dict[str, str]) -> bool | None:
    """Whether the process a run's tags name is still running: None when the tags name no
    process, or one on another host (this host cannot tell)."""
    if PID_TAG not in tags or tags.get(HOST_TAG) != socket.gethostname():
        return None
    started = _start_time(int(tags[PID_TAG]))
    return started is not None and started == tags.get(START_TAG, started)


@dataclass
class DeadRuns:
    """What ``settle_runs`` found among the runs still marked in progress."""

    marked_failed: list[str] = field(default_factory=list)  # one line each, for the user
    running: list[str] = field(default_factory=list)  # runs whose process is alive


def settle_runs(instance: dg.DagsterInstance) -> DeadRuns:
    """Mark the in-progress runs whose process is gone as failed, saying why (the UI and the
    event log show it); list those whose process is still running."""
    out = DeadRuns()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        alive = process_alive(run.tags)
        generation = run.tags.get(PARTITION_TAG, "-")
        if alive:
            out.running.append(f"run {run.run_id} (generation {generation}, process {run.tags[PID_TAG]})")
        elif alive is False:
            why = (
                f"the process that ran it (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) is gone: it was killed "
                "(a signal, the OOM killer, a reboot) before the run could end; the next `synth run` completes "
                f"generation {generation}"
            )
            instance.report_run_failed(run, message=why)
            out.marked_failed.append(f"run {run.run_id} (generation {generation}) marked failed: {why}")
    return out


def _ended_by_itself(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A run that succeeded, or failed at a step (an error, a blocking check, a refused gate):
    its generation is as finished as it will get. A killed one ends with no step failure."""
    if run.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED):  # cancelling is deliberate
        return True
    if run.status == dg.DagsterRunStatus.FAILURE:
        records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1)
        return bool(records.records)
    return False


@dataclass
class GenerationState:
    """Where the newest generation stands: ``none`` (there is none), ``running`` (a run of it is
    in progress), ``finished`` (a run of it ended by itself) or ``unfinished`` (its runs were
    killed, or it never got one)."""

    generation: str | None
    state: str
    runs: list[str] = field(default_factory=list)  # its runs (ids), newest first
    missing: set[dg.AssetKey] = field(default_factory=set)  # to complete it: not done, and downstream of that
    done: set[dg.AssetKey] = field(default_factory=set)


def _done_assets(instance: dg.DagsterInstance, run_ids: list[str], graph: dg.AssetGraph) -> set[dg.AssetKey]:
    """Assets materialized in these runs whose every check was also evaluated in them."""
    materialized: set[dg.AssetKey] = set()
    evaluated: set[dg.AssetCheckKey] = set()
    for run_id in run_ids:
        for rec in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
            materialized.add(rec.event_log_entry.dagster_event.asset_key)
        for rec in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records:
            evaluated.add(rec.event_log_entry.dagster_event.event_specific_data.asset_check_key)
    return {k for k in materialized if graph.has(k) and set(graph.get(k).check_keys) <= evaluated}


def newest_generation(
    instance: dg.DagsterInstance, graph: dg.AssetGraph, selected: set[dg.AssetKey]
) -> GenerationState:
    """The newest generation's state and, when unfinished, what of ``selected`` it still needs."""
    keys = [int(k) for k in instance.get_dynamic_partitions(GENERATIONS.name) if k.isdigit()]
    if not keys:
        return GenerationState(None, "none")
    generation = str(max(keys))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: generation}))
    ids = [r.run_id for r in runs]
    if any(r.status in IN_PROGRESS for r in runs):
        return GenerationState(generation, "running", ids)
    if any(_ended_by_itself(instance, r) for r in runs):
        return GenerationState(generation, "finished", ids)
    done = _done_assets(instance, ids, graph) & selected
    todo = selected - done
    downstream = set(dg.AssetSelection.assets(*todo).downstream().resolve(graph)) if todo else set()
    return GenerationState(generation, "unfinished", ids, (todo | downstream) & selected, done)
