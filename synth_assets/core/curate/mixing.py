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
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field, field_validator

from synth_assets.core.errors import HumanFloorError
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform

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
    "license": pl.String,  # of the task/reference source
    "generator": pl.String,
    "model": pl.String,
    "model_terms": pl.String,  # of the model that wrote a synthetic row
    "task_source": pl.String,  # reasoning_gym | humaneval | user | ...
    "verifier": pl.String,  # what checked a synthetic row (verifier_name@version)
    "weight": pl.Float64,  # the keep fraction its generation had in this mix
    "candidate_id": pl.String,
    "response_tokens": pl.Int64,  # the response's tokens when the floor counts tokens (else null)
}


class MixSettings(Settings):
    """How synthetic and human rows are mixed, split and weighted across generations."""

    human_floor: float = Field(default=0.35, gt=0, le=1, description="the human share the mix may never fall under")
    # tokens by default: training's loss is the mean over the batch's response tokens, so the
    # human share of what a model learns from is the human share of response tokens. Counted in
    # rows, 56 HumanEval solutions (about 60 tokens each) capped a default run at 104 synthetic
    # rows of a few tokens each, a mix whose training signal was 80% human (2026-12-07)
    floor_by: Literal["tokens", "rows"] = Field(
        default="tokens",
        description="what the human share counts: response tokens (what training's loss averages over) or rows",
    )
    # downsample by default: verified rows accumulate every generation while the human rows stay
    # as many, so the second default run crossed the floor (56 human rows against 285 synthetic,
    # 2026-12-07) and failed; an even sample across generations keeps the floor and the run going
    on_floor_violation: Literal["fail", "downsample"] = Field(
        default="downsample",
        description="keep an even sample of synthetic rows (across generations) that respects the floor, "
        "or fail the run",
    )
    validation_fraction: float = Field(default=0.1, ge=0, lt=1, description="share of tasks in validation")
    seed: int = Field(default=0, description="seed of the split and of downsampling")
    window: int | None = Field(
        default=None, ge=1, description="only the newest N generations' synthetic rows (default: all, accumulate)"
    )
    generation_weights: dict[str, float] = Field(
        default={}, description="keep fraction (0-1) of a generation's synthetic rows, by generation number"
    )
    age_decay: float = Field(
        default=1.0, gt=0, le=1, description="keep fraction multiplied by this per generation of age"
    )
    decontamination_ngram: int = Field(
        default=13, ge=3, description="human rows sharing a word n-gram this long with a held-out item are left out"
    )
    review_policy: Literal["exclude_rejected", "require_acceptance"] = Field(
        default="exclude_rejected",
        description="leave out rows reviewers rejected; or also hold back flagged rows until someone accepts them",
    )

    @field_validator("generation_weights")
    @classmethod
    def _keep_fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for g, w in v.items():
            if not str(g).isdigit():
                raise ValueError(f'generation_weights: keys are generation numbers like "1", got {g!r}')
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"generation_weights[{g}] must be a keep fraction in [0, 1], got {w}")
        return v

    def weight(self, origin: int, current: int) -> float:
        w = self.generation_weights.get(str(origin), 1.0)
        return w * self.age_decay ** (current - origin)


def _unit(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)


def split_for(task_id: str, validation_fraction: float) -> str:
    """By task, so no task has rows in both splits; stable as the task set grows."""
    return "validation" if _unit(f"split/{task_id}") < validation_fraction else "train"


def stratified_splits(tasks: pl.DataFrame, validation_fraction: float) -> dict[str, str]:
    """task_id -> split, per domain: the hash split, plus the lowest-hash task of any domain
    with at least two tasks that the hash left without a validation task (small domains such
    as eight HumanEval tasks would otherwise never be validated)."""
    out: dict[str, str] = {}
    for _domain, ids in tasks.group_by("domain").agg(pl.col("task_id").unique()).iter_rows():
        ids = sorted(ids, key=lambda t: _unit(f"split/{t}"))
        for t in ids:
            out[t] = split_for(t, validation_fraction)
        if validation_fraction > 0 and len(ids) >= 2 and all(out[t] == "train" for t in ids):
            out[ids[0]] = "validation"
    return out


def _messages(prompt: str, response: str) -> str:
    return json.dumps([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}])


def build_mix(
    accepted: pl.DataFrame,
    human: pl.DataFrame,
    generation: int,
    settings: MixSettings,
    count_tokens: Callable[[str], int] | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The mix for ``generation`` from accepted rows of generations <= it and the human set.
    ``count_tokens`` counts a response's tokens (needed when ``settings.floor_by`` is tokens)."""
    if settings.floor_by == "tokens" and count_tokens is None:
        raise ValueError("build_mix: floor_by='tokens' needs count_tokens")
    if human.height == 0:
        raise HumanFloorError(
            "mixed_training_set: human_reference is empty, and synthetic data is never mixed alone; "
            "enable human_reference.include_humaneval or list human_reference.user_files"
        )
    synth = accepted.filter(pl.col("generation") <= generation)
    window_dropped = 0
    if settings.window is not None:
        before = synth.height
        synth = synth.filter(pl.col("generation") > generation - settings.window)
        window_dropped = before - synth.height
    # per-generation keep fractions: a deterministic sample of each generation's rows
    synth = synth.with_columns(
        pl.col("generation")
        .map_elements(lambda g: settings.weight(g, generation), return_dtype=pl.Float64)
        .alias("_w"),
        pl.col("candidate_id")
        .map_elements(lambda c: _unit(f"{settings.seed}/{c}"), return_dtype=pl.Float64)
        .alias("_k"),
    )
    before = synth.height
    synth = synth.filter(pl.col("_k") < pl.col("_w"))
    weight_dropped = before - synth.height

    def tokens(texts: pl.Series) -> list[int]:
        return [count_tokens(t or "") if count_tokens else 1 for t in texts.to_list()]

    synth = synth.with_columns(pl.Series("_t", tokens(synth["training_text"]), dtype=pl.Int64))
    human_tokens = tokens(human["response"])
    by_tokens = settings.floor_by == "tokens"
    human_units = sum(human_tokens) if by_tokens else human.height
    cap = int(human_units * (1 - settings.human_floor) / settings.human_floor + 1e-9)
    synth_units = int(synth["_t"].sum()) if by_tokens else synth.height
    dropped_for_floor = 0
    if synth_units > cap:
        share = human_units / (human_units + synth_units)
        unit = "response tokens" if by_tokens else "rows"
        if settings.on_floor_violation == "fail":
            raise HumanFloorError(
                f"mixed_training_set: the human share would be {share:.1%} of {unit} ({human_units} human, "
                f"{synth_units} synthetic), below the floor of {settings.human_floor:.0%}. "
                f"Add human data (human_reference.user_files), lower mixed_training_set.human_floor, or set "
                f"mixed_training_set.on_floor_violation to 'downsample' to keep at most {cap} synthetic {unit}."
            )
        synth = _stratified_sample(synth, cap, "_t" if by_tokens else None)
        dropped_for_floor = before - weight_dropped - synth.height
    splits = stratified_splits(
        pl.concat([synth.select("task_id", "domain"), human.select(pl.col("ref_id").alias("task_id"), "domain")]),
        settings.validation_fraction,
    )
    rows = []
    for r in synth.iter_rows(named=True):
        rows.append(
            {
                "row_id": f"s/{r['candidate_id']}",
                "generation": generation,
                "source": "synthetic",
                "origin_generation": r["generation"],
                "task_id": r["task_id"],
                "family": r["family"],
                "domain": r["domain"],
                "split": splits[r["task_id"]],
                "messages": _messages(r["prompt"], r["training_text"]),
                "prompt": r["prompt"],
                "response": r["training_text"],
                "license": r["license"],
                "generator": r["generator"],
                "model": r["model"],
                "model_terms": r.get("model_terms"),
                "task_source": r["source"],
                "verifier": f"{r.get('verifier_name') or r['verifier']}@{r.get('verifier_version') or '?'}",
                "weight": r["_w"],
                "candidate_id": r["candidate_id"],
            }
        )
    for r in human.iter_rows(named=True):
        rows.append(
            {
                "row_id": f"h/{r['ref_id']}",
                "generation": generation,
                "source": "human",
                "origin_generation": None,
                "task_id": r["ref_id"],
                "family": r["family"],
                "domain": r["domain"],
                "split": splits[r["ref_id"]],
                "messages": _messages(r["prompt"], r["response"]),
                "prompt": r["prompt"],
                "response": r["response"],
                "license": r["license"],
                "generator": "human",
                "model": None,
                "model_terms": None,
                "task_source": r["source"],
                "verifier": None,
                "weight": 1.0,
                "candidate_id": None,
            }
        )
    mix = conform(rows, MIX_SCHEMA).with_columns(  # the rows were built in this order: synthetic, human
        pl.Series("response_tokens", synth["_t"].to_list() + human_tokens, dtype=pl.Int64)
        if by_tokens
        else pl.lit(None, dtype=pl.Int64).alias("response_tokens")
    )
    share = human.height / mix.height
    floor_share = human_share_of(mix)[0]  # in the floor's unit: tokens when they were counted
    token_share = floor_share if by_tokens else None
    assert floor_share + 1e-9 >= settings.human_floor, "floor invariant broken"
    stats = {
        "human_rows": human.height,
        "synthetic_rows": synth.height,
        "human_share": round(share, 4),
        "human_token_share": round(token_share, 4) if token_share is not None else None,
        "floor_by": settings.floor_by,
        "human_floor": settings.human_floor,
        "synthetic_dropped_for_floor": dropped_for_floor,
        "synthetic_left_out_by_window": window_dropped,
        "synthetic_left_out_by_weight": weight_dropped,
        "train_rows": int((mix["split"] == "train").sum()),
        "validation_rows": int((mix["split"] == "validation").sum()),
    }
    return mix, stats


def human_share_of(mix: pl.DataFrame) -> tuple[float, str]:
    """(the mix's human share, its unit): of response tokens when the mix counted them (the floor
    it was built under counted tokens), else of rows."""
    human = pl.col("source") == "human"
    if "response_tokens" in mix.columns and mix.height and mix["response_tokens"].null_count() == 0:
        total = int(mix["response_tokens"].sum())
        return (int(mix.filter(human)["response_tokens"].sum()) / total if total else 0.0), "response tokens"
    return (mix.filter(human).height / mix.height if mix.height else 0.0), "rows"


def _stratified_sample(synth: pl.DataFrame, cap: int, weight: str | None = None) -> pl.DataFrame:
    """At most ``cap`` rows (or, with ``weight``, rows whose ``weight`` sums to at most ``cap``)
    keeping each domain's share, lowest _k first: an even, deterministic sample across generations
    and domains rather than the newest rows."""
    if weight is not None:
        totals = dict(synth.group_by("domain").agg(pl.col(weight).sum()).iter_rows())
        whole = sum(totals.values()) or 1
        parts = [
            synth.filter(pl.col("domain").eq_missing(d)).sort("_k").filter(pl.col(weight).cum_sum() <= cap * t / whole)
            for d, t in totals.items()
        ]
        return pl.concat(parts) if parts else synth.head(0)
    sizes = dict(synth.group_by("domain").len().iter_rows())
    total = sum(sizes.values())
    exact = {d: cap * n / total for d, n in sizes.items()}
    quota = {d: int(q) for d, q in exact.items()}
    for d in sorted(exact, key=lambda d: (quota[d] - exact[d], str(d)))[: cap - sum(quota.values())]:
        quota[d] += 1
    parts = [synth.filter(pl.col("domain").eq_missing(d)).sort("_k").head(q) for d, q in quota.items()]
    return pl.concat(parts) if parts else synth.head(0)


EXPORT_COLUMNS = (
    "row_id",
    "source",
    "origin_generation",
    "task_id",
    "family",
    "domain",
    "license",
    "generator",
    "model",
    "model_terms",
    "task_source",
    "verifier",
    "candidate_id",
)


def export_mix(mix: pl.DataFrame, out_dir: str | Path, card: str | None = None) -> dict[str, str]:
    """Chat-format JSONL and Parquet per split (provenance columns beside the messages) and the
    dataset card; each file is written under a temporary name and renamed, never half-written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "validation"):
        part = mix.filter(pl.col("split") == split).with_columns(
            pl.col("messages").str.json_decode(pl.List(pl.Struct({"role": pl.String, "content": pl.String})))
        )
        target = out / f"{split}.jsonl"
        tmp = target.with_suffix(".jsonl.partial")
        part.select("messages", *EXPORT_COLUMNS).write_ndjson(tmp)
        os.replace(tmp, target)
        paths[split] = str(target)
        pq = out / f"{split}.parquet"
        tmp = out / f"{split}.parquet.partial"
        part.select("messages", *EXPORT_COLUMNS, "prompt", "response", "weight").write_parquet(tmp)
        os.replace(tmp, pq)
        paths[f"{split}_parquet"] = str(pq)
    if card is not None:
        target = out / "README.md"
        tmp = out / "README.md.partial"
        tmp.write_text(card, encoding="utf-8")
        os.replace(tmp, target)
        paths["card"] = str(target)
    return paths
