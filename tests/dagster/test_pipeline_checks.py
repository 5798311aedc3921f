"""The generation's asset checks called as functions on a warehouse written by hand, so each
check's verdict and metadata are one expected outcome."""

import dagster as dg
import polars as pl

from synth_assets.assets.pipeline_checks import human_share_at_or_above_floor, no_family_wiped_out
from synth_assets.core.curate.curation import FILTERED_SCHEMA
from synth_assets.core.curate.mixing import MIX_SCHEMA
from synth_assets.core.tasks.sources import conform
from synth_assets.core.verify.verification import VERDICT_SCHEMA
from synth_assets.resources import WarehouseResource


def test_coverage_check_reads_the_warehouse_and_names_the_family(warehouse):
    verified = conform(
        [
            {"candidate_id": "a", "generation": 1, "family": "gcd", "domain": "procedural", "verdict": "pass"},
            {"candidate_id": "b", "generation": 1, "family": "chain_sum", "domain": "procedural", "verdict": "pass"},
            {"candidate_id": "c", "generation": 1, "family": "humaneval", "domain": "code", "verdict": "fail"},
        ],
        VERDICT_SCHEMA,
    )
    warehouse.write_generation("raw_candidates", verified.select(list(verified.columns)[:5]), 1)
    warehouse.write_generation("verified_set", verified, 1)
    warehouse.write_generation("filtered_set", conform(verified.head(1).to_dicts(), FILTERED_SCHEMA), 1)

    result = no_family_wiped_out(
        dg.build_asset_check_context(resources={"warehouse": WarehouseResource(path=warehouse.path)})
    )
    assert not result.passed
    assert result.metadata["families_wiped_out"].value == ["chain_sum"]
    assert result.metadata["domains_wiped_out"].value == []


def _mix(response_tokens: list[int | None]) -> pl.DataFrame:
    """One human row of 30 response tokens and nine synthetic rows of 2 (or uncounted), floor 35%."""
    return conform(
        [
            {
                "row_id": str(i),
                "generation": 1,
                "source": "human" if i == 0 else "synthetic",
                "response_tokens": n,
            }
            for i, n in enumerate(response_tokens)
        ],
        MIX_SCHEMA,
    ).with_columns(pl.lit(0.35).alias("human_floor"))


def _floor_check(warehouse, response_tokens: list[int | None]) -> tuple[bool, str, float]:
    """(passed, share_of, human_share) of the floor check on a generation-1 mix of ``_mix``'s rows."""
    warehouse.write_generation("raw_candidates", pl.DataFrame({"generation": [1]}), 1)  # generation 1 exists
    warehouse.write_generation("mixed_training_set", _mix(response_tokens), 1)
    ctx = dg.build_asset_check_context(resources={"warehouse": WarehouseResource(path=warehouse.path)})
    result = human_share_at_or_above_floor(ctx)
    return result.passed, result.metadata["share_of"].value, result.metadata["human_share"].value


def test_the_floor_check_counts_response_tokens_when_the_mix_counted_them(warehouse):
    """10% of the rows are human but 30 of 48 response tokens (62.5%): over a 35% floor."""
    assert _floor_check(warehouse, [30] + [2] * 9) == (True, "response tokens", 0.625)


def test_the_floor_check_counts_rows_when_the_mix_did_not_count_tokens(warehouse):
    assert _floor_check(warehouse, [None] * 10) == (False, "rows", 0.1)
