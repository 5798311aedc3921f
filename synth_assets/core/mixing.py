"""Synthetic plus human data in chat format: accumulated, split by task, floored on human share.

Synthetic data is never used alone: the model-collapse literature (Shumailov et al. 2024;
Gerstgrasser et al. 2024) shows that replacing real data with generated data degrades a
model generation after generation, while accumulating it alongside the real data does not.
So the mix of generation g holds every accepted synthetic row of generations 1..g plus the
human reference, and a floor on the human share that the mix may never fall under.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from synth_assets.core.errors import HumanFloorError, SynthConfigError
from synth_assets.core.tasks import conform

MIX_SCHEMA: dict[str, pl.DataType] = {
    "row_id": pl.String,
    "generation": pl.Int64,
    "source": pl.String,  # synthetic | human
    "origin_generation": pl.Int64,  # the generation a synthetic row was made in; null for human rows
    "task_id": pl.String,
    "family": pl.String,
    "domain": pl.String,
    "split": pl.String,  # train | validation
    "messages": pl.String,  # JSON list of {"role", "content"}
    "prompt": pl.String,
    "response": pl.String,
    "license": pl.String,
    "generator": pl.String,
    "model": pl.String,
    "candidate_id": pl.String,
}


@dataclass(frozen=True)
class MixSettings:
    human_floor: float = 0.35
    on_floor_violation: str = "fail"  # fail | downsample
    validation_fraction: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        if not 0.0 < self.human_floor <= 1.0:
            raise SynthConfigError(f"mixed_training_set.human_floor must be in (0, 1], got {self.human_floor}")
        if self.on_floor_violation not in ("fail", "downsample"):
            raise SynthConfigError(
                "mixed_training_set.on_floor_violation must be 'fail' or 'downsample', "
                f"got {self.on_floor_violation!r}"
            )
        if not 0.0 <= self.validation_fraction < 1.0:
            raise SynthConfigError(
                f"mixed_training_set.validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )


def _unit(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)


def split_for(task_id: str, validation_fraction: float) -> str:
    """By task, so no task has rows in both splits."""
    return "validation" if _unit(f"split/{task_id}") < validation_fraction else "train"


def _messages(prompt: str, response: str) -> str:
    return json.dumps([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])


def build_mix(
    accepted: pl.DataFrame, human: pl.DataFrame, generation: int, settings: MixSettings
) -> tuple[pl.DataFrame, dict]:
    """The mix for ``generation`` from accepted rows of generations <= it and the human set."""
    settings.validate()
    if human.height == 0:
        raise HumanFloorError(
            "mixed_training_set: human_reference is empty, and synthetic data is never mixed alone; "
            "enable human_reference.include_humaneval or list human_reference.user_files"
        )
    synth = accepted.filter(pl.col("generation") <= generation)
    cap = int(human.height * (1 - settings.human_floor) / settings.human_floor + 1e-9)
    dropped_for_floor = 0
    if synth.height > cap:
        share = human.height / (human.height + synth.height)
        if settings.on_floor_violation == "fail":
            raise HumanFloorError(
                f"mixed_training_set: the human share would be {share:.1%} ({human.height} human rows, "
                f"{synth.height} synthetic rows), below the floor of {settings.human_floor:.0%}. "
                f"Add human data (human_reference.user_files), lower mixed_training_set.human_floor, or set "
                f"mixed_training_set.on_floor_violation to 'downsample' to keep at most {cap} synthetic rows."
            )
        # keep an even, deterministic sample across generations rather than the newest rows
        synth = (
            synth.with_columns(_k=pl.col("candidate_id").map_elements(lambda c: _unit(f"{settings.seed}/{c}"),
                                                                      return_dtype=pl.Float64))
            .sort("_k")
            .head(cap)
            .drop("_k")
        )
        dropped_for_floor = accepted.height - synth.height
    rows = []
    for r in synth.iter_rows(named=True):
        rows.append({
            "row_id": f"s/{r['candidate_id']}", "generation": generation, "source": "synthetic",
            "origin_generation": r["generation"], "task_id": r["task_id"], "family": r["family"],
            "domain": r["domain"], "split": split_for(r["task_id"], settings.validation_fraction),
            "messages": _messages(r["prompt"], r["training_text"]), "prompt": r["prompt"],
            "response": r["training_text"], "license": r["license"], "generator": r["generator"],
            "model": r["model"], "candidate_id": r["candidate_id"],
        })
    for r in human.iter_rows(named=True):
        rows.append({
            "row_id": f"h/{r['ref_id']}", "generation": generation, "source": "human",
            "origin_generation": None, "task_id": r["ref_id"], "family": r["family"], "domain": r["domain"],
            "split": split_for(r["ref_id"], settings.validation_fraction),
            "messages": _messages(r["prompt"], r["response"]), "prompt": r["prompt"], "response": r["response"],
            "license": r["license"], "generator": "human", "model": None, "candidate_id": None,
        })
    mix = conform(rows, MIX_SCHEMA)
    share = human.height / mix.height
    assert share + 1e-9 >= settings.human_floor, "floor invariant broken"
    stats = {
        "human_rows": human.height,
        "synthetic_rows": synth.height,
        "human_share": round(share, 4),
        "human_floor": settings.human_floor,
        "synthetic_dropped_for_floor": dropped_for_floor,
        "train_rows": int((mix["split"] == "train").sum()),
        "validation_rows": int((mix["split"] == "validation").sum()),
    }
    return mix, stats


def export_mix(mix: pl.DataFrame, out_dir: str | Path) -> dict[str, str]:
    """Chat-format JSONL per split, written to a temp name then renamed: never half-written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "validation"):
        part = mix.filter(pl.col("split") == split)
        target = out / f"{split}.jsonl"
        tmp = target.with_suffix(".jsonl.partial")
        with tmp.open("w", encoding="utf-8") as f:
            for r in part.iter_rows(named=True):
                meta = {k: r[k] for k in ("row_id", "source", "origin_generation", "task_id", "family",
                                          "domain", "license", "generator", "model")}
                f.write(json.dumps({"messages": json.loads(r["messages"]), **meta}) + "\n")
        os.replace(tmp, target)
        paths[split] = str(target)
    return paths
