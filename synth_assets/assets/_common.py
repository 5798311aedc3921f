"""What every asset shares: the generational asset decorator, generations as partitions, table
metadata for the UI, and user errors as step failures (raised, and read back from a run)."""

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import polars as pl

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.markdown import markdown_table
from synth_assets.core.memory import peak_rss

KINDS = {"polars", "duckdb"}

# Every asset writes the DuckDB file (one writing process at a time): they share one concurrency
# pool, limited to 1 in dagster_home/dagster.postgres.yaml, so queued runs and parallel steps
# take turns at the file; asset checks only read and run beside them.
DUCKDB_POOL = "duckdb"

GENERATIONAL = {"storage": "generational"}
SNAPSHOT = {"storage": "snapshot"}

# A generation is a key of the graph: one dynamic partition per run of the generation stages.
# A run adds the next key (synth run, the nightly schedule, or "Add partition" in the UI's
# launch dialog); re-running or backfilling an existing key rewrites only that generation.
GENERATIONS = dg.DynamicPartitionsDefinition(name="generation")

# Cumulative inputs (the mix accumulates every generation's accepted rows; the drift report
# compares with earlier generations): every partition of the upstream asset, of which the IO
# manager hands over those up to the step's own generation, never a later one.
UP_TO_THIS_GENERATION = dg.AllPartitionMapping()


def generational_asset(*, group_name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``@dg.asset`` of a generation stage: one partition per generation, its frame stored by
    generation (``GENERATIONAL``), polars and DuckDB kinds, and a turn at the DuckDB file in
    ``DUCKDB_POOL``. Any of these can be overridden; every other ``dg.asset`` argument passes on."""
    defaults = {"pool": DUCKDB_POOL, "kinds": KINDS, "metadata": GENERATIONAL, "partitions_def": GENERATIONS}
    asset = dg.asset(**(defaults | kwargs), group_name=group_name)
    return lambda fn: asset(_with_peak_memory(fn))


def _with_peak_memory(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The step, with its peak resident memory in the run log when it ends (one line), so a run
    log says which stage needs how much (core/memory.py: the kernel's peak, reset per step)."""

    if inspect.isgeneratorfunction(fn):  # a step that yields its outputs and check results

        @functools.wraps(fn)
        def step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
            with peak_rss() as peak:
                yield from fn(context, *args, **kwargs)
            context.log.info(f"peak memory of this step: {peak}")

    else:

        @functools.wraps(fn)
        def step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
            with peak_rss() as peak:
                result = fn(context, *args, **kwargs)
            context.log.info(f"peak memory of this step: {peak}")
            return result

    step.__signature__ = inspect.signature(fn)  # Dagster reads the step's parameters and return type here
    return step


def step_failure(description: str) -> dg.Failure:
    """The Failure a step raises for something the user must fix: the description is the whole
    story (no traceback is needed) and a retry would fail the same way."""
    return dg.Failure(description=description, allow_retries=False)


def generation_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> int:
    """The generation a step works on: its partition key."""
    op = getattr(context, "op_execution_context", context)
    if not op.has_partition_key:
        raise step_failure(
            "this step needs a generation: materialize it with a partition "
            "(synth run, or pick a generation in the UI's launch dialog)"
        )
    return int(op.partition_key)


def next_generation_key(instance: dg.DagsterInstance) -> str:
    """One more than the largest generation the instance knows."""
    keys = [int(k) for k in instance.get_dynamic_partitions(GENERATIONS.name) if k.isdigit()]
    return str(max(keys, default=0) + 1)


def add_generation(instance: dg.DagsterInstance, generation: int | None = None) -> str:
    """The partition key to launch: ``generation`` again, or the next generation; added to the
    instance's partitions when it is new (as "Add partition" in the UI's launch dialog)."""
    key = str(generation) if generation is not None else next_generation_key(instance)
    if key not in instance.get_dynamic_partitions(GENERATIONS.name):
        instance.add_dynamic_partitions(GENERATIONS.name, [key])
    return key


def markdown_preview(df: pl.DataFrame, rows: int = 5, width: int = 60) -> str:
    cols = [c for c in df.columns if c not in ("verifier_spec", "messages")][:10]
    return markdown_table(df, cols, rows=rows, width=width)


def table_meta(df: pl.DataFrame, **extra: object) -> dict:
    """Row count and column schema under Dagster's standard keys, plus a preview."""
    meta: dict = {
        "dagster/row_count": df.height,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in df.schema.items()]
        ),
        "preview": dg.MetadataValue.md(markdown_preview(df)),
    }
    for k, v in extra.items():
        if isinstance(v, (dict, list)):
            meta[k] = dg.MetadataValue.json(v)
        else:
            meta[k] = v
    return meta


def counts(df: pl.DataFrame, col: str) -> dict[str, int]:
    if df.height == 0:
        return {}
    return {str(k): int(v) for k, v in df.group_by(col).len().sort(col).iter_rows()}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A SynthConfigError becomes a Failure whose message is the whole story, no traceback."""
    try:
        yield
    except SynthConfigError as exc:
        raise step_failure(str(exc)) from None


def check_generation(context: dg.AssetCheckExecutionContext) -> int:
    """The generation (partition) the run works on; for a check run without one (called as a
    function, or alone from the UI), the newest generation in the warehouse."""
    op = context.op_execution_context
    if op.has_partition_key:
        return int(op.partition_key)
    return context.resources.warehouse.get().current_generation()


def stored_frame(context: dg.AssetCheckExecutionContext, asset: str, snapshot: bool = False) -> pl.DataFrame:
    """What the asset stored: the run's generation of a generational table, or the whole table of
    a snapshot (the asset's ``storage`` metadata says which: ``storage_of``)."""
    wh = context.resources.warehouse.get()
    if not wh.table_exists(asset):
        return pl.DataFrame()
    if snapshot:
        return wh.read(asset)
    return wh.read(asset, generation=check_generation(context))


def storage_of(assets: list[dg.AssetsDefinition | dg.SourceAsset]) -> dict[str, str]:
    """Each asset's ``storage`` metadata (``generational`` or ``snapshot``) by table name, read
    from the definitions themselves, so a check never keeps its own list of snapshot tables."""
    out = {}
    for a in assets:
        if not isinstance(a, dg.AssetsDefinition):
            continue  # a declared source (feedback tables): nothing materializes it here
        for key in a.keys:
            storage = (a.specs_by_key[key].metadata or {}).get("storage")
            if storage is not None:
                out[key.path[-1]] = str(storage)
    return out


@dataclass(frozen=True)
class StepFailure:
    """A failed step of a run: the Failure's description when the step raised one
    (``step_failure``, ``user_errors``), and the error's chain of messages, outermost first."""

    step: str
    description: str | None
    errors: list[str]

    @property
    def message(self) -> str:
        """One line for a person: the description, else the error's own message."""
        return self.description or (self.errors[0].strip() if self.errors else "failed")


def step_failures(result: dg.ExecuteInProcessResult) -> list[StepFailure]:
    """Every failed step of a run, in the order they failed."""
    out = []
    for ev in result.all_events:
        if ev.event_type != dg.DagsterEventType.STEP_FAILURE:
            continue
        data = ev.step_failure_data
        errors, err = [], data.error
        while err is not None:  # the UI shows the whole chain of causes
            errors.append(err.message)
            err = err.cause
        description = data.user_failure_data.description if data.user_failure_data else None
        out.append(StepFailure(ev.step_key, description, errors))
    return out
