"""LoRA fine-tuning of the generator on the mix's train split, on the CPU, with PEFT.

The loop is written out (about sixty lines) instead of using TRL's SFTTrainer or transformers'
Trainer: those pull accelerate and datasets into the lock, and the loop here needs exactly
three things they make awkward: loss on the target tokens only, with the prompt tokenized
alone as llama.cpp tokenizes it at inference; a validation loss after every epoch that keeps
the best adapter (early stopping); and progress lines into the Dagster run log. PEFT does the
LoRA itself.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.memory import peak_rss
from synth_assets.core.settings import Settings

if TYPE_CHECKING:  # heavy: imported where training runs, never at import time
    import torch
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

Encoded = tuple[list[int], list[int]]  # token ids and labels (-100 where no loss is taken)
Batch = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]  # ids, labels, attention mask
PairBatch = tuple[Batch, Batch, "torch.Tensor"]  # chosen, rejected, reference log-probs

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainSettings(Settings):
    """How a candidate generator is trained."""

    rank: int = Field(default=16, ge=1, le=256, description="LoRA rank")
    alpha: float = Field(default=32.0, gt=0, description="LoRA alpha (the update is scaled by alpha/rank)")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout")
    learning_rate: float = Field(default=3e-4, gt=0, description="AdamW learning rate (linear decay after warm-up)")
    epochs: int = Field(
        default=3, ge=1, description="passes over the train split (the best by validation loss is kept)"
    )
    batch_size: int = Field(default=8, ge=1, description="rows per optimizer step")
    micro_batch_tokens: int = Field(
        default=512,
        ge=16,
        description="a step's rows go through the model in micro-batches of at most this many (padded) tokens "
        "and their gradients add up to the step's: the same step in less memory (lower it on a small machine)",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="recompute each layer's activations in the backward pass instead of keeping them: less "
        "memory for one more forward pass of compute a step",
    )
    max_length: int = Field(default=512, ge=16, description="longer rows are cut from the left (the prompt's start)")
    max_train_rows: int = Field(default=2000, ge=1, description="an even sample of at most this many train rows")
    max_steps: int = Field(
        default=120,
        ge=1,
        description="optimizer steps at most: a mix that would take more (epochs x rows / batch_size) is seen "
        "fewer times, the last epoch ending early, so a round's training stops growing with the accumulated mix",
    )
    min_train_rows: int = Field(default=8, ge=1, description="fewer train rows than this is refused (nothing to learn)")
    seed: int = Field(default=0, description="seed of the row order, LoRA init and dropout")
    init_from: Literal["base", "parent"] = Field(
        default="base",
        description="start from the base model each round (STaR, ReST-EM) or continue the parent's adapter",
    )
    threads: int | None = Field(default=None, ge=1, description="torch threads; default all cores")
    objective: Literal["sft", "dpo"] = Field(
        default="sft", description="sft: the mix's rows; dpo: the generation's preference pairs (chosen over rejected)"
    )
    dpo_beta: float = Field(default=0.1, gt=0, description="DPO's beta: how far the policy may move from the reference")


@dataclass
class TrainResult:
    adapter_dir: Path  # a PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
    train_rows: int
    validation_rows: int
    train_tokens: int  # tokens seen per epoch (prompt and target)
    target_tokens: int  # tokens the loss is taken on per epoch
    steps: int
    best_epoch: int
    wall_s: float
    curve: list[dict] = field(default_factory=list)  # {"epoch", "step", "train_loss", "validation_loss"}
    peak_rss_bytes: int = 0  # the process's peak resident memory while it trained (core/memory.py)


def _encode(tokenizer: PreTrainedTokenizerBase, prompt: str, target: str, max_length: int) -> Encoded:
    """Token ids and labels (-100 on the prompt). The prompt is tokenized alone, with BOS, as
    llama.cpp tokenizes it before generating; the target without special tokens."""
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    t = tokenizer(target, add_special_tokens=False)["input_ids"]
    ids, labels = p + t, [-100] * len(p) + t
    if len(ids) > max_length:  # keep the end: the question and its answer
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels


def _batches(encoded: list[Encoded], size: int, pad: int, rng: random.Random | None) -> Iterator[Batch]:
    import torch

    order = list(range(len(encoded)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), size):
        chunk = [encoded[j] for j in order[i : i + size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (x, y) in enumerate(chunk):
            ids[r, : len(x)] = torch.tensor(x)
            labels[r, : len(y)] = torch.tensor(y)
            mask[r, : len(x)] = 1
        yield ids, labels, mask


# Target positions per output-layer call. Gemma 3's output layer spans a 262k vocabulary: 256
# positions make 268 MB of fp32 logits, and their softmax gradient as much again. Each chunk is
# recomputed in the backward pass (checkpointed) instead of kept, so the whole row set's logits
# never exist at once: 8 code rows of ~250 target tokens kept them as 2 GB a copy, with three
# copies alive (logits, log-softmax, gradient). Measured in bench/training_memory.py.
CE_CHUNK = 128


def _return_freed_memory() -> None:
    """Make glibc give freed activation memory back to the system at once.

    glibc's malloc raises its mmap threshold to the largest block freed so far (up to 32 MB), so
    after the first backward pass the activation tensors come from the heap, which it keeps and
    fragments: measured (bench/RESULTS.md, training memory), the first step left 2.4 GB resident
    that the next step could not fully reuse. A fixed threshold keeps big tensors in mmaps that
    are unmapped when freed. No-op where the C library is not glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD: 64 KiB, fixed
    except (OSError, AttributeError):
        pass


def _token_logps(lm_head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    import torch

    return -torch.nn.functional.cross_entropy(lm_head(hidden).float(), targets, reduction="none")


def _target_logps(
    model: PeftModel, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probability of each target token, where the targets are), the output layer applied
    at the positions that predict a target token only, in checkpointed chunks.

    On a 3-shot prompt the output layer at every position costs more than the whole transformer
    body, while the losses need it only where a target token is predicted (a few per row):
    measured on 40 3-shot gcd rows, see bench/RESULTS.md."""
    import torch
    from torch.utils.checkpoint import checkpoint

    causal = model.get_base_model()
    hidden = causal.model(input_ids=ids, attention_mask=mask).last_hidden_state
    shifted = labels[:, 1:]
    where = shifted != -100
    h, t = hidden[:, :-1][where], shifted[where]
    chunks = [
        checkpoint(_token_logps, causal.lm_head, h[i : i + CE_CHUNK], t[i : i + CE_CHUNK], use_reentrant=False)
        if torch.is_grad_enabled()
        else _token_logps(causal.lm_head, h[i : i + CE_CHUNK], t[i : i + CE_CHUNK])
        for i in range(0, h.shape[0], CE_CHUNK)
    ]
    return (torch.cat(chunks) if chunks else h.new_zeros(0)), where


def _micro(batch: Batch, budget: int) -> Iterator[Batch]:
    """A batch's rows in micro-batches of at most ``budget`` padded tokens (at least one row
    each), shortest rows together, each cut to its own longest row: the same rows, less padding
    and a bounded activation memory."""
    ids, labels, mask = batch
    lengths = mask.sum(1)
    order = lengths.argsort().tolist()
    group: list[int] = []
    for r in [*order, None]:
        if r is not None and (not group or int(lengths[r]) * (len(group) + 1) <= budget):
            group.append(r)
            continue
        if group:
            width = int(lengths[group].max())
            yield ids[group, :width], labels[group, :width], mask[group, :width]
        group = [r] if r is not None else []


def _sft_step(model: PeftModel, batch: Batch, budget: int) -> float:
    """Backward of the batch's mean cross-entropy over its target tokens, micro-batch by
    micro-batch (each weighted by its share of the batch's target tokens); the loss's value."""
    n = int((batch[1][:, 1:] != -100).sum())
    total = 0.0
    for micro in _micro(batch, budget):
        lp, _where = _target_logps(model, *micro)
        loss = -lp.sum() / max(n, 1)
        loss.backward()
        total += float(loss.detach())
    return total


def _mean_loss(model: PeftModel, encoded: list[Encoded], size: int, pad: int, budget: int) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in _batches(encoded, size, pad, None):
            for micro in _micro(batch, budget):
                lp, _where = _target_logps(model, *micro)
                total += -float(lp.sum())
                n += lp.numel()
    model.train()
    return total / max(n, 1)


def _prepare(
    base_dir: str | Path, settings: TrainSettings, parent_adapter: str | Path | None
) -> tuple[PreTrainedTokenizerBase, int, PeftModel]:
    """(tokenizer, pad id, model with a trainable LoRA adapter): a fresh adapter on the base, or
    the parent's (``init_from: parent``)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _return_freed_memory()
    torch.set_num_threads(settings.threads or os.cpu_count() or 1)
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if settings.init_from == "parent" and parent_adapter:
        model = PeftModel.from_pretrained(model, str(parent_adapter), is_trainable=True)
    else:
        model = get_peft_model(
            model,
            LoraConfig(
                r=settings.rank,
                lora_alpha=settings.alpha,
                lora_dropout=settings.dropout,
                target_modules=LORA_TARGETS,
                task_type="CAUSAL_LM",
            ),
        )
    if settings.gradient_checkpointing:
        model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return tokenizer, pad, model


def _optimise(
    model: PeftModel,
    settings: TrainSettings,
    n_train: int,
    batches: Callable,
    step_fn: Callable,
    val_fn: Callable[[], float | None],
    out_dir: str | Path,
    log: Callable[[str], None],
    log_every_s: float,
    started: float,
    what: str,
) -> tuple[list[dict], int, int]:
    """AdamW with warm-up and linear decay over ``batches(rng)`` for every epoch (``step_fn(batch)``
    runs the forward and backward passes and returns the loss), the validation loss after each,
    and the best epoch's adapter written to ``out_dir`` (atomically). Returns (curve, best epoch,
    steps)."""
    import torch

    rng = random.Random(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    # Every round trains from the base model on the whole accumulated mix, so epochs x rows grows
    # each round (78 steps, then 189 and 49 minutes, in a default run's rounds 1 and 2): the cap
    # keeps a round near the pilot's 87 steps; the decay schedule spans the capped steps.
    uncapped = steps_per_epoch * settings.epochs
    total_steps = min(uncapped, settings.max_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)
    warmup = max(1, total_steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total_steps - s) / max(1, total_steps - warmup)))
    )
    out = Path(out_dir)
    tmp_best = out.with_name(out.name + ".best.partial")
    shutil.rmtree(tmp_best, ignore_errors=True)
    curve: list[dict] = []
    best, best_epoch, step, last_log = math.inf, 0, 0, time.monotonic()
    val0 = val_fn()
    curve.append({"epoch": 0, "step": 0, "train_loss": None, "validation_loss": val0})
    capped = (
        f" (max_steps {settings.max_steps}: {total_steps / steps_per_epoch:.2f} of {settings.epochs} epochs)"
        if total_steps < uncapped
        else ""
    )
    log(
        f"training ({what}) on {n_train} rows, {total_steps} steps{capped}; "
        f"validation loss before training {val0 if val0 is None else round(val0, 4)}"
    )
    for epoch in range(1, epochs + 1):
        running, seen = 0.0, 0
        for batch in batches(rng):
            if step == total_steps:  # the cap ends the last epoch early
                break
            loss = step_fn(batch)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            running, seen = running + loss, seen + 1
            if time.monotonic() - last_log >= log_every_s:
                log(
                    f"epoch {epoch} step {step}/{total_steps}: train loss {running / seen:.4f} "
                    f"({time.monotonic() - started:.0f}s)"
                )
                last_log = time.monotonic()
        val = val_fn()
        curve.append({"epoch": epoch, "step": step, "train_loss": running / max(seen, 1), "validation_loss": val})
        log(
            f"epoch {epoch}: train loss {running / max(seen, 1):.4f}, validation loss "
            f"{'n/a' if val is None else round(val, 4)}"
        )
        score = val if val is not None else -epoch  # without validation rows: the last epoch
        if score < best:
            best, best_epoch = score, epoch
            shutil.rmtree(tmp_best, ignore_errors=True)
            model.save_pretrained(tmp_best)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp_best, out)
    (out / "synth_training.json").write_text(json.dumps({"curve": curve, "best_epoch": best_epoch, "objective": what}))
    return curve, best_epoch, step


def train_lora(
    base_dir: str | Path,
    train: Sequence[tuple[str, str]],
    validation: Sequence[tuple[str, str]],
    settings: TrainSettings,
    out_dir: str | Path,
    parent_adapter: str | Path | None = None,
    log: Callable[[str], None] = lambda _m: None,
    log_every_s: float = 15.0,
) -> TrainResult:
    """Train a LoRA adapter on (prompt, target) pairs; write the best epoch's adapter to
    ``out_dir`` (atomically: a failed run leaves no adapter behind)."""
    if len(train) < settings.min_train_rows:
        raise SynthConfigError(
            f"candidate_model: the mix has {len(train)} train rows, fewer than candidate_model.min_train_rows="
            f"{settings.min_train_rows}; run more generations (or lower min_train_rows) before training"
        )
    started = time.monotonic()
    if len(train) > settings.max_train_rows:
        train = random.Random(settings.seed).sample(list(train), settings.max_train_rows)
    with peak_rss() as peak:
        tokenizer, pad, model = _prepare(base_dir, settings, parent_adapter)
        enc_train = [_encode(tokenizer, p, t, settings.max_length) for p, t in train]
        enc_val = [_encode(tokenizer, p, t, settings.max_length) for p, t in validation]
        budget = settings.micro_batch_tokens
        curve, best_epoch, step = _optimise(
            model,
            settings,
            len(enc_train),
            lambda rng: _batches(enc_train, settings.batch_size, pad, rng),
            lambda b: _sft_step(model, b, budget),
            lambda: _mean_loss(model, enc_val, settings.batch_size, pad, budget) if enc_val else None,
            out_dir,
            log,
            log_every_s,
            started,
            "sft",
        )
    log(f"training peak memory: {peak} (the process's resident set while it trained)")
    n_tokens = sum(len(ids) for ids, _ in enc_train)
    n_target = sum(sum(1 for y in labels if y != -100) for _, labels in enc_train)
    return TrainResult(
        Path(out_dir),
        len(enc_train),
        len(enc_val),
        n_tokens,
        n_target,
        step,
        best_epoch,
        time.monotonic() - started,
        curve,
        peak.bytes,
    )


# ------------------------------------------------------------------ preference optimisation (DPO)
def _sequence_logps(model: PeftModel, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the target tokens' log-probabilities per row."""
    import torch

    lp, where = _target_logps(model, ids, labels, mask)
    rows = where.nonzero()[:, 0]
    return torch.zeros(ids.shape[0], dtype=lp.dtype).index_add(0, rows, lp)


def _pair_batches(
    enc: list[tuple[Encoded, Encoded]], ref: list[tuple[float, float]], size: int, pad: int, rng: random.Random | None
) -> Iterator[PairBatch]:
    """(chosen batch, rejected batch, reference log-probs) per step; chosen and rejected of a
    pair share a row index."""
    import torch

    order = list(range(len(enc)))
    if rng is not None:
        rng.shuffle(order)
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        chosen = next(_batches([enc[j][0] for j in idx], len(idx), pad, None))
        rejected = next(_batches([enc[j][1] for j in idx], len(idx), pad, None))
        yield chosen, rejected, torch.tensor([ref[j] for j in idx], dtype=torch.float32)


def _dpo_loss(model: PeftModel, batch: PairBatch, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO (Rafailov et al. 2023): -log sigmoid(beta * (policy margin - reference margin))."""
    import torch

    chosen, rejected, ref = batch
    pc, pr = _sequence_logps(model, *chosen), _sequence_logps(model, *rejected)
    logits = beta * ((pc - ref[:, 0]) - (pr - ref[:, 1]))
    return -torch.nn.functional.logsigmoid(logits).mean(), logits


def _dpo_step(model: PeftModel, batch: PairBatch, beta: float, budget: int) -> float:
    """Backward of the batch's mean DPO loss in groups of pairs of at most ``budget`` padded
    tokens (chosen and rejected together); the loss's value."""
    chosen, rejected, ref = batch
    n = ref.shape[0]
    per_group = max(1, budget // max(1, 2 * max(chosen[0].shape[1], rejected[0].shape[1])))
    total = 0.0
    for i in range(0, n, per_group):
        part = slice(i, i + per_group)
        sub = (tuple(x[part] for x in chosen), tuple(x[part] for x in rejected), ref[part])
        loss = _dpo_loss(model, sub, beta)[0] * (sub[2].shape[0] / n)
        loss.backward()
        total += float(loss.detach())
    return total


def _reference_logps(
    model: PeftModel, enc: list[tuple[Encoded, Encoded]], size: int, pad: int
) -> list[tuple[float, float]]:
    """The starting model's log-probabilities of every pair: the reference DPO holds the policy
    to (the base model when the adapter is fresh, its B matrices being zero; else the parent)."""
    import torch

    out: list[tuple[float, float]] = []
    model.eval()
    with torch.no_grad():
        for chosen, rejected, _ in _pair_batches(enc, [(0.0, 0.0)] * len(enc), size, pad, None):
            out += list(zip(_sequence_logps(model, *chosen).tolist(), _sequence_logps(model, *rejected).tolist()))
    model.train()
    return out


@dataclass
class PreferenceResult(TrainResult):
    pairs_preferred_before: float = 0.0  # validation pairs whose chosen the starting model already preferred
    pairs_preferred_after: float = 0.0  # ... the trained policy prefers (implicit reward margin > 0)


def train_dpo(
    base_dir: str | Path,
    train: Sequence[tuple[str, str, str]],
    validation: Sequence[tuple[str, str, str]],
    settings: TrainSettings,
    out_dir: str | Path,
    parent_adapter: str | Path | None = None,
    log: Callable[[str], None] = lambda _m: None,
    log_every_s: float = 15.0,
) -> PreferenceResult:
    """Direct preference optimisation of a LoRA adapter on (prompt, chosen, rejected) triples,
    against the starting model as reference; the best epoch by validation DPO loss is kept.
    Written out like the supervised loop (same encoding, same output-layer economy); TRL's
    DPOTrainer would bring its own data pipeline and logging for the same ten lines of loss."""
    if len(train) < settings.min_train_rows:
        raise SynthConfigError(
            f"candidate_model: {len(train)} preference pairs to train on, fewer than candidate_model.min_train_rows="
            f"{settings.min_train_rows}; run more generations, or use objective 'sft'"
        )
    import torch

    started = time.monotonic()
    if len(train) > settings.max_train_rows:
        train = random.Random(settings.seed).sample(list(train), settings.max_train_rows)
    with peak_rss() as peak:
        tokenizer, pad, model = _prepare(base_dir, settings, parent_adapter)

        def enc(rows: Sequence[tuple[str, str, str]]) -> list:
            return [
                (_encode(tokenizer, p, c, settings.max_length), _encode(tokenizer, p, r, settings.max_length))
                for p, c, r in rows
            ]

        enc_train, enc_val = enc(train), enc(validation)
        ref_train = _reference_logps(model, enc_train, settings.batch_size, pad)
        ref_val = _reference_logps(model, enc_val, settings.batch_size, pad)

        def preferred() -> float:
            model.eval()
            with torch.no_grad():
                m = [
                    float(x)
                    for b in _pair_batches(enc_val, ref_val, settings.batch_size, pad, None)
                    for x in (_sequence_logps(model, *b[0]) - _sequence_logps(model, *b[1]))
                ]
            model.train()
            return sum(x > 0 for x in m) / max(len(m), 1)

        def val_loss() -> float | None:
            if not enc_val:
                return None
            model.eval()
            with torch.no_grad():
                losses = [
                    float(_dpo_loss(model, b, settings.dpo_beta)[0]) * len(b[2])
                    for b in _pair_batches(enc_val, ref_val, settings.batch_size, pad, None)
                ]
            model.train()
            return sum(losses) / len(enc_val)

        before = preferred() if enc_val else 0.0
        curve, best_epoch, step = _optimise(
            model,
            settings,
            len(enc_train),
            lambda rng: _pair_batches(enc_train, ref_train, settings.batch_size, pad, rng),
            lambda b: _dpo_step(model, b, settings.dpo_beta, settings.micro_batch_tokens),
            val_loss,
            out_dir,
            log,
            log_every_s,
            started,
            "dpo",
        )
        after = preferred() if enc_val else 0.0
    log(f"training peak memory: {peak} (the process's resident set while it trained)")
    n_tokens = sum(len(c[0]) + len(r[0]) for c, r in enc_train)
    n_target = sum(sum(1 for y in c[1] if y != -100) + sum(1 for y in r[1] if y != -100) for c, r in enc_train)
    log(
        f"dpo: validation pairs whose chosen response is preferred: {before:.2f} before, {after:.2f} after "
        "(the last epoch's policy)"
    )
    return PreferenceResult(
        Path(out_dir),
        len(enc_train),
        len(enc_val),
        n_tokens,
        n_target,
        step,
        best_epoch,
        time.monotonic() - started,
        curve,
        peak.bytes,
        before,
        after,
    )
