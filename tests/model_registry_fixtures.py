"""Registered models without training: a stored mix, a fake adapter folder (a test double, named
as one) and a registry row, as ``train_candidate`` would leave them, for the model-card tests."""

from pathlib import Path

import polars as pl

from synth_assets.core.curate.mixing import MIX_SCHEMA
from synth_assets.core.generators.llama_backend import MODEL_ID
from synth_assets.core.tasks.sources import conform
from synth_assets.core.training.loop import rows_hash
from synth_assets.core.training.registry import Registry
from synth_assets.core.warehouse import Warehouse

# (source, family, origin generation, task source, licence, split): the mix of generation 2
MIX_ROWS = [
    ("synthetic", "chain_sum@1", 1, "reasoning_gym", "Apache-2.0", "train"),
    ("synthetic", "chain_sum@1", 2, "reasoning_gym", "Apache-2.0", "train"),
    ("synthetic", "chain_sum@1", 2, "reasoning_gym", "Apache-2.0", "validation"),
    ("synthetic", "basic_arithmetic@1", 2, "reasoning_gym", "Apache-2.0", "train"),
    ("human", "humaneval", None, "humaneval", "MIT", "train"),
    ("human", "humaneval", None, "humaneval", "MIT", "train"),
    ("human", "humaneval", None, "humaneval", "MIT", "validation"),
]
GENERATION = 2
LOSS_CURVE = [
    {"epoch": 0, "step": 0, "train_loss": 2.4, "validation_loss": 2.5},
    {"epoch": 1, "step": 4, "train_loss": 1.1, "validation_loss": 1.6},
]
HYPERPARAMETERS = {"rank": 16, "alpha": 32.0, "epochs": 1, "objective": "sft", "seed": 0, "trainer": "lora"}


def store_mix(wh: Warehouse, generation: int = GENERATION) -> pl.DataFrame:
    """A small mix of synthetic rows (two families, two origin generations) and human rows."""
    rows = []
    for i, (source, family, origin, task_source, licence, split) in enumerate(MIX_ROWS):
        synthetic = source == "synthetic"
        rows.append(
            {
                "row_id": f"{source[0]}/{i}",
                "generation": generation,
                "source": source,
                "origin_generation": origin,
                "task_id": f"{family}/{i}",
                "family": family,
                "domain": "procedural" if synthetic else "code",
                "split": split,
                "messages": '[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]',
                "prompt": f"question {i}",
                "response": f"answer {i}",
                "license": licence,
                "generator": "llama_cpp" if synthetic else "human",
                "model": MODEL_ID if synthetic else None,
                "model_terms": "Gemma Terms of Use" if synthetic else None,
                "task_source": task_source,
                "verifier": f"reasoning_gym:{family}@0.1.25" if synthetic else None,
                "weight": 1.0,
                "candidate_id": f"c{i}" if synthetic else None,
            }
        )
    mix = conform(rows, MIX_SCHEMA)
    wh.write_generation("mixed_training_set", mix, generation)
    return mix


def fake_adapter(folder: Path) -> Path:
    """A TEST DOUBLE of a trained model's artefacts: the files ``train_candidate`` writes (a PEFT
    folder, PEFT's own README and a GGUF adapter), holding placeholder bytes, not weights."""
    peft = folder / "adapter"
    peft.mkdir(parents=True)
    (peft / "adapter_config.json").write_text('{"peft_type": "LORA", "note": "test double"}')
    (peft / "adapter_model.safetensors").write_bytes(b"test double: not weights")
    (peft / "README.md").write_text("PEFT's generated card (test double)\n")
    (folder / "adapter.gguf").write_bytes(b"GGUF test double: not an adapter")
    return folder


def register_candidate(
    reg: Registry, artefact_root: Path, model_id: str = "g2-0123456789", generation: int = GENERATION
) -> dict:
    """Register a candidate whose artefacts are the test double, trained on the stored mix."""
    folder = fake_adapter(artefact_root / model_id)
    mix = reg.wh.read("mixed_training_set", generation=generation)
    train = mix.filter(pl.col("split") == "train")
    row = {
        "model_id": model_id,
        "parent_id": reg.serving(),
        "base_model": MODEL_ID,
        "kind": "lora",
        "mix_generation": generation,
        "train_rows_hash": rows_hash(list(zip(train["prompt"], train["response"]))),
        "train_rows": train.height,
        "validation_rows": mix.height - train.height,
        "train_tokens": 321,
        "hyperparameters": HYPERPARAMETERS,
        "prompt_settings": {"few_shot": 2, "answer_format": "rationale"},
        "loss_curve": LOSS_CURVE,
        "wall_s": 12.5,
        "adapter_path": str(folder / "adapter.gguf"),
        "adapter_dir": str(folder / "adapter"),
    }
    reg.register(row)
    return row


def gate_scores(rate: float = 0.6, parent_rate: float = 0.3) -> dict:
    """The registry's ``scores`` as ``evaluate_candidate`` stores them (loop.summary_scores)."""
    row = {
        "rate": rate,
        "low": rate - 0.2,
        "high": rate + 0.2,
        "parent_rate": parent_rate,
        "parent_low": parent_rate - 0.2,
        "parent_high": parent_rate + 0.2,
        "n": 20,
        "most_common_rate": 0.1,
        "last_shot_rate": 0.15,
        "p_vs_parent": 0.01,
        "significant_gain": True,
        "flag": "",
    }
    return {
        "gcd/heldout": row,
        "gcd/harder": row | {"rate": rate - 0.1},
        "gcd/rephrased": row | {"rate": rate - 0.05},
        "_macro_/heldout": {"rate": rate, "parent_rate": parent_rate, "low": None, "high": None, "flag": ""},
    }


def promote_endpoint_model(reg: Registry, base_url: str, model: str, model_id: str = "g1-endpoint0001") -> str:
    """Register and promote a model that an OpenAI-compatible server serves (what a trainer
    command's manifest naming ``base_url`` and ``model`` leaves): it is then in service."""
    reg.register(
        {
            "model_id": model_id,
            "parent_id": reg.serving(),
            "base_model": MODEL_ID,
            "kind": "endpoint",
            "endpoint_base_url": base_url,
            "endpoint_model": model,
        }
    )
    reg.decide(model_id, "promoted", "test: promoted by hand")
    return model_id
