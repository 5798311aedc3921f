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


def _stored_table_source(name: str, table: str, description: str) -> dg.SourceAsset:
    """An observable source over a table of the warehouse; its data version is the table's."""

    @dg.observable_source_asset(
        name=name,
        group_name="sources",
        metadata={"table": table, "storage": "snapshot"},
        kinds=KINDS,
        description=description,
    )
    def _source(warehouse: WarehouseResource) -> dg.DataVersion:
        return dg.DataVersion(table_version(warehouse.get(), table))

    return _source


review_decisions = _stored_table_source(
    "review_decisions",
    "review_decisions",
    "Accept/reject decisions people made on review_queue rows (synth review accept|reject); the latest decision "
    "per row wins.",
)
accepted_history = _stored_table_source(
    "accepted_history",
    "filtered_set",
    "Every generation's accepted rows as stored (filtered_set's table): the history new candidates are "
    "deduplicated against, and the coverage task synthesis grows thin families from.",
)
drift_history = _stored_table_source(
    "drift_history", "drift_report", "Every generation's drift report as stored: the series the diversity chart plots."
)
proposal_history = _stored_table_source(
    "proposal_history",
    "task_proposals",
    "Every task proposed so far, as stored (task_proposals' table): synthesis accumulates onto it.",
)

FEEDBACK_SOURCES = [review_decisions, accepted_history, drift_history, proposal_history]
