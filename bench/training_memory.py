"""Training memory and speed: the trainer before and after the memory work, and TRL's SFTTrainer,
on the same rows, in one run.

The rows are the default run's mix, rebuilt from real text: 100 synthetic rows (chain_sum@1,
basic_arithmetic@1 and projectile_design tasks from the default task pool, each with its
reference answer as the completion, in the few-shot prompt format the generator is trained on)
and HumanEval's human split (prompt and canonical solution, the code rows that make the long
sequences). Each variant trains LoRA (rank 16, every projection) from the packaged model for
``--steps`` optimizer steps of 8 rows in a process of its own, so its peak RSS (``ru_maxrss``) is
its own; the model's load is part of it, as in a run.

Variants:
- ``before``: the trainer at git revision ``--before`` (default ``baab5f7``, the last without the
  memory work), loaded from that revision
- ``after``: the trainer in the working tree, default settings
- ``after_micro1024``, ``after_checkpointing``: the same trainer with larger micro-batches, and
  with activations recomputed in the backward pass
- ``trl``: TRL's SFTTrainer with the same LoRA, rows, batches of 8, learning rate, warm-up and
  steps (completion-only loss; TRL's defaults otherwise, gradient checkpointing on), when ``trl``
  is importable. It is not in the lock; put it beside the environment for the bench only:
  ``.venv/bin/pip install --target /tmp/trl_env --no-deps trl accelerate datasets dill
  multiprocess xxhash`` and run with ``PYTHONPATH=/tmp/trl_env``

Run: ``.venv/bin/python bench/training_memory.py [--steps 18] [--variants before,after,...]``
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ["before", "after", "after_micro1024", "after_checkpointing", "trl"]


def mix_rows() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, validation) (prompt, target) pairs shaped like the default run's mix."""
    import polars as pl

    from synth_assets.core.generators.generation import PromptSettings
    from synth_assets.core.tasks.sources import DEFAULT_FAMILIES, humaneval_references, reasoning_gym_tasks
    from synth_assets.core.training.prompt_format import training_pairs

    tasks = reasoning_gym_tasks(DEFAULT_FAMILIES, 34, seed=0).head(100)
    synthetic = tasks.select(
        "prompt",
        pl.col("answer").alias("response"),
        pl.lit("reasoning").alias("domain"),
        "family",
        pl.col("source").alias("task_source"),
    )
    human = humaneval_references("human", 0.3, 0.2).select(
        "prompt", "response", "domain", "family", pl.col("source").alias("task_source")
    )
    rows = training_pairs(pl.concat([synthetic, human], how="vertical_relaxed"), PromptSettings())
    validation = rows[::10]
    train = [r for i, r in enumerate(rows) if i % 10]
    return train, validation


def child(variant: str, steps: int, before_rev: str, out: str) -> None:
    """Train one variant; write its figures as JSON to ``out``."""
    train, validation = mix_rows()
    rows = random.Random(0).sample(train, min(len(train), steps * 8))  # code and answer rows, as a round mixes them
    from synth_assets.core.training.base_model import hf_base_dir

    base = hf_base_dir()
    t0 = time.monotonic()
    if variant == "trl":
        result = _trl(base, rows, validation)
    else:
        if variant == "before":
            src = subprocess.run(
                ["git", "show", f"{before_rev}:synth_assets/core/training/trainer.py"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            module = type(sys)("trainer_before")
            sys.modules["trainer_before"] = module  # dataclasses resolve their module by name
            exec(compile(src, "trainer_before.py", "exec"), module.__dict__)
        else:
            from synth_assets.core.training import trainer as module
        extra = {
            "after_micro1024": {"micro_batch_tokens": 1024},
            "after_checkpointing": {"gradient_checkpointing": True},
        }.get(variant, {})
        settings = module.TrainSettings(epochs=1, seed=0, **extra)
        with tempfile.TemporaryDirectory() as d:
            r = module.train_lora(base, rows, validation, settings, Path(d) / "adapter")
        result = {
            "steps": r.steps,
            "train_tokens": r.train_tokens,
            "target_tokens": r.target_tokens,
            "validation_loss_before": r.curve[0]["validation_loss"],
            "train_loss": r.curve[-1]["train_loss"],
            "validation_loss_after": r.curve[-1]["validation_loss"],
        }
    result |= {
        "variant": variant,
        "wall_s": round(time.monotonic() - t0, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }
    result["tokens_per_s"] = round(result["train_tokens"] / result["wall_s"], 1)
    Path(out).write_text(json.dumps(result))


def _trl(base: Path, rows: list[tuple[str, str]], validation: list[tuple[str, str]]) -> dict:
    """TRL's SFTTrainer with the platform's LoRA on prompt-completion rows (loss on the
    completion only), one epoch in batches of 8."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from synth_assets.core.training.trainer import LORA_TARGETS, TrainSettings

    s = TrainSettings()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ds = Dataset.from_list([{"prompt": p, "completion": c} for p, c in rows])
    with tempfile.TemporaryDirectory() as d:
        cfg = SFTConfig(
            output_dir=d,
            per_device_train_batch_size=s.batch_size,
            num_train_epochs=1,
            learning_rate=s.learning_rate,
            warmup_steps=max(1, -(-len(rows) // s.batch_size) // 10),  # as the platform's trainer warms up
            lr_scheduler_type="linear",
            max_length=s.max_length,
            completion_only_loss=True,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            use_cpu=True,
            seed=0,
        )
        lora = LoraConfig(
            r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
        )
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=lora)
        out = trainer.train()
    n_tokens = sum(len(tok(p + c)["input_ids"]) for p, c in rows)
    return {
        "steps": out.global_step,
        "train_tokens": n_tokens,
        "train_loss": out.training_loss,
        "gradient_checkpointing": cfg.gradient_checkpointing,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=18)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--before", default="baab5f7", help="git revision of the before trainer (the last one without the memory work)"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.steps, args.before, args.out)
        return
    results = []
    for v in args.variants.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            p = subprocess.run(
                [sys.executable, __file__, "--child", v, "--steps", str(args.steps), "--before", args.before]
                + ["--out", f.name]
            )
            if p.returncode != 0:
                print(f"{v}: failed (exit {p.returncode})")
                continue
            results.append(json.loads(Path(f.name).read_text()))
            print(json.dumps(results[-1]), flush=True)
    print(f"\n{'variant':<22}{'peak RSS GB':>12}{'wall s':>8}{'tokens/s':>10}{'train loss':>11}{'val loss':>10}")
    for r in results:
        val = r.get("validation_loss_after")
        print(
            f"{r['variant']:<22}{r['peak_rss_gb']:>12}{r['wall_s']:>8}{r['tokens_per_s']:>10}"
            f"{r['train_loss']:>11.4f}{(f'{val:.4f}' if val is not None else '-'):>10}"
        )


if __name__ == "__main__":
    main()
