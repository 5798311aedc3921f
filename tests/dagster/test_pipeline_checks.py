"""The generation's asset checks called as functions on a warehouse written by hand, so each
check's verdict and metadata are one expected outcome."""

import dagster as dg

from synth_assets.assets.pipeline_checks import no_family_wiped_out
from synth_assets.core.curate.curation import FILTERED_SCHEMA
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
