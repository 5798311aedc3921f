"""The model card beside every registered model: written on registration, rewritten on every
decision, holding the lineage the warehouse holds, parsed as a Hugging Face model card.

No model is trained here: the registry rows are built by hand and the adapter folder is a test
double (tests/model_registry_fixtures.py); the warehouse is a real DuckDB file."""

import json

import polars as pl
import pytest
import yaml

from synth_assets.core.training.model_card import CARD_JSON, CARD_MD, LOSS_PNG
from synth_assets.core.training.registry import Registry
from synth_assets.core.verify.canaries import CANARY_TABLE
from tests.model_registry_fixtures import gate_scores, register_candidate, store_mix

REQUIRED_KEYS = {"base_model", "datasets", "library_name", "tags", "model-index"}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def registry(warehouse) -> Registry:
    store_mix(warehouse)
    return Registry(warehouse)


def card(row: dict, tmp_path) -> tuple[str, dict]:
    folder = tmp_path / "models" / row["model_id"]
    return (folder / CARD_MD).read_text(), json.loads((folder / CARD_JSON).read_text())


def test_a_card_is_written_beside_the_adapter_on_register_with_the_hub_keys(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    text, _facts = card(row, tmp_path)
    fm = front_matter(text)
    assert (set(fm) >= REQUIRED_KEYS, fm["library_name"], fm["base_model"]) == (
        True,
        "peft",
        "google/gemma-3-270m",
    )


def test_the_card_holds_the_rows_hash_and_the_rows_per_source_the_warehouse_holds(registry, warehouse, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    _text, facts = card(row, tmp_path)
    stored = warehouse.sql(
        f"select source, family, count(*) as rows from {warehouse.schema}.mixed_training_set "
        "where generation = 2 group by 1, 2 order by 1 desc, 2"
    ).to_dicts()
    data = facts["training_data"]
    per_source = [{k: r[k] for k in ("source", "family", "rows")} for r in data["mix"]["per_source"]]
    assert (data["train_rows_hash"], per_source, data["origin_generations"]) == (row["train_rows_hash"], stored, [1, 2])


def test_the_card_names_the_licences_and_the_model_terms_of_its_rows(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    _text, facts = card(row, tmp_path)
    mix = facts["training_data"]["mix"]
    assert (
        sorted({(r["task_source"], r["license"]) for r in mix["licences"]}),
        [r["model_terms"] for r in mix["generators"]],
    ) == ([("humaneval", "MIT"), ("reasoning_gym", "Apache-2.0")], ["Gemma Terms of Use"])


def test_a_refused_candidate_s_card_holds_the_gate_s_reasons(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    reasons = ["REGRESSION: gcd/heldout 0.100 vs parent 0.400 (McNemar p=0.0100)", "NO_GAIN: _macro_/heldout"]
    registry.decide(row["model_id"], "rejected", "; ".join(reasons))
    text, facts = card(row, tmp_path)
    assert (facts["decision"]["status"], facts["decision"]["reasons"], reasons[0] in text) == (
        "rejected",
        reasons,
        True,
    )


def test_a_promoted_card_parses_as_a_hugging_face_model_card_with_its_held_out_results(registry, tmp_path):
    from huggingface_hub import ModelCard

    row = register_candidate(registry, tmp_path / "models")
    registry.set_scores(row["model_id"], gate_scores())
    registry.decide(row["model_id"], "promoted", "the gate passed")
    text, _facts = card(row, tmp_path)
    parsed = ModelCard(text).data
    results = sorted((r.dataset_config, r.dataset_split, r.metric_type, r.metric_value) for r in parsed.eval_results)
    assert (parsed.base_model, results) == (
        "google/gemma-3-270m",
        [
            ("gcd", "harder", "accuracy", 0.5),
            ("gcd", "heldout", "accuracy", 0.6),
            ("gcd", "rephrased", "accuracy", 0.55),
        ],
    )


def test_the_evaluation_shows_intervals_beside_the_parent_and_the_trivial_baselines(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    registry.set_scores(row["model_id"], gate_scores())
    text, _facts = card(row, tmp_path)
    line = next(ln for ln in text.splitlines() if ln.startswith("| gcd | heldout |"))
    assert line == (
        "| gcd | heldout | 20 | 0.600 | [0.400, 0.800] | 0.300 | [0.100, 0.500] | 0.100 | 0.150 | 0.0100 |  |"
    )


def test_approval_rewrites_the_card_with_the_decision(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    registry.decide(row["model_id"], "awaiting_approval", "the gate passed; promotion.require_approval is on")
    before = card(row, tmp_path)[1]["decision"]
    registry.decide(row["model_id"], "promoted", "approved by ada (synth models approve)")
    after = card(row, tmp_path)[1]["decision"]
    assert [(d["status"], d["in_service"], len(d["serving_log"])) for d in (before, after)] == [
        ("awaiting_approval", False, 0),
        ("promoted", True, 1),
    ]


def test_a_rollback_rewrites_the_card_of_the_model_that_left_service(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    registry.decide(row["model_id"], "promoted", "the gate passed")
    registry.serve("base", "rollback", "served by ada (synth models serve)")
    decision = card(row, tmp_path)[1]["decision"]
    assert (decision["in_service"], decision["model_in_service"]) == (False, "base")


def test_the_card_renders_every_section(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    text, _facts = card(row, tmp_path)
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert headings == [
        "## Lineage",
        "## Training data",
        "## Verification and filters",
        "## Training",
        "## Evaluation",
        "## Decision",
        "## Files",
    ]


def test_the_loss_curve_is_drawn_beside_the_card(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    text, _facts = card(row, tmp_path)
    png = (tmp_path / "models" / row["model_id"] / LOSS_PNG).read_bytes()
    assert (png[:8], f"![loss curve]({LOSS_PNG})" in text) == (b"\x89PNG\r\n\x1a\n", True)


def test_canaries_drift_and_frontier_not_stored_are_said_to_be_not_measured(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    _text, facts = card(row, tmp_path)
    notes = [facts["verification"]["canaries"]["note"], facts["drift"]["note"], facts["frontier"]["note"]]
    assert [n.startswith("not measured") for n in notes] == [True, True, True]


def test_a_verifier_with_a_wrong_canary_is_marked_on_the_card(registry, warehouse, tmp_path):
    canaries = pl.DataFrame(
        {
            "verifier": ["reasoning_gym:chain_sum@1", "reasoning_gym:chain_sum@1", "reasoning_gym:basic_arithmetic@1"],
            "verifier_version": ["0.1.25"] * 3,
            "canary": ["true answer", "off by one", "true answer"],
            "task_id": ["t1", "t1", "t2"],
            "expected": ["pass", "not pass", "pass"],
            "actual": ["pass", "pass", "pass"],  # chain_sum's scorer passed a wrong answer
            "ok": [True, True, True],  # a stored flag the card must not trust
            "generation": [2, 2, 2],
        }
    )
    warehouse.write_generation(CANARY_TABLE, canaries, 2)
    row = register_candidate(registry, tmp_path / "models")
    _text, facts = card(row, tmp_path)
    results = {
        r["verifier"]: (r["right"], r["wrong"], r["result"]) for r in facts["verification"]["canaries"]["verifiers"]
    }
    assert results == {
        "reasoning_gym:basic_arithmetic@1": (1, 0, "proven"),
        "reasoning_gym:chain_sum@1": (1, 1, "WRONG"),
    }


def test_the_drift_report_s_status_for_the_generation_is_on_the_card(registry, warehouse, tmp_path):
    report = pl.DataFrame(
        {
            "generation": [2, 2, 1],
            "corpus": ["accepted", "accepted", "accepted"],
            "metric": ["distinct_2", "DIVERSITY_LOSS", "distinct_2"],
            "status": ["warn", "ok", "fail"],  # generation 1's fail is not this model's mix
            "note": ["falling", "", "older"],
        }
    )
    warehouse.replace_table("drift_report", report)
    row = register_candidate(registry, tmp_path / "models")
    drift = card(row, tmp_path)[1]["drift"]
    assert (drift["status"], [f["metric"] for f in drift["flagged"]]) == ("warn", ["distinct_2"])


def test_a_card_that_cannot_be_written_is_a_warning_and_the_decision_stands(registry, tmp_path):
    row = register_candidate(registry, tmp_path / "models")
    (tmp_path / "models" / row["model_id"] / f"{CARD_MD}.partial").mkdir()  # the card's temporary name is taken
    with pytest.warns(UserWarning, match=f"model card of {row['model_id']} was not rewritten"):
        registry.decide(row["model_id"], "rejected", "NO_GAIN: _macro_/heldout")
    assert registry.get(row["model_id"]).status == "rejected"


def test_a_registry_row_with_only_an_id_and_a_parent_still_gets_a_card(warehouse, tmp_path):
    registry = Registry(warehouse)  # no mix stored, no artefacts: e.g. a row a benchmark registers
    registry.register({"model_id": "g1-bare", "parent_id": "base", "kind": "lora", "mix_generation": 1})
    facts = json.loads((tmp_path / "models" / "g1-bare" / CARD_JSON).read_text())
    assert (facts["parent"]["model_id"], facts["training_data"]["mix"]["note"]) == (
        "base",
        "no mixed_training_set table in the warehouse",
    )
