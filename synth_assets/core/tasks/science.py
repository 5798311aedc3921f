"""Science families: the model proposes a design and a simulation validates it.

``projectile_design``: a launch (speed and angle) on flat ground that must land within a
tolerance of a target distance, keep its highest point under a ceiling and stay under a speed
limit. Many designs are right, so no answer is compared: the proposal is flown by a numeric
simulation (scipy's ``solve_ivp`` with a ground-contact event, gravity only) and each stated
constraint is checked on the trajectory. The score is the share of constraints met (a pass
needs all of them); the violated ones are the verdict's detail.

The family is registered in reasoning-gym's own registry (``register_dataset``), so it is a
family like the others: the task pool draws instances by seed, the few-shot examples and the
held-out items come from other seeds, and the verifier is the reasoning-gym path, with no
special case anywhere else in the platform.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from random import Random
from typing import Any

from reasoning_gym.dataset import ProceduralDataset
from reasoning_gym.factory import DATASETS, register_dataset

G = 9.81
PROJECTILE = "projectile_design"
SCIENCE_FAMILIES = (PROJECTILE,)
SCIENCE_LICENSE = "CC0-1.0 (synth-platform science family)"
_ANSWER = re.compile(r"speed\s*=\s*([-+]?\d+(?:\.\d+)?)\D+?angle\s*=\s*([-+]?\d+(?:\.\d+)?)", re.I)


@dataclass
class ProjectileDesignConfig:
    min_range: float = 20.0  # target distance, metres
    max_range: float = 80.0
    tolerance: float = 1.0  # metres either side of the target
    seed: int | None = None
    size: int = 500

    def validate(self) -> None:
        assert 0 < self.min_range < self.max_range, "0 < min_range < max_range"
        assert self.tolerance > 0, "tolerance must be positive"


def simulate(speed: float, angle_deg: float, dt_max: float = 0.01) -> tuple[float, float]:
    """(distance where it lands, highest point) of a launch from the ground, integrated
    numerically until it comes back down."""
    from scipy.integrate import solve_ivp

    th = math.radians(angle_deg)
    y0 = [0.0, 0.0, speed * math.cos(th), speed * math.sin(th)]

    def ground(_t: float, s: list[float]) -> float:
        return s[1]

    ground.terminal, ground.direction = True, -1
    t_end = 2 * y0[3] / G + 1.0
    # at most about 10,000 steps whatever the proposal: a model that writes speed=1000000 must
    # not stall verification (at dt_max that flight took minutes; realistic launches keep dt_max)
    step = max(dt_max, t_end / 10_000)
    sol = solve_ivp(
        lambda _t, s: [s[2], s[3], 0.0, -G],
        (0.0, t_end),
        y0,
        events=ground,
        max_step=step,
        rtol=1e-8,
        atol=1e-8,
        dense_output=False,
    )
    landed = sol.y_events[0][-1][0] if len(sol.t_events[0]) else float(sol.y[0][-1])
    return float(landed), float(max(sol.y[1].max(), 0.0))


class ProjectileDesignDataset(ProceduralDataset):
    """Design a launch that meets stated constraints; validated by simulation."""

    def __init__(self, config: ProjectileDesignConfig) -> None:
        super().__init__(config=config, seed=config.seed, size=config.size)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        rng = Random(self.seed + idx)
        c = self.config
        target = round(rng.uniform(c.min_range, c.max_range), 1)
        max_angle = rng.uniform(25.0, 70.0)  # the ceiling below is what this angle reaches
        ceiling = round(target * math.tan(math.radians(max_angle)) / 4, 1)
        ref_angle = round(min(45.0, max_angle - 5.0))
        ref_speed = math.sqrt(G * target / math.sin(math.radians(2 * ref_angle)))
        limit = round(ref_speed * rng.uniform(1.15, 1.4), 1)
        answer = f"speed={ref_speed:.2f}, angle={ref_angle}"
        question = (
            f"Design a projectile launch on flat ground (g = {G} m/s^2, no air resistance). Choose a launch "
            f"speed in m/s and an angle in degrees above the horizontal so that the projectile lands "
            f"{target} m +/- {c.tolerance} m from the launch point, its highest point stays below {ceiling} m, "
            f"and the speed is at most {limit} m/s. Answer as: speed=<m/s>, angle=<degrees>"
        )
        return {
            "question": question,
            "answer": answer,
            "metadata": {
                "source_dataset": PROJECTILE,
                "source_index": idx,
                "target": target,
                "tolerance": c.tolerance,
                "ceiling": ceiling,
                "speed_limit": limit,
            },
        }

    def check(self, answer: str | None, entry: dict[str, Any]) -> tuple[float, list[str]]:
        """(share of constraints met, the violated ones)."""
        m = _ANSWER.search(answer or "")
        if not m:
            return 0.0, ["no design: expected 'speed=<m/s>, angle=<degrees>'"]
        speed, angle = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(speed) and math.isfinite(angle)):  # 400 digits parse as inf
            return 0.0, [f"speed {m.group(1)[:20]} or angle {m.group(2)[:20]} is not a finite number"]
        md = entry["metadata"]
        violated = []
        if not 0 < angle < 90:
            violated.append(f"angle {angle} is not between 0 and 90 degrees")
        if not 0 < speed <= md["speed_limit"]:
            violated.append(f"speed {speed} m/s is not within (0, {md['speed_limit']}]")
        if 0 < angle < 90 and speed > 0:
            landed, top = simulate(speed, angle)
            if abs(landed - md["target"]) > md["tolerance"]:
                violated.append(f"lands at {landed:.2f} m, not {md['target']} +/- {md['tolerance']} m")
            if top >= md["ceiling"]:
                violated.append(f"highest point {top:.2f} m is not below {md['ceiling']} m")
        else:
            violated += ["range not simulated", "height not simulated"]
        return (4 - len(violated)) / 4, violated

    def score_answer(self, answer: str | None, entry: dict[str, Any]) -> float:
        return self.check(answer, entry)[0]

    def score_with_detail(self, answer: str | None, entry: dict[str, Any]) -> tuple[float, str]:
        """The score and the verdict's detail from one simulation: what it found wrong, or that
        every constraint held."""
        score, violated = self.check(answer, entry)
        return score, "all 4 constraints met in simulation" if not violated else "violated: " + "; ".join(violated)


def register() -> None:
    """Put the science families in reasoning-gym's registry (once per process)."""
    if PROJECTILE not in DATASETS:
        register_dataset(PROJECTILE, ProjectileDesignDataset, ProjectileDesignConfig)


register()
