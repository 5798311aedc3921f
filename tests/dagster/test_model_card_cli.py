"""The model card where a user meets it: `synth models show`, `synth models export` and the
training assets' pages.

No model is trained here: the registry rows are built by hand and the adapter folder is a test
double (tests/model_registry_fixtures.py); the held-out answers are the named generator double's
(tests/doubles.py), stored as each model's answers, so the gate runs without a model."""

import getpass
import json

import dagster as dg
import polars as pl
import yaml

from synth_assets.cli import main as cli
from synth_assets.core.training.frontier import FRONTIER_SCHEMA
from synth_assets.core.training.registry import Registry
from tests.model_registry_fixtures import register_candidate, store_mix


def registered(db_path: str, tmp_path, status: str | None = None) -> tuple[Registry, dict]:
    reg = Registry(store_mix_in(db_path))
    row = register_candidate(reg, tmp_path / "models")
    if status:
        reg.decide(row["model_id"], status, "the gate passed; promotion.require_approval is on")
    return reg, row


def store_mix_in(db_path: str):
    from synth_assets.core.warehouse import Warehouse

    wh = Warehouse(db_path)
    store_mix(wh)
    return wh


def test_models_export_writes_the_adapter_the_card_and_the_dataset_card_into_one_folder(db_path, tmp_path):
    _reg, row = registered(db_path, tmp_path)
    out = tmp_path / "export"
    assert cli(["--db", db_path, "models", "export", row["model_id"], str(out)]) == 0
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    readme = (out / "README.md").read_text()
    assert (
        files,
        yaml.safe_load(readme.split("---\n", 2)[1])["library_name"],
        (out / "dataset" / "README.md").read_text().startswith("---\nlicense:"),
    ) == (
        [
            "README.md",
            "adapter.gguf",
            "adapter_config.json",
            "adapter_model.safetensors",
            "dataset/README.md",
            "dataset/train.jsonl",
            "dataset/train.parquet",
            "dataset/validation.jsonl",
            "dataset/validation.parquet",
            "loss.png",
            "model_card.json",
        ],
        "peft",
        True,
    )


def test_models_approve_rewrites_the_card_naming_who_approved(db_path, tmp_path):
    _reg, row = registered(db_path, tmp_path, status="awaiting_approval")
    assert cli(["--db", db_path, "models", "approve", row["model_id"], "--note", "looked at the samples"]) == 0
    decision = json.loads((tmp_path / "models" / row["model_id"] / "model_card.json").read_text())["decision"]
    assert (decision["status"], decision["reason"]) == (
        "promoted",
        f"approved by {getpass.getuser()} (synth models approve): looked at the samples",
    )


def test_models_show_prints_the_card_s_summary_and_its_path(db_path, tmp_path, capsys):
    _reg, row = registered(db_path, tmp_path)
    assert cli(["--db", db_path, "models", "show", row["model_id"]]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "models" / row["model_id"] / "MODEL_CARD.md"
    assert (f"model card: {path}" in out, f"rows hash `{row['train_rows_hash'][:16]}`" in out) == (True, True)


def test_exporting_the_base_model_is_a_clear_error(db_path, tmp_path, capsys):
    registered(db_path, tmp_path)
    assert cli(["--db", db_path, "models", "export", "base", str(tmp_path / "out")]) == 2
    assert "base is the packaged model, nothing was trained" in capsys.readouterr().err


def test_model_eval_s_page_shows_the_card_summary_and_its_file(db_path, tmp_path, instance):
    from synth_assets.assets._common import GENERATIONS
    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.generators.llama_backend import MODEL_ID
    from synth_assets.core.training.evaluation import evaluate
    from synth_assets.core.training.heldout import HeldoutSettings, heldout_items
    from synth_assets.definitions import ALL_ASSETS
    from synth_assets.resources import GenerationalIOManager, WarehouseResource, default_resources
    from tests.doubles import OracleGeneratorDouble

    reg, row = registered(db_path, tmp_path)
    wh = reg.wh
    items = heldout_items(HeldoutSettings(families=["gcd"], items_per_family=5), PromptSettings())
    wh.replace_table("heldout_reasoning", items)
    cand = reg.models().filter(pl.col("model_id") == row["model_id"]).with_columns(pl.lit(2).alias("generation"))
    wh.write_generation("candidate_model", cand, 2)
    # the generation's frontier: no family with levels here (gcd as written), so nothing is steered
    frontier = pl.DataFrame(schema=FRONTIER_SCHEMA).with_columns(pl.lit(2, dtype=pl.Int64).alias("generation"))
    wh.write_generation("capability_frontier", frontier, 2)
    for key, right in ((row["model_id"], True), (MODEL_ID, False)):  # the stored answers: no model runs
        answers = {r["item_id"]: f" {r['answer']}" if right else " -1" for r in items.iter_rows(named=True)}
        reg.store_scores(evaluate(OracleGeneratorDouble(answers), key, items))
    instance.add_dynamic_partitions(GENERATIONS.name, ["1", "2"])
    whr = WarehouseResource(path=db_path)
    result = dg.materialize(
        ALL_ASSETS,
        selection=["model_eval"],
        instance=instance,
        partition_key="2",
        # the production resources (unselected assets' are never built) on this test's DuckDB file
        resources={**default_resources(), "warehouse": whr, "io_manager": GenerationalIOManager(warehouse=whr)},
    )
    meta = result.asset_materializations_for_node("model_eval")[0].metadata
    path = tmp_path / "models" / row["model_id"] / "MODEL_CARD.md"
    assert (meta["model_card"].value, f"**{row['model_id']}**" in meta["model_card_summary"].value) == (
        str(path),
        True,
    )
