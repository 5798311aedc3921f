"""Publishing a stored mix: files, dataset card and filter counts, shared by the
training_export asset and `synth export`."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import Field

from synth_assets.core.curate.dataset_card import dataset_card
from synth_assets.core.curate.mixing import MIX_SCHEMA, export_mix
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform
from synth_assets.core.warehouse import Warehouse


def drops_by_reason(wh: Warehouse, generation: int) -> dict[str, int]:
    """Drop counts of every generation the mix of ``generation`` draws on."""
    if not wh.table_exists("filter_drops"):
        return {}
    df = wh.sql(
        f"select drop_reason, count(*) as n from {wh.schema}.filter_drops where generation <= ? "
        "group by 1 order by 2 desc",
        [generation],
    )
    return {r: int(n) for r, n in df.iter_rows()}


def publish(
    wh: Warehouse,
    mix: pl.DataFrame,
    generation: int,
    out_dir: str | Path,
    human_floor: float | None = None,
    drops: dict[str, int] | None = None,
) -> dict[str, str]:
    """Files and card. The floor and the decontamination n-gram are the ones the mix was built
    under (its ``human_floor`` and ``decontamination_ngram`` columns); ``drops`` are the filter's
    drop counts by reason (the asset passes its input; ``synth export`` reads the warehouse)."""
    policy = mix.select([c for c in ("human_floor", "decontamination_ngram") if c in mix.columns]).head(1).to_dicts()
    policy = policy[0] if policy else {}
    floor = human_floor if human_floor is not None else policy.get("human_floor")
    ngram = policy.get("decontamination_ngram") or 13
    mix = conform(mix, MIX_SCHEMA)
    card = dataset_card(
        mix, generation, drops if drops is not None else drops_by_reason(wh, generation), floor, ngram=int(ngram)
    )
    return export_mix(mix, out_dir, card=card)


class ExportSettings(Settings):
    """Where the training export is written."""

    export_dir: str | None = Field(
        default=None, description="where train/validation JSONL go; default exports/ beside the DuckDB file"
    )
