"""The loop: gate, registry, trainers and a real round (train, export, llama.cpp, evaluate, gate).

Fast tests force each path with fixed inputs; the slow ones train a real LoRA on the packaged
model at smoke size. The parent's scores are forced where a test needs a known gate outcome:
they are computed by the real evaluation over a named double (``OracleGeneratorDouble``,
right or wrong on every item) and stored under the parent's id, so the candidate (real) is
compared with a parent whose results are known.
"""

import json
import sys

import dagster as dg
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_assets.core.curate.mixing import MIX_SCHEMA
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import PromptSettings, is_rationale_prompt
from synth_assets.core.stats import mcnemar_p
from synth_assets.core.tasks.sources import conform, reasoning_gym_dataset
from synth_assets.core.tasks.worked_steps import worked_steps
from synth_assets.core.training.evaluation import SCORE_SCHEMA, evaluate
from synth_assets.core.training.gate import GateSettings, compare, decision
from synth_assets.core.training.heldout import HeldoutSettings, decontaminate, heldout_items, trivial_baselines
from synth_assets.core.training.loop import CandidateSettings, train_candidate
from synth_assets.core.training.registry import Registry
from tests.doubles import OracleGeneratorDouble

SMOKE_HELDOUT = HeldoutSettings(families=["letter_counting", "gcd"], items_per_family=10)


def gold_mix(n_per_family: int = 14, families=("gcd", "letter_counting"), seed: int = 11) -> pl.DataFrame:
    """A mix of real reasoning-gym questions with their reference answers (a fixed input)."""
    rows = []
    for fam in families:
        ds = reasoning_gym_dataset(fam, n_per_family, seed)
        for i in range(n_per_family):
            rows.append(
                {
                    "row_id": f"{fam}/{i}",
                    "generation": 1,
                    "source": "synthetic",
                    "task_id": f"rg/{fam}/{i}",
                    "family": fam,
                    "domain": "procedural",
                    "task_source": "reasoning_gym",
                    "split": "validation" if i < 2 else "train",
                    "prompt": ds[i]["question"],
                    "response": str(ds[i]["answer"]),
                    "origin_generation": 1,
                    "license": "Apache-2.0",
                    "generator": "oracle",
                    "model": "oracle",
                    "verifier": "reasoning_gym",
                }
            )
    # the stored mix's columns, as build_mix writes them (the model card reads its provenance)
    return conform(pl.DataFrame(rows), MIX_SCHEMA)


def scores(items: pl.DataFrame, model_id: str, right: bool) -> pl.DataFrame:
    """A parent that answers every item right, or answers -1 to everything (always wrong); on a
    rationale item it writes a step and the answer line."""

    def text(r: dict) -> str:
        answer = r["answer"] if right else "-1"
        return f" 1 + 1 = 2\nAnswer: {answer}" if is_rationale_prompt(r["prompt"]) else f" {answer}"

    answers = {r["item_id"]: text(r) for r in items.iter_rows(named=True)}
    return evaluate(OracleGeneratorDouble(answers), model_id, items)


def rationale_mix(n: int = 14, seed: int = 11) -> pl.DataFrame:
    """gold_mix of chain_sum (reasoning-gym's default sizes) whose responses are worked rationales."""
    mix = gold_mix(n, ("chain_sum",), seed)
    ds = reasoning_gym_dataset("chain_sum", n, seed)
    work = [worked_steps("chain_sum", ds[i]) for i in range(n)]
    return mix.with_columns(
        pl.Series("response", [f"{w}\nAnswer: {a}" for w, a in zip(work, mix["response"], strict=True)])
    )


# ------------------------------------------------------------------ gate
def _frame(
    model: str, correct: list[bool], answers: list[str] | None = None, family: str = "gcd", variant: str = "heldout"
) -> pl.DataFrame:
    n = len(correct)
    return pl.DataFrame(
        {
            "model_id": [model] * n,
            "item_id": [f"i{i}" for i in range(n)],
            "family": [family] * n,
            "variant": [variant] * n,
            "completion": answers or ["x"] * n,
            "answer_given": answers or [str(i) for i in range(n)],
            "correct": correct,
        },
        schema=SCORE_SCHEMA,
    )


def _baselines(
    n: int, most_common: list[bool] | None = None, family: str = "gcd", variant: str = "heldout"
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "family": [family] * n,
            "variant": [variant] * n,
            "answer": [str(i % 8) for i in range(n)],
            "most_common": most_common or [False] * n,
            "last_shot": [False] * n,
            "as_given": [False] * n,
        }
    )


def test_gate_rejects_a_family_significantly_worse_than_the_parent():
    parent = _frame("p", [True] * 20 + [False] * 10)
    cand = _frame("c", [True] * 5 + [False] * 25)
    cmp_ = compare(cand, parent, _baselines(30), GateSettings())
    ok, reasons = decision(cmp_)
    assert (ok, [r.split(":")[0] for r in reasons]) == (False, ["REGRESSION", "MACRO_LOWER"])


def test_gate_refuses_a_candidate_that_is_not_worse_but_not_better():
    """The naive arm's trap: a significant rise over the parent that stays under always answering
    the most common value is no gain, and with require_gain it is not promoted."""
    n = 60
    mode = [i < 24 for i in range(n)]
    parent = _frame("p", [i < 4 for i in range(n)])
    cand = _frame("c", [i < 17 for i in range(n)], answers=[str(i % 3) for i in range(n)])
    cmp_ = compare(cand, parent, _baselines(n, most_common=mode), GateSettings())
    assert [r.split(":")[0] for r in decision(cmp_)[1]] == ["NO_GAIN"]


def test_gate_counts_no_gain_that_only_matches_the_most_common_answer():
    """The pilot's trap: a model that learned to answer the most common value beats a parent
    that copies the last shot, but not the trivial baseline."""
    n = 60
    mode = [i < 21 for i in range(n)]  # 21/60 items have the most common answer
    parent = _frame("p", [i < 8 for i in range(n)])
    cand = _frame("c", mode, answers=["2"] * n)
    row = compare(cand, parent, _baselines(n, most_common=mode), GateSettings()).row(0, named=True)
    assert (row["p_vs_parent"] < 0.05, row["significant_gain"]) == (True, False)


def test_gate_flags_answers_collapsing_onto_one_value():
    n = 40
    parent = _frame("p", [False] * n, answers=[str(i % 8) for i in range(n)])  # 3 bits of answer entropy
    cand = _frame("c", [False] * n, answers=["1"] * n)
    assert decision(compare(cand, parent, _baselines(n), GateSettings()))[1][0].startswith("DIVERSITY_LOSS")


def test_gate_flags_a_collapsed_candidate_of_a_copying_parent():
    """A parent that answers one value to everything (the base model copying the last example)
    has no diversity of its own: its candidate is judged against the reference answers (3 bits
    here), so a candidate that still answers two values is DIVERSITY_LOSS, not waved through."""
    n = 40
    parent = _frame("p", [False] * n, answers=["2"] * n)
    cand = _frame("c", [False] * n, answers=[str(i % 2) for i in range(n)])
    assert decision(compare(cand, parent, _baselines(n), GateSettings()))[1][0].startswith("DIVERSITY_LOSS")


def test_gate_flags_a_shifted_variant_that_regresses():
    parent = pl.concat(
        [_frame("p", [True] * 30), _frame("p", [True] * 30, variant="harder").with_columns(pl.col("item_id") + "h")]
    )
    cand = pl.concat(
        [_frame("c", [True] * 30), _frame("c", [False] * 30, variant="harder").with_columns(pl.col("item_id") + "h")]
    )
    base = pl.concat([_baselines(30), _baselines(30, variant="harder").with_columns(pl.col("item_id") + "h")])
    flags = compare(cand, parent, base, GateSettings()).filter(pl.col("flag") != "")["flag"].to_list()
    assert flags == ["SHIFT_REGRESSION", "NO_GAIN"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=80))
def test_gate_never_finds_a_candidate_identical_to_its_parent_worse(correct):
    answers = [str(i % 5) for i in range(len(correct))]
    cmp_ = compare(
        _frame("c", correct, answers),
        _frame("p", correct, answers),
        _baselines(len(correct)),
        GateSettings(require_gain=False),
    )
    assert decision(cmp_) == (True, [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=80))
def test_gate_never_promotes_a_candidate_identical_to_its_parent_when_a_gain_is_required(correct):
    answers = [str(i % 5) for i in range(len(correct))]
    cmp_ = compare(
        _frame("c", correct, answers), _frame("p", correct, answers), _baselines(len(correct)), GateSettings()
    )
    assert decision(cmp_)[1] == [
        "NO_GAIN: _macro_/heldout " + f"{sum(correct) / len(correct):.3f} vs parent {sum(correct) / len(correct):.3f}"
    ]


def test_gate_promotes_a_significant_gain_over_parent_and_baselines():
    n = 60
    parent = _frame("p", [i < 8 for i in range(n)])
    cand = _frame("c", [i < 40 for i in range(n)], answers=[str(i % 8) for i in range(n)])
    cmp_ = compare(cand, parent, _baselines(n, most_common=[i < 12 for i in range(n)]), GateSettings())
    assert (decision(cmp_), cmp_.row(0, named=True)["significant_gain"]) == ((True, []), True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_mcnemar_is_symmetric_and_a_probability(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    assert mcnemar_p(a, b) == mcnemar_p(b, a) and 0.0 <= mcnemar_p(a, b) <= 1.0


# ------------------------------------------------------------------ held-out items
def test_heldout_items_are_disjoint_from_the_task_pool_and_decontaminated_against_the_mix():
    from synth_assets.core.tasks.sources import reasoning_gym_tasks

    items = heldout_items(SMOKE_HELDOUT, PromptSettings())
    pool = reasoning_gym_tasks(["letter_counting", "gcd"], 20, 42)
    assert set(items["question"]) & set(pool["prompt"]) == set()
    leaked = items.filter(pl.col("variant") == "heldout").head(3)["question"]
    kept, dropped = decontaminate(items, leaked)
    # each leaked question is also the rephrased variant's question: both go
    assert (dropped, set(kept["question"]) & set(leaked)) == (6, set())


def test_harder_and_rephrased_variants_shift_the_items():
    items = heldout_items(SMOKE_HELDOUT, PromptSettings())
    gcd = items.filter(pl.col("family") == "gcd")
    by = {v: gcd.filter(pl.col("variant") == v) for v in ("heldout", "harder", "rephrased")}
    assert by["heldout"]["question"].to_list() == by["rephrased"]["question"].to_list()
    assert (
        by["rephrased"]["prompt"].str.contains("\nQ: ").all()
        and not by["heldout"]["prompt"].str.contains("\nQ: ").any()
    )
    mean_answer = {v: by[v]["answer"].cast(pl.Int64).mean() for v in ("heldout", "harder")}
    assert mean_answer["harder"] > mean_answer["heldout"]


def test_trivial_baselines_score_the_most_common_answer():
    items = heldout_items(SMOKE_HELDOUT, PromptSettings())
    b = trivial_baselines(items).join(items.select("item_id", "answer"), on="item_id")
    part = b.filter((pl.col("family") == "gcd") & (pl.col("variant") == "heldout"))
    counts = part["answer"].value_counts()
    top = counts.filter(pl.col("count") == pl.col("count").max())["answer"].sort()[0]
    assert part.filter(pl.col("most_common"))["answer"].unique().to_list() == [top]


def test_the_words_as_given_are_a_trivial_predictor_of_word_sorting_and_of_no_arithmetic_family():
    settings = HeldoutSettings(families=["word_sorting@1", "chain_sum@1"], levels_above=0, items_per_family=40)
    items = heldout_items(settings, PromptSettings()).filter(pl.col("variant") == "heldout")
    b = trivial_baselines(items).join(items.select("item_id", "question"), on="item_id")
    words = b.filter(pl.col("family") == "word_sorting@1")
    listed = [q.rsplit(":", 1)[1].strip() for q in words["question"]]
    assert (words["as_given"].to_list(), b.filter(pl.col("family") == "chain_sum@1")["as_given"].any()) == (
        [a == w for a, w in zip(words["answer"], listed, strict=True)],
        False,
    )


def test_a_candidate_that_echoes_the_words_as_given_gains_nothing_over_that_predictor():
    n = 60
    echoed = [i % 2 == 0 for i in range(n)]  # the items already in order: echoing them is right
    cand = _frame("cand", echoed, family="word_sorting@1")
    parent = _frame("parent", [False] * n, family="word_sorting@1")
    base = _baselines(n, family="word_sorting@1").with_columns(pl.Series("as_given", echoed))
    row = compare(cand, parent, base, GateSettings()).row(0, named=True)
    assert (row["p_vs_parent"] < 1e-6, row["as_given_rate"], row["significant_gain"]) == (True, 0.5, False)


# ------------------------------------------------------------------ registry
def test_registry_promotion_rejection_and_rollback(warehouse):
    reg = Registry(warehouse)
    assert (reg.serving(), reg.get("base").status) == ("base", "promoted")
    for mid in ("g1-a", "g2-b"):
        reg.register({"model_id": mid, "parent_id": reg.serving(), "kind": "lora", "mix_generation": 1})
    reg.decide("g1-a", "promoted", "the gate passed")
    reg.decide("g2-b", "rejected", "REGRESSION: gcd")
    assert reg.serving() == "g1-a"
    with pytest.raises(SynthConfigError, match="g2-b is rejected"):
        reg.serve("g2-b", "pin", "try")
    reg.serve("base", "rollback", "by hand")
    assert [reg.serving(), reg.serving_log()["action"].to_list()] == ["base", ["initial", "promote", "rollback"]]
    with pytest.raises(SynthConfigError, match="has served already"):
        reg.register({"model_id": "g1-a", "parent_id": "base", "kind": "lora"})


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "command, message",
    [
        (f"{sys.executable} -c 'import sys; print(\"cuda oom\"); sys.exit(3)'", "exited with status 3"),
        (f"{sys.executable} -c 'pass'", "wrote no manifest"),
        (
            f'{sys.executable} -c \'import json, os; json.dump({{"adapter_gguf": "nope.gguf"}}, '
            f'open(os.environ["SYNTH_MANIFEST"], "w"))\'',
            "nope.gguf, which does not exist",
        ),
        ("/no/such/trainer", "was not found"),
    ],
)
def test_a_failing_trainer_command_leaves_the_registry_untouched(warehouse, tmp_path, command, message):
    reg = Registry(warehouse)
    before = reg.models()
    settings = CandidateSettings(trainer="command", command=command, min_train_rows=4)
    with pytest.raises(SynthConfigError, match=message):
        train_candidate(gold_mix(), 1, settings, reg, tmp_path / "models")
    assert (reg.models().equals(before), reg.serving()) == (True, "base")


def test_a_mix_too_small_to_train_on_is_refused(warehouse, tmp_path):
    reg = Registry(warehouse)
    with pytest.raises(SynthConfigError, match="fewer than candidate_model.min_train_rows=8"):
        train_candidate(gold_mix(n_per_family=3), 1, CandidateSettings(), reg, tmp_path / "models")
    assert reg.models()["model_id"].to_list() == ["base"]


def test_a_broken_adapter_file_is_a_clear_error(tmp_path):
    from synth_assets.core.training.loop import load_generator
    from synth_assets.core.training.registry import ModelRecord

    broken = tmp_path / "adapter.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(SynthConfigError, match="not a readable GGUF file"):
        load_generator(ModelRecord("g1-x", "lora", "candidate", None, str(broken), None, None, None, "base"))


def test_a_missing_base_checkpoint_is_a_clear_error(warehouse, tmp_path):
    settings = CandidateSettings(base_model_dir=str(tmp_path / "nowhere"), min_train_rows=4)
    with pytest.raises(SynthConfigError, match="not a transformers checkpoint"):
        train_candidate(gold_mix(), 1, settings, Registry(warehouse), tmp_path / "models")


# ------------------------------------------------------------------ real rounds (slow)
# the frontier: no family of these rounds has levels, so it measures nothing and steers nothing
# task_pool: the frontier reads the generation's pool (families without levels here: nothing to
# measure, so no model is loaded for it)
TRAINING_KEYS = [
    "task_pool",
    "heldout_reasoning",
    "capability_frontier",
    "candidate_model",
    "model_eval",
    "promoted_model",
]


def _round(
    instance,
    db_path,
    tmp_path,
    parent_right: bool,
    require_approval: bool = False,
    require_gain: bool = True,
    judge_diversity: bool = True,
    form: str = "answer",
):
    """One smoke-sized real round over a fixed gold mix stored as generation 1's mix; the
    parent's results are forced (right or wrong on every item). ``form: rationale``: the mix's
    rows are worked rationales of chain_sum, and the held-out items ask for them."""
    from synth_assets.assets._common import GENERATIONS
    from synth_assets.core.warehouse import Warehouse
    from synth_assets.definitions import ALL_ASSETS, ALL_CHECKS
    from synth_assets.resources import GenerationalIOManager, WarehouseResource, default_resources

    wh = Warehouse(db_path)
    mix = gold_mix() if form == "answer" else rationale_mix()
    heldout = SMOKE_HELDOUT if form == "answer" else HeldoutSettings(families=["chain_sum"], items_per_family=10)
    wh.write_generation("mixed_training_set", mix, 1)
    reg = Registry(wh)
    from synth_assets.core.generators.llama_backend import MODEL_ID

    # stored under the key generators write on rows (the base model's name)
    reg.store_scores(scores(heldout_items(heldout, PromptSettings(form=form)), MODEL_ID, right=parent_right))
    instance.add_dynamic_partitions(GENERATIONS.name, ["1"])
    resources = default_resources()  # the production resources (unselected assets' are never built) ...
    whr = WarehouseResource(path=db_path)  # ... on this test's DuckDB file
    run_config = dg.RunConfig(
        ops={
            "task_pool": {
                "config": {
                    "reasoning_gym_families": heldout.families,
                    "tasks_per_family": 2,
                    "humaneval_tasks": 0,
                    "include_synthesized": False,
                }
            },
            "heldout_reasoning": {"config": {"families": heldout.families, "items_per_family": 10, "form": form}},
            "capability_frontier": {"config": {"form": form}},
            "candidate_model": {
                "config": {
                    "max_train_rows": 24,
                    "epochs": 1,
                    "min_train_rows": 4,
                    "artefact_dir": str(tmp_path / "models"),
                    "form": form,
                }
            },
            # judge_diversity=False: no family's answers carry the (unreachable) entropy the rule needs
            "model_eval": {
                "config": {"require_gain": require_gain, **({} if judge_diversity else {"min_parent_entropy": 1e6})}
            },
            "promoted_model": {"config": {"require_approval": require_approval}},
        }
    )
    result = dg.materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=TRAINING_KEYS,
        instance=instance,
        partition_key="1",
        run_config=run_config,
        raise_on_error=False,
        resources={**resources, "warehouse": whr, "io_manager": GenerationalIOManager(warehouse=whr)},
    )
    return result, reg


@pytest.mark.slow
@pytest.mark.model
def test_a_rejected_candidate_leaves_the_parent_in_service(instance, db_path, tmp_path):
    result, reg = _round(instance, db_path, tmp_path, parent_right=True)
    cand = reg.models().filter(pl.col("model_id") != "base").row(0, named=True)
    check = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey("model_eval"), "promotion_gate")
    )
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert (cand["status"], reg.serving(), check.status.value, "promoted_model" in materialized) == (
        "rejected",
        "base",
        "FAILED",
        False,
    )
    assert "MACRO_LOWER: _macro_/heldout" in cand["reason"]


@pytest.mark.slow
@pytest.mark.model
def test_a_candidate_trained_on_worked_rationales_is_evaluated_on_them_in_llama_cpp_and_gated(
    instance, db_path, tmp_path
):
    """A real round on rationale rows: trained, exported, loaded by llama.cpp, asked every held-out
    item in the rationale form, and gated against a parent forced right on every one (so refused)."""
    result, reg = _round(instance, db_path, tmp_path, parent_right=True, form="rationale")
    cand = reg.models().filter(pl.col("model_id") != "base").row(0, named=True)
    chain = HeldoutSettings(families=["chain_sum"], items_per_family=10)
    items = heldout_items(chain, PromptSettings(form="rationale"))
    answered = reg.stored_scores(cand["model_id"], items["item_id"].to_list())
    # the gate stops once its decision is settled, so it may not need every item: what it asked
    # were rationale items (the ids are of this item set, whose prompts all end at "Work:")
    assert (cand["status"], answered.height > 0, items["prompt"].map_elements(is_rationale_prompt).all()) == (
        "rejected",
        True,
        True,
    )


@pytest.mark.slow
@pytest.mark.model
def test_approval_waits_then_the_approved_model_generates_with_lineage(instance, db_path, tmp_path, monkeypatch):
    from synth_assets.cli import main
    from synth_assets.core.generators.generation import SamplingPlan, run_generation
    from synth_assets.core.tasks.sources import reasoning_gym_tasks
    from synth_assets.resources import LlamaCppGeneratorResource, WarehouseResource

    # against an always-wrong parent the candidate is not worse; a gain over the trivial baselines and
    # answers as diverse as the reference's are not forced by one epoch on 24 rows, so the "better"
    # and diversity rules are off for this path (each has its own fast tests)
    result, reg = _round(
        instance,
        db_path,
        tmp_path,
        parent_right=False,
        require_approval=True,
        require_gain=False,
        judge_diversity=False,
    )
    cand = reg.models().filter(pl.col("model_id") != "base").row(0, named=True)
    assert (result.success, cand["status"], reg.serving()) == (True, "awaiting_approval", "base")
    assert main(["--db", db_path, "models", "approve", cand["model_id"]]) == 0
    assert reg.serving() == cand["model_id"]
    # the next generation's generator is the promoted model, resolved from the registry
    gen = LlamaCppGeneratorResource(registry=WarehouseResource(path=db_path)).build()
    rows = run_generation(reasoning_gym_tasks(["gcd"], 2, 42), gen, SamplingPlan(samples_per_task=1), 2)
    gen.close()
    lineage = rows.join(reg.models(), left_on="model", right_on="model_id").select(
        "candidate_id", "model", "parent_id", "mix_generation", "train_rows_hash"
    )
    from synth_assets.core.training.loop import rows_hash
    from synth_assets.core.training.prompt_format import training_pairs

    train = training_pairs(gold_mix().filter(pl.col("split") == "train"), PromptSettings())
    assert (
        lineage.height,
        lineage["parent_id"].unique().to_list(),
        lineage["mix_generation"].unique().to_list(),
        lineage["train_rows_hash"].unique().to_list(),
    ) == (2, ["base"], [1], [rows_hash(train)])
    curve = json.loads(cand["loss_curve"])
    assert [c["epoch"] for c in curve] == [0, 1]


@pytest.mark.slow
@pytest.mark.model
def test_the_gguf_adapter_does_in_llama_cpp_what_the_peft_adapter_does_in_transformers(tmp_path):
    """An adapter trained to answer 'banana' to everything: llama.cpp with the exported GGUF
    and transformers with the PEFT adapter both say it; the base model does not."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synth_assets.core.generators.gguf_adapter import export_adapter
    from synth_assets.core.generators.llama_backend import ensure_model_file
    from synth_assets.core.training.base_model import hf_base_dir
    from synth_assets.core.training.trainer import TrainSettings, train_lora

    questions = [f"Question: What is {a} plus {a + 3}?\nAnswer:" for a in range(12)]
    base = hf_base_dir()
    result = train_lora(
        base,
        [(q, " banana\n") for q in questions[:10]],
        [],
        TrainSettings(epochs=3, batch_size=5, learning_rate=2e-3, min_train_rows=1),
        tmp_path / "adapter",
    )
    gguf = export_adapter(result.adapter_dir, tmp_path / "adapter.gguf")
    from llama_cpp import Llama

    probe = ["Question: What is 40 plus 2?\nAnswer:", "Question: Name a colour.\nAnswer:"]
    llm = Llama(model_path=str(ensure_model_file()), lora_path=str(gguf), n_ctx=256, verbose=False)
    plain = Llama(model_path=str(ensure_model_file()), n_ctx=256, verbose=False)
    tok = AutoTokenizer.from_pretrained(base)
    peft = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(result.adapter_dir)
    ).eval()

    def hf(q: str) -> str:
        ids = tok(q, return_tensors="pt")
        out = peft.generate(**ids, max_new_tokens=4, do_sample=False)
        return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip().split("\n")[0]

    said = [
        (
            llm.create_completion(q, max_tokens=4, temperature=0, stop=["\n"])["choices"][0]["text"].strip(),
            hf(q),
            plain.create_completion(q, max_tokens=4, temperature=0, stop=["\n"])["choices"][0]["text"].strip(),
        )
        for q in probe
    ]
    assert [(a, b, c == "banana") for a, b, c in said] == [("banana", "banana", False)] * 2
    # the batched fast path serves the adapter too (issue 16)
    from synth_assets.core.generators.generation import SampleRequest
    from synth_assets.core.generators.llama_backend import LlamaCppGenerator

    fast = LlamaCppGenerator(lora_path=str(gguf), n_ctx=256, parallel=4)
    assert fast._batched is not None and fast.weights_path.name.endswith(".f16.gguf")  # on the F16 copy
    reqs = [SampleRequest(f"p{i}", q, "probe", 0.0, 1.0, 4, ("\n",), 0, 0) for i, q in enumerate(probe * 2)]
    assert [s.text.strip() for s in fast.generate(reqs)] == ["banana"] * 4
    fast.close()


@pytest.mark.slow
@pytest.mark.model
def test_dpo_moves_the_policy_toward_the_chosen_responses(tmp_path):
    """Preference pairs (chosen " banana", rejected " apple") on the real base model: after DPO
    every held-out pair's chosen response is the more likely one, the validation DPO loss fell,
    and the adapter is written."""
    from synth_assets.core.training.base_model import hf_base_dir
    from synth_assets.core.training.trainer import TrainSettings, train_dpo

    questions = [f"Question: What is {a} plus {a + 3}?\nAnswer:" for a in range(16)]
    pairs = [(q, " banana\n", " apple\n") for q in questions]
    result = train_dpo(
        hf_base_dir(),
        pairs[:12],
        pairs[12:],
        TrainSettings(epochs=3, batch_size=4, learning_rate=2e-3, min_train_rows=1, objective="dpo", dpo_beta=0.5),
        tmp_path / "adapter",
    )
    assert (result.pairs_preferred_after, result.best_epoch) == (1.0, 3)
    assert result.curve[-1]["validation_loss"] < result.curve[0]["validation_loss"]
    assert (result.adapter_dir / "adapter_model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.model
def test_the_trainer_command_interface_with_a_real_command(warehouse, tmp_path):
    """The example command (the embedded trainer behind the external interface) trains, writes
    its manifest, and the platform registers what it names after llama.cpp loaded it."""
    reg = Registry(warehouse)
    command = f"{sys.executable} -m synth_assets.core.training.lora_command --epochs 1 --rank 4"
    row = train_candidate(
        gold_mix(n_per_family=6),
        1,
        CandidateSettings(trainer="command", command=command, min_train_rows=4),
        reg,
        tmp_path / "m",
    )
    record = reg.get(row["model_id"])
    assert (record.kind, record.status, record.adapter_path.endswith("adapter.gguf")) == (
        "external_gguf",
        "candidate",
        True,
    )


def _pairs_frame(n: int, dropped: int) -> pl.DataFrame:
    from synth_assets.core.curate.preferences import PAIR_SCHEMA
    from synth_assets.core.tasks.sources import conform

    return conform(
        [
            {
                "pair_id": f"p{i}",
                "generation": 1,
                "task_id": f"rg/gcd/9/{i}",
                "family": "gcd",
                "domain": "procedural",
                "task_source": "reasoning_gym",
                "prompt": f"GCD of {i} and 6?",
                "chosen": " 1",
                "rejected": " 7",
                "basis": "verdict",
                "drop_reason": "position_flip" if i < dropped else None,
            }
            for i in range(n)
        ],
        PAIR_SCHEMA,
    )


def test_dpo_trains_only_on_pairs_a_program_or_a_calibrated_judge_ordered(warehouse, tmp_path):
    from synth_assets.core.curate.mixing import split_for

    pairs = _pairs_frame(40, dropped=15)
    usable_train = sum(split_for(f"rg/gcd/9/{i}", 0.1) == "train" for i in range(15, 40))
    reg = Registry(warehouse)
    with pytest.raises(
        SynthConfigError,
        match=rf"generation 1 has {usable_train} preference pairs to train on, "
        "fewer than candidate_model.min_train_rows=100",
    ):
        train_candidate(
            gold_mix(), 1, CandidateSettings(objective="dpo", min_train_rows=100), reg, tmp_path / "models", pairs=pairs
        )
    with pytest.raises(SynthConfigError, match="objective 'dpo' needs candidate_model.trainer 'lora'"):
        train_candidate(
            gold_mix(),
            1,
            CandidateSettings(objective="dpo", trainer="command", command="x"),
            reg,
            tmp_path / "models",
            pairs=pairs,
        )
    assert reg.models()["model_id"].to_list() == ["base"]


def test_preference_pairs_take_the_generators_prompt_format():
    from synth_assets.core.training.prompt_format import preference_triple

    row = _pairs_frame(1, 0).row(0, named=True)
    prompt, chosen, rejected = preference_triple(row, PromptSettings())
    assert prompt.startswith("Answer each question with the final answer only.") and prompt.endswith(
        "GCD of 0 and 6?\nAnswer:"
    )
    assert (chosen, rejected) == (" 1\n", " 7\n")


# a named trainer-command double: it trains nothing and names the base model's GGUF, so the
# registry's lineage can be exercised in seconds (a real command is tested above)
BASE_GGUF_TRAINER_DOUBLE = (
    f'{sys.executable} -c \'import json, os; json.dump({{"gguf": os.environ["SYNTH_BASE_GGUF"]}}, '
    f'open(os.environ["SYNTH_MANIFEST"], "w"))\''
)


@pytest.mark.slow
@pytest.mark.model
def test_a_candidate_started_from_an_unpromoted_one_names_it_and_is_gated_against_the_model_in_service(
    warehouse, tmp_path
):
    """The bench's supervised-then-DPO arm: the second stage's parent is the round's supervised
    candidate (lineage), while the gate compares it with the model in service (``against``)."""
    from synth_assets.core.training.loop import evaluate_candidate, score_key

    reg = Registry(warehouse)
    settings = CandidateSettings(trainer="command", command=BASE_GGUF_TRAINER_DOUBLE, min_train_rows=4)
    first = train_candidate(gold_mix(n_per_family=6), 1, settings, reg, tmp_path / "m")
    second = train_candidate(
        gold_mix(n_per_family=6),
        1,
        settings.model_copy(update={"seed": 1}),
        reg,
        tmp_path / "m",
        start_from=first["model_id"],
    )
    items = heldout_items(HeldoutSettings(families=["gcd"], items_per_family=2), PromptSettings())
    evaluate_candidate(second["model_id"], items, gold_mix(n_per_family=6), reg, GateSettings(), against="base")
    ids = items["item_id"].to_list()
    assert (
        reg.get(second["model_id"]).parent_id,
        reg.cached_scores(score_key("base"), ids) is not None,
        reg.cached_scores(score_key(first["model_id"]), ids),
    ) == (first["model_id"], True, None)


def test_a_model_is_evaluated_only_on_the_items_it_has_not_answered_before(warehouse):
    """generator_eval at a new level: the model in service answered the old level's items when it
    was gated; only the new items run (the double records every prompt it is asked)."""
    from synth_assets.core.training.loop import stored_answers
    from tests.doubles import RuleGeneratorDouble

    reg = Registry(warehouse)
    items = heldout_items(
        HeldoutSettings(families=["gcd@1", "gcd@2"], items_per_family=3, levels_above=0), PromptSettings()
    )
    old, new = items.filter(pl.col("family") == "gcd@1"), items.filter(pl.col("family") == "gcd@2")
    stored_answers(reg, "m", old, lambda: RuleGeneratorDouble([(".", " 1")]))
    double = RuleGeneratorDouble([(".", " 1")])
    scores = stored_answers(reg, "m", items, lambda: double)
    assert (len(double.prompts), sorted(scores["item_id"].to_list())) == (
        new.height,
        sorted(items["item_id"].to_list()),
    )


@pytest.mark.slow
@pytest.mark.model
def test_the_base_checkpoint_is_converted_in_a_child_process_so_training_never_holds_its_copies(tmp_path):
    """A fresh interpreter builds the checkpoint into an empty cache: the GGUF's dequantized
    tensors are made in a child (gguf-py is never imported by the caller), and the checkpoint
    is complete (its done-stamp written last)."""
    import subprocess

    code = (
        "import sys; from synth_assets.core.training.base_model import hf_base_dir; "
        f"d = hf_base_dir({str(tmp_path)!r}); print(int((d / 'synth_base.done').exists()), int('gguf' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True)
    assert out.stdout.split() == ["1", "0"]
