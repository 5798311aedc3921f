"""A user's trainer command (a GPU box with TRL, axolotl or torchtune) as the loop's trainer.

The platform writes the train and validation rows, runs the command (no shell; arguments are
split with shlex) with these environment variables, and reads back a manifest:

  SYNTH_TRAIN_FILE        JSONL, one row per line: {"prompt", "completion", "messages", ...}
  SYNTH_VALIDATION_FILE   the same, for validation loss / early stopping
  SYNTH_OUTPUT_DIR        an empty directory for the command's artefacts
  SYNTH_MANIFEST          where the command writes its manifest (JSON, below)
  SYNTH_BASE_GGUF         the packaged base model's GGUF
  SYNTH_PARENT_ADAPTER    the model in service's PEFT adapter directory, or empty
  SYNTH_SEED              the training seed

The manifest names what serves the new model, either llama.cpp files:
  {"gguf": "<base GGUF>" (optional: default the packaged one), "adapter_gguf": "<LoRA GGUF>" (optional)}
or an OpenAI-compatible server:
  {"base_url": "http://host:8000/v1", "model": "<served name>"}
plus optionally {"loss_curve": [{"epoch", "step", "train_loss", "validation_loss"}], "train_tokens": n,
"adapter_dir": "<PEFT adapter>"}. ``python -m synth_assets.core.training.lora_command`` is a
working example (the embedded LoRA trainer behind this interface).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from synth_assets.core.errors import SynthConfigError


def write_rows(path: Path, pairs: Sequence[tuple[str, str]]) -> None:
    with path.open("w") as f:
        for prompt, completion in pairs:
            f.write(
                json.dumps(
                    {
                        "prompt": prompt,
                        "completion": completion,
                        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
                    }
                )
                + "\n"
            )


def run_trainer_command(
    command: str,
    train: Sequence[tuple[str, str]],
    validation: Sequence[tuple[str, str]],
    out_dir: Path,
    base_gguf: str,
    parent_adapter: str | None,
    seed: int,
    timeout_s: float,
    log: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Run ``command`` and return its manifest (checked: the files it names exist)."""
    argv = shlex.split(command)
    if not argv:
        raise SynthConfigError("candidate_model.command: empty; give the trainer command to run")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_file, val_file, manifest = out_dir / "train.jsonl", out_dir / "validation.jsonl", out_dir / "manifest.json"
    manifest.unlink(missing_ok=True)
    write_rows(train_file, train)
    write_rows(val_file, validation)
    env = dict(os.environ) | {
        "SYNTH_TRAIN_FILE": str(train_file),
        "SYNTH_VALIDATION_FILE": str(val_file),
        "SYNTH_OUTPUT_DIR": str(out_dir),
        "SYNTH_MANIFEST": str(manifest),
        "SYNTH_BASE_GGUF": base_gguf,
        "SYNTH_PARENT_ADAPTER": parent_adapter or "",
        "SYNTH_SEED": str(seed),
    }
    log(f"running the trainer command: {command}")
    try:
        proc = subprocess.run(argv, env=env, cwd=out_dir, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise SynthConfigError(
            f"candidate_model.command: {argv[0]!r} was not found; give a full path or put it on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise SynthConfigError(
            f"candidate_model.command timed out after {timeout_s:.0f}s (raise candidate_model.command_timeout_s)"
        ) from None
    (out_dir / "trainer.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SynthConfigError(
            f"candidate_model.command exited with status {proc.returncode}; its last lines:\n"
            + "\n".join(tail)
            + f"\n(full output: {out_dir / 'trainer.log'})"
        )
    if not manifest.exists():
        raise SynthConfigError(
            f"candidate_model.command finished but wrote no manifest at $SYNTH_MANIFEST "
            f"({manifest}); it must write JSON naming 'adapter_gguf'/'gguf' or 'base_url'+'model'"
        )
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError as exc:
        raise SynthConfigError(f"{manifest}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SynthConfigError(f"{manifest}: expected a JSON object")
    endpoint = bool(data.get("base_url")) and bool(data.get("model"))
    files = [k for k in ("gguf", "adapter_gguf") if data.get(k)]
    if not endpoint and not files:
        raise SynthConfigError(
            f"{manifest}: names no model; give 'adapter_gguf' and/or 'gguf', or 'base_url' and 'model'"
        )
    for k in files:
        p = Path(data[k])
        if not p.is_absolute():
            p = out_dir / p
        if not p.exists():
            raise SynthConfigError(f"{manifest}: {k} points to {p}, which does not exist")
        data[k] = str(p)
    return data
