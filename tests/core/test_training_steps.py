"""The trainer's step cap: a round's optimizer steps stop growing with the accumulated mix."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from synth_assets.core.training.trainer import TrainSettings, _optimise


class TinyModelDouble(torch.nn.Module):
    """A test double of the PEFT model: one trainable weight, saved as a file."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def save_pretrained(self, path: str | Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), Path(path) / "weights.pt")


def _run(tmp_path: Path, n_rows: int, settings: TrainSettings) -> tuple[list[dict], int, list[int]]:
    model = TinyModelDouble()
    rows = list(range(n_rows))
    seen: list[int] = []

    def batches(rng: random.Random):
        order = rows[:]
        rng.shuffle(order)
        for i in range(0, len(order), settings.batch_size):
            yield order[i : i + settings.batch_size]

    def step(batch: list[int]) -> float:
        seen.extend(batch)
        loss = (model.w - 2.0).pow(2).sum()
        loss.backward()
        return loss.item()

    curve, _best, steps = _optimise(
        model,
        settings,
        n_rows,
        batches,
        step,
        lambda: (model.w - 2.0).pow(2).item(),
        tmp_path / "out",
        lambda _m: None,
        60.0,
        0.0,
        "sft",
    )
    return curve, steps, seen


def test_a_mix_larger_than_the_cap_is_trained_for_max_steps_the_last_epoch_ending_early(tmp_path):
    # 20 rows in batches of 4 are 5 steps an epoch; 3 epochs would be 15 steps
    curve, steps, seen = _run(tmp_path, 20, TrainSettings(epochs=3, batch_size=4, max_steps=7))
    assert (steps, [(c["epoch"], c["step"]) for c in curve], len(seen)) == (7, [(0, 0), (1, 5), (2, 7)], 28)


def test_a_mix_under_the_cap_is_trained_for_every_epoch(tmp_path):
    curve, steps, _ = _run(tmp_path, 20, TrainSettings(epochs=3, batch_size=4, max_steps=120))
    assert (steps, [c["step"] for c in curve]) == (15, [0, 5, 10, 15])
