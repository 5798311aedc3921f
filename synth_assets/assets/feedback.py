"""Sources the pipeline reads that no asset of this run writes: people's review decisions and
the stored history of earlier generations.

Each is an observable source asset, so the graph shows the edge and the UI shows a data
version: when a reviewer rejects a row (``synth review reject`` records an observation), the
mix that read the decisions is marked stale. The history sources observe tables that assets
of earlier generations wrote; an asset reads them as inputs, never past the graph.
"""

import hashlib
import warnings

import dagster as dg

from synth_assets.assets._common import KINDS
from synth_assets.core.warehouse import Warehouse
from synth_assets.resources import WarehouseResource


# observable source assets are beta in dagster 1.13; the platform pins 1.13.x and tests them
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*observable_source_asset.*")


def table_version(wh: Warehouse, table: str) -> str:
    """A data version for a table: its generations and their row counts (or row count and
    newest decision time), hashed. Changes exactly when a write changes what a reader sees."""
    if not wh.table_exists(table):
        return "empty"
    cols = set(wh.sql(f"select * from {wh.schema}.{table} limit 0").columns)
    if "generation" in cols:
        facts = wh.sql(f"select generation, count(*) n from {wh.schema}.{table} group by 1 order by 1").rows()
    elif "decided_at" in cols:
        facts = wh.sql(f"select count(*) n, max(decided_at)::varchar t from {wh.schema}.{table}").rows()
    else:
        facts = wh.sql(f"select count(*) n from {wh.schema}.{table}").rows()
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:16]


@dg.observable_source_asset(
    group_name="sources", metadata={"table": "review_decisions", "storage": "snapshot"}, kinds=KINDS,
    description="Accept/reject decisions people made on review_queue rows (synth review accept|reject); the "
    "latest decision per row wins.",
)
def review_decisions(warehouse: WarehouseResource) -> dg.DataVersion:
    return dg.DataVersion(table_version(warehouse.get(), "review_decisions"))


@dg.observable_source_asset(
    group_name="sources", metadata={"table": "filtered_set", "storage": "snapshot"}, kinds=KINDS,
    description="Every generation's accepted rows as stored (filtered_set's table): the history new candidates "
    "are deduplicated against, and the coverage task synthesis grows thin families from.",
)
def accepted_history(warehouse: WarehouseResource) -> dg.DataVersion:
    return dg.DataVersion(table_version(warehouse.get(), "filtered_set"))


@dg.observable_source_asset(
    group_name="sources", metadata={"table": "drift_report", "storage": "snapshot"}, kinds=KINDS,
    description="Every generation's drift report as stored: the series the diversity chart plots.",
)
def drift_history(warehouse: WarehouseResource) -> dg.DataVersion:
    return dg.DataVersion(table_version(warehouse.get(), "drift_report"))


@dg.observable_source_asset(
    group_name="sources", metadata={"table": "task_proposals", "storage": "snapshot"}, kinds=KINDS,
    description="Every task proposed so far, as stored (task_proposals' table): synthesis accumulates onto it.",
)
def proposal_history(warehouse: WarehouseResource) -> dg.DataVersion:
    return dg.DataVersion(table_version(warehouse.get(), "task_proposals"))


FEEDBACK_SOURCES = [review_decisions, accepted_history, drift_history, proposal_history]
