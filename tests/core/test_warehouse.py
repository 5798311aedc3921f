"""The DuckDB layer: history by generation, atomic writes, schema evolution, clear errors."""

import duckdb
import polars as pl
import pytest

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.warehouse import Warehouse


def frame(gen: int, n: int, **extra) -> pl.DataFrame:
    return pl.DataFrame({"generation": [gen] * n, "x": list(range(n)), **{k: [v] * n for k, v in extra.items()}})


def test_generations_accumulate_and_rewrite_only_their_own_rows(warehouse):
    warehouse.write_generation("t", frame(1, 3), 1)
    warehouse.write_generation("t", frame(2, 2), 2)
    warehouse.write_generation("t", frame(2, 5), 2)  # a re-run replaces generation 2 only
    counts = dict(warehouse.sql("select generation, count(*) from synth.t group by 1").iter_rows())
    assert counts == {1: 3, 2: 5}


def test_failed_write_leaves_previous_data_intact(warehouse):
    warehouse.write_generation("t", frame(1, 3), 1)
    bad = pl.DataFrame({"generation": [1], "x": ["not an int"]})  # type clash inside the transaction
    with pytest.raises(duckdb.ConversionException, match="Could not convert string 'not an int'"):
        warehouse.write_generation("t", bad, 1)
    assert warehouse.read("t", generation=1).height == 3


def test_new_columns_are_added_without_losing_history(warehouse):
    warehouse.write_generation("t", frame(1, 2), 1)
    warehouse.write_generation("t", frame(2, 2, note="new"), 2)
    df = warehouse.read("t").sort("generation")
    assert df.height == 4 and df["note"].to_list() == [None, None, "new", "new"]


def test_empty_write_creates_the_table_and_registers_the_generation(warehouse):
    empty = pl.DataFrame(schema={"generation": pl.Int64, "x": pl.Int64})
    warehouse.write_generation("t", empty, 1)
    assert warehouse.read("t", generation=1).height == 0
    rows = warehouse.sql("select row_count from synth._generations where table_name = 't'")
    assert rows["row_count"].to_list() == [0]


def test_current_generation_is_born_in_raw_candidates(warehouse):
    assert warehouse.current_generation() == 0
    warehouse.write_generation("raw_candidates", frame(1, 1), 1)
    warehouse.write_generation("filtered_set", frame(1, 1), 1)
    assert warehouse.current_generation() == 1 and warehouse.next_generation() == 2


def test_snapshot_tables_are_replaced_whole(warehouse):
    warehouse.replace_table("s", pl.DataFrame({"a": [1, 2, 3]}))
    warehouse.replace_table("s", pl.DataFrame({"a": [9]}))
    assert warehouse.read("s")["a"].to_list() == [9]


def test_schema_named_like_the_file_is_refused(tmp_path):
    with pytest.raises(SynthConfigError, match="same stem"):
        Warehouse(tmp_path / "synth.duckdb", schema="synth")


def test_reading_a_missing_table_names_the_asset(warehouse):
    warehouse.replace_table("s", pl.DataFrame({"a": [1]}))
    with pytest.raises(SynthConfigError, match="materialize the asset 'verified_set'"):
        warehouse.read("verified_set")


def test_frame_with_wrong_generation_is_refused(warehouse):
    with pytest.raises(ValueError, match="expected only 2"):
        warehouse.write_generation("t", frame(1, 2), 2)
