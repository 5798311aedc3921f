"""The embedded LoRA trainer as an external trainer command: a working example of the
interface in ``external`` (and what its test runs). A GPU user replaces it with a script that
reads the same variables and writes the same manifest.

    python -m synth_assets.core.training.lora_command [--epochs N] [--rank R]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _rows(path: str) -> list[tuple[str, str]]:
    with open(path) as f:
        return [(r["prompt"], r["completion"]) for r in map(json.loads, f) if r]


def main() -> None:
    from synth_assets.core.generators.gguf_adapter import export_adapter
    from synth_assets.core.training.base_model import hf_base_dir
    from synth_assets.core.training.trainer import TrainSettings, train_lora

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--min-train-rows", type=int, default=1)
    args = ap.parse_args()
    out = Path(os.environ["SYNTH_OUTPUT_DIR"])
    settings = TrainSettings(
        epochs=args.epochs,
        rank=args.rank,
        alpha=2.0 * args.rank,
        min_train_rows=args.min_train_rows,
        seed=int(os.environ.get("SYNTH_SEED", 0)),
    )
    result = train_lora(
        hf_base_dir(log=print),
        _rows(os.environ["SYNTH_TRAIN_FILE"]),
        _rows(os.environ["SYNTH_VALIDATION_FILE"]),
        settings,
        out / "adapter",
        log=print,
    )
    gguf = export_adapter(result.adapter_dir, out / "adapter.gguf")
    Path(os.environ["SYNTH_MANIFEST"]).write_text(
        json.dumps(
            {
                "adapter_gguf": str(gguf),
                "adapter_dir": str(result.adapter_dir),
                "loss_curve": result.curve,
                "train_tokens": result.train_tokens,
            }
        )
    )


if __name__ == "__main__":
    main()
