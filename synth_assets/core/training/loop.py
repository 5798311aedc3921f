"""One round of the loop: train a candidate on a mix, evaluate it against the model in service,
and decide. The assets in ``synth_assets/assets/training.py`` call these; so does the
benchmark, so the benchmark measures exactly what the platform does.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import Field

from synth_assets.core.curate.mixing import split_for
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import PromptSettings, TextGenerator
from synth_assets.core.generators.llama_backend import MODEL_ID, BatchedWeights, ensure_model_file
from synth_assets.core.stats import wilson
from synth_assets.core.training.evaluation import evaluate
from synth_assets.core.training.gate import GateSettings, compare, decision, settled
from synth_assets.core.training.heldout import decontaminate, trivial_baselines
from synth_assets.core.training.prompt_format import preference_triple, training_pairs
from synth_assets.core.training.registry import ModelRecord, Registry
from synth_assets.core.training.trainer import TrainSettings

Log = Callable[[str], None]


class CandidateSettings(TrainSettings, PromptSettings):
    """How a candidate is trained (the LoRA settings, the trainer, and the prompt format, which
    must be raw_candidates' own: the model is trained in the format it is prompted with)."""

    trainer: Literal["lora", "command"] = Field(default="lora", description="the embedded LoRA trainer, or a command")
    command: str | None = Field(default=None, description="trainer command (see README: external trainers)")
    command_timeout_s: float = Field(default=6 * 3600, gt=0, description="the command's time limit")
    base_model_dir: str | None = Field(
        default=None, description="a transformers checkpoint of the served GGUF; default: built from the packaged model"
    )
    artefact_dir: str | None = Field(
        default=None, description="where models go; default models/ beside the DuckDB file"
    )


def rows_hash(pairs: list[tuple[str, ...]]) -> str:
    """Identity of the exact training rows, (prompt, target) or (prompt, chosen, rejected) (order-free)."""
    h = hashlib.sha256()
    for row in sorted(pairs):
        h.update(json.dumps(list(row)).encode())
    return h.hexdigest()


def train_candidate(
    mix: pl.DataFrame,
    generation: int,
    settings: CandidateSettings,
    registry: Registry,
    artefact_root: Path,
    log: Log = lambda _m: None,
    pairs: pl.DataFrame | None = None,
    start_from: str | None = None,
) -> dict:
    """Train on the mix's train split (validation split for early stopping), or with ``objective:
    dpo`` on the generation's preference pairs (split by task), export, check that llama.cpp
    loads the result, and register it as a candidate. Nothing is registered when any step fails.
    ``start_from`` names the registered parent (default: the model in service), so preference
    optimisation can start from, and be compared with, the same round's supervised candidate."""
    from synth_assets.core.generators.gguf_adapter import export_adapter
    from synth_assets.core.training.base_model import check_base_dir, hf_base_dir
    from synth_assets.core.training.trainer import train_dpo, train_lora

    if mix.height == 0 or "split" not in mix.columns:
        raise SynthConfigError(
            f"candidate_model: generation {generation}'s mix is empty; materialize mixed_training_set for it first"
        )
    prompts = PromptSettings(**settings.model_dump(include=set(PromptSettings.model_fields)))
    dpo = settings.objective == "dpo"
    if dpo:
        if settings.trainer != "lora":
            raise SynthConfigError(
                "candidate_model.objective 'dpo' needs candidate_model.trainer 'lora' "
                "(a trainer command receives supervised rows only)"
            )
        usable = pairs.filter(pl.col("generation") == generation) if pairs is not None and pairs.height else None
        if usable is not None and "drop_reason" in usable.columns:  # a flipped or untrusted judge's pairs
            usable = usable.filter(pl.col("drop_reason").is_null())
        rows = usable.to_dicts() if usable is not None else []
        triples = [preference_triple(r, prompts) for r in rows]
        split = [split_for(r["task_id"], 0.1) for r in rows]  # by task, as the mix splits
        train = [x for x, sp in zip(triples, split) if sp == "train"]
        validation = [x for x, sp in zip(triples, split) if sp == "validation"]
        what = "preference pairs"
    else:
        train = training_pairs(mix.filter(pl.col("split") == "train"), prompts)
        validation = training_pairs(mix.filter(pl.col("split") == "validation"), prompts)
        what = "train rows"
    if len(train) < settings.min_train_rows:
        raise SynthConfigError(
            f"candidate_model: generation {generation} has {len(train)} {what} to train on, fewer than "
            f"candidate_model.min_train_rows={settings.min_train_rows}; run more generations (or lower it)"
        )
    parent_id = start_from or registry.serving()
    parent = registry.get(parent_id)
    hparams = settings.model_dump(exclude=set(PromptSettings.model_fields) | {"artefact_dir", "command_timeout_s"})
    digest = rows_hash(train)
    model_id = (
        f"g{generation}-"
        + hashlib.sha256(json.dumps([digest, hparams, parent_id], sort_keys=True).encode()).hexdigest()[:10]
    )
    out = artefact_root / model_id
    started = time.monotonic()
    row = {
        "model_id": model_id,
        "parent_id": parent_id,
        "base_model": MODEL_ID,
        "mix_generation": generation,
        "train_rows_hash": digest,
        "train_rows": len(train),
        "validation_rows": len(validation),
        "hyperparameters": hparams,
        "prompt_settings": prompts.model_dump(),
    }
    parent_adapter = parent.adapter_dir if settings.init_from == "parent" else None
    if settings.trainer == "command":
        from synth_assets.core.training.external import run_trainer_command

        if not settings.command:
            raise SynthConfigError("candidate_model.trainer='command' needs candidate_model.command")
        manifest = run_trainer_command(
            settings.command,
            train,
            validation,
            out,
            str(ensure_model_file()),
            parent.adapter_dir,
            settings.seed,
            settings.command_timeout_s,
            log,
        )
        endpoint = bool(manifest.get("base_url"))
        row |= {
            "kind": "external_endpoint" if endpoint else "external_gguf",
            "gguf_path": manifest.get("gguf"),
            "adapter_path": manifest.get("adapter_gguf"),
            "adapter_dir": manifest.get("adapter_dir"),
            "endpoint_base_url": manifest.get("base_url"),
            "endpoint_model": manifest.get("model"),
            "loss_curve": manifest.get("loss_curve") or [],
            "train_tokens": manifest.get("train_tokens"),
        }
    else:
        base = (
            check_base_dir(settings.base_model_dir, "candidate_model.base_model_dir")
            if settings.base_model_dir
            else hf_base_dir(log=log)
        )
        trainer = train_dpo if dpo else train_lora
        result = trainer(base, train, validation, settings, out / "adapter", parent_adapter=parent_adapter, log=log)
        gguf = export_adapter(result.adapter_dir, out / "adapter.gguf")
        row |= {
            "kind": "lora",
            "adapter_path": str(gguf),
            "adapter_dir": str(result.adapter_dir),
            "loss_curve": result.curve,
            "train_tokens": result.train_tokens,
            "target_tokens": result.target_tokens,
            "validation_rows": result.validation_rows,
            "train_rows": result.train_rows,
        }
    row["wall_s"] = time.monotonic() - started
    record = ModelRecord(
        model_id,
        row["kind"],
        "candidate",
        row.get("gguf_path"),
        row.get("adapter_path"),
        row.get("adapter_dir"),
        row.get("endpoint_base_url"),
        row.get("endpoint_model"),
        parent_id,
    )
    if record.endpoint_base_url is None:
        smoke_load(record)  # a broken artefact fails here, before it is registered
    registry.register(row)
    if settings.trainer != "command":
        row["peak_rss_gb"] = round(result.peak_rss_bytes / 1e9, 2)  # reported with the asset, not a registry column
    log(f"registered candidate {model_id} (parent {parent_id}): {len(train)} train rows in {row['wall_s']:.0f}s")
    return row


def check_endpoint(record: ModelRecord) -> None:
    """A model served by an endpoint must answer before a run generates with it: one line naming
    the model, its URL and what to do, instead of every request failing after retries."""
    if not record.endpoint_base_url:
        return
    from synth_assets.core.generators.openai_backend import unreachable

    why = unreachable(record.endpoint_base_url)
    if why:
        raise SynthConfigError(
            f"generator: {record.model_id} is in service at {record.endpoint_base_url} "
            f"(model {record.endpoint_model!r}), which does not answer ({why}); start its server, "
            "or roll back to the base model with `synth models serve base`"
        )


def load_generator(
    record: ModelRecord,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    parallel: int | None = None,
    batched_weights: BatchedWeights | None = None,
    log: Log | None = None,
) -> TextGenerator:
    """The TextGenerator that serves a registered model (llama.cpp, or its OpenAI endpoint, which
    must answer)."""
    if record.endpoint_base_url:
        from synth_assets.core.generators.openai_backend import EndpointSettings, OpenAICompatibleGenerator

        check_endpoint(record)
        return OpenAICompatibleGenerator(
            EndpointSettings(base_url=record.endpoint_base_url, model=record.endpoint_model or "")
        )
    from synth_assets.core.generators.llama_backend import LlamaCppGenerator, LlamaSettings

    defaults = LlamaSettings()  # the same fast path as the resource
    return LlamaCppGenerator(
        model_path=record.gguf_path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        model_id=MODEL_ID if record.model_id == "base" else record.model_id,
        lora_path=record.adapter_path,
        parallel=defaults.parallel if parallel is None else parallel,
        batched_weights=batched_weights or defaults.batched_weights,
        log=log,
    )


def _close(gen: TextGenerator) -> None:
    close = getattr(gen, "close", None)
    if callable(close):
        close()


def smoke_load(record: ModelRecord) -> None:
    gen = load_generator(record, n_ctx=256, parallel=1)
    try:
        from synth_assets.core.generators.generation import SampleRequest

        next(
            iter(gen.generate([SampleRequest("probe", "Question: 1+1?\nAnswer:", "probe", 0.0, 1.0, 1, ("\n",), 0, 0)]))
        )
    finally:
        _close(gen)


def stored_answers(
    registry: Registry,
    key: str,
    items: pl.DataFrame,
    open_generator: Callable[[], TextGenerator],
    log: Log = lambda _m: None,
    close: bool = True,
) -> pl.DataFrame:
    """The model's per-item results: from the registry for the items it was evaluated on before
    (greedy decoding makes them a property of the model), computed and stored for the rest only
    (a generation at a new level evaluates its new items, not the old ones again).
    ``open_generator`` is called only when the model must run; ``close`` frees what it made."""
    stored = registry.stored_scores(key, items["item_id"].to_list())
    missing = items.filter(~pl.col("item_id").is_in(stored["item_id"].to_list())) if stored.height else items
    if missing.height == 0:
        log(f"{key}: reusing its stored answers on {items.height} held-out items")
        return stored
    if stored.height:
        log(f"{key}: reusing its stored answers on {stored.height} held-out items; evaluating {missing.height}")
    gen = open_generator()
    try:
        scores = evaluate(gen, key, missing, log=log)
    finally:
        if close:
            _close(gen)
    registry.store_scores(scores)
    return pl.concat([stored, scores], how="diagonal_relaxed") if stored.height else scores


def scores_for(
    record: ModelRecord, items: pl.DataFrame, registry: Registry, log: Log = lambda _m: None
) -> pl.DataFrame:
    """A registered model's per-item results (``stored_answers`` under its row-name key)."""
    return stored_answers(registry, score_key(record.model_id), items, lambda: load_generator(record), log)


def score_key(model_id: str) -> str:
    """Stored answers are keyed by the model name generators write on rows, so generator_eval
    (which knows the generator, not the registry id) and the gate share them."""
    return MODEL_ID if model_id == "base" else model_id


def evaluate_candidate(
    model_id: str,
    items: pl.DataFrame,
    mix: pl.DataFrame,
    registry: Registry,
    gate: GateSettings,
    log: Log = lambda _m: None,
    against: str | None = None,
) -> tuple[pl.DataFrame, bool, list[str], int]:
    """(comparison rows, promote?, reasons, items dropped as contaminated): candidate against
    its parent on the same decontaminated held-out items, or against the registered model
    ``against`` (a preference-optimised model started from an unpromoted supervised one is
    gated against the model in service)."""
    cand = registry.get(model_id)
    if (against or cand.parent_id) is None:
        raise SynthConfigError(f"model_eval: {model_id} has no parent to compare with")
    parent = registry.get(against or cand.parent_id)
    items, dropped = decontaminate(items, mix["prompt"] if mix.height else pl.Series([], dtype=pl.String))
    if dropped:
        log(f"dropped {dropped} held-out items whose question is in the mix")
    ps = scores_for(parent, items, registry, log)
    baselines = trivial_baselines(items)
    cs, verdict = curtailed_scores(cand, items, ps, baselines, registry, gate, log)
    comparison = compare(cs, ps, baselines, gate)
    ok, reasons = verdict if verdict is not None else decision(comparison)
    registry.set_scores(model_id, summary_scores(comparison))
    return comparison, ok, reasons, dropped


def curtailed_scores(
    record: ModelRecord,
    items: pl.DataFrame,
    parent_scores: pl.DataFrame,
    baselines: pl.DataFrame,
    registry: Registry,
    gate: GateSettings,
    log: Log = lambda _m: None,
) -> tuple[pl.DataFrame, tuple[bool, list[str]] | None]:
    """The candidate's answers, evaluated in ``gate.evaluation_chunks`` parts (items in an order
    fixed by their ids, so each part spans every family and variant) until the gate's decision
    is settled (``gate.settled``): (its answers so far, the settled decision or None when every
    item was needed). A strong or a clearly worse candidate stops early; the decision is the one
    every item would give. The answers are stored, so a later evaluation of the model runs only
    the items it skipped."""
    key = score_key(record.model_id)
    order = items.with_columns(pl.col("item_id").hash(seed=11).alias("_h")).sort("_h").drop("_h")
    chunk = -(-order.height // gate.evaluation_chunks)
    opened: dict[str, TextGenerator] = {}  # the candidate's model, loaded once for every part

    def open_once() -> TextGenerator:
        if "gen" not in opened:
            opened["gen"] = load_generator(record)
        return opened["gen"]

    scores = pl.DataFrame()
    try:
        for end in range(chunk, order.height + chunk, chunk):
            scores = stored_answers(registry, key, order.head(end), open_once, log, close=False)
            if end >= order.height:
                break
            verdict = settled(scores, parent_scores, items, baselines, gate)
            if verdict is not None:
                log(
                    f"{key}: the gate's decision is settled after {scores.height} of {items.height} held-out items "
                    f"({'promote' if verdict[0] else 'refuse'}); the rest are not evaluated"
                )
                return scores, verdict
    finally:
        if "gen" in opened:
            _close(opened["gen"])
    return scores, None


def summary_scores(comparison: pl.DataFrame) -> dict:
    """The registry's ``scores``: per family/variant the candidate's rate with its 95% interval,
    the parent's, the trivial baselines', the paired test and the gate's flag (the model card
    shows them)."""
    return {
        f"{r['family']}/{r['variant']}": {
            "rate": r["candidate_rate"],
            "low": r["candidate_low"],
            "high": r["candidate_high"],
            "parent_rate": r["parent_rate"],
            "parent_low": r["parent_low"],
            "parent_high": r["parent_high"],
            "n": r["n"],
            "most_common_rate": r["most_common_rate"],
            "last_shot_rate": r["last_shot_rate"],
            "p_vs_parent": r["p_vs_parent"],
            "significant_gain": r["significant_gain"],
            "flag": r["flag"],
        }
        for r in comparison.iter_rows(named=True)
    }


def pass_rates(scores: pl.DataFrame) -> pl.DataFrame:
    """Per family and variant: correct, n, rate and 95% Wilson interval (for reports)."""
    g = scores.group_by(["family", "variant"]).agg(pl.col("correct").sum().alias("k"), pl.len().alias("n"))
    rows = []
    for r in g.sort(["family", "variant"]).iter_rows(named=True):
        lo, hi = wilson(int(r["k"]), int(r["n"]))
        rows.append({**r, "rate": r["k"] / r["n"], "low": lo, "high": hi})
    return pl.DataFrame(rows)
