"""Curation from and into the warehouse (issue 19): the same rows as in memory, without loading
a generation's full rows into Python."""

from pathlib import Path

import polars as pl
import pytest

from bench.curation_scale import build_corpus
from synth_assets.core.curate.curation import CURATION_COLUMNS, CurationSettings, curate, curate_generation
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.warehouse import Warehouse


def _utc(df: pl.DataFrame) -> pl.DataFrame:
    # DuckDB hands timestamps back as Etc/UTC, a conformed frame says UTC: the same instants
    return df.with_columns(pl.col("created_at").dt.convert_time_zone("UTC")) if "created_at" in df.columns else df


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Warehouse, pl.DataFrame]:
    """Two generations of the scale benchmark's corpus (templated text, planted near-duplicates,
    leaks of held-out items, code) in a DuckDB file."""
    wh = Warehouse(tmp_path / "store.duckdb")
    first, refs, _ = build_corpus(3000)
    second, _, _ = build_corpus(3000, seed=1)
    second = second.with_columns(
        pl.lit(2, dtype=pl.Int64).alias("generation"), (pl.col("candidate_id") + "-g2").alias("candidate_id")
    )
    wh.write_generation("verified_set", first, 1)
    wh.write_generation("verified_set", second, 2)
    return wh, refs


def test_curating_in_the_warehouse_writes_the_rows_curate_returns_in_memory(stored):
    wh, refs = stored
    settings = CurationSettings()
    curate_generation(wh, 1, settings, refs)
    curate_generation(wh, 2, settings, refs)  # against generation 1's kept rows
    one = curate(wh.read("verified_set", 1), settings, refs)
    two = curate(wh.read("verified_set", 2), settings, refs, previous=wh.read("filtered_set", 1))
    stored_rows = [_utc(wh.read(t, g)) for g in (1, 2) for t in ("filtered_set", "filter_drops")]
    in_memory = [_utc(f) for f in (one.kept, one.dropped, two.kept, two.dropped)]
    assert [a.equals(b) for a, b in zip(stored_rows, in_memory)] == [True] * 4


def test_the_decisions_read_only_the_columns_they_need(stored, monkeypatch):
    wh, refs = stored
    queries: list[str] = []
    real = Warehouse.sql

    def spy(self, query, params=None):  # a named spy on the read path, recording every query
        queries.append(query)
        return real(self, query, params)

    monkeypatch.setattr(Warehouse, "sql", spy)
    curate_generation(wh, 1, CurationSettings(), refs)
    reads = [q for q in queries if "verified_set" in q and "count(" not in q]
    assert reads == [
        f"select {', '.join(repr(c).replace(chr(39), chr(34)) for c in CURATION_COLUMNS)} "
        f"from synth.verified_set where generation = ?"
    ]


def test_duplicate_candidate_ids_are_refused_before_anything_is_written(stored):
    wh, refs = stored
    twice = wh.read("verified_set", 1).head(5)
    wh.write_generation("verified_set", pl.concat([twice, twice]), 1)
    with pytest.raises(
        SynthConfigError,
        match="generation 1 holds 10 rows but 5 distinct candidate_id values; re-materialize verified_set",
    ):
        curate_generation(wh, 1, CurationSettings(), refs)
    assert wh.table_exists("filtered_set") is False
