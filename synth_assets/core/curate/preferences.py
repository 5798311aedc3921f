"""Preference pairs for the same task: chosen (verified, or higher-scored) vs rejected."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field

from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform

if TYPE_CHECKING:
    from synth_assets.core.verify.ai_feedback import Judge

PAIR_SCHEMA: dict[str, pl.DataType] = {
    "pair_id": pl.String,
    "generation": pl.Int64,
    "task_id": pl.String,
    "family": pl.String,
    "domain": pl.String,  # with task_source: what the prompt format needs to rebuild the generator's prompt
    "task_source": pl.String,
    "prompt": pl.String,
    "chosen": pl.String,
    "rejected": pl.String,
    "chosen_candidate_id": pl.String,
    "rejected_candidate_id": pl.String,
    "chosen_verdict": pl.String,
    "rejected_verdict": pl.String,
    "chosen_score": pl.Float64,
    "rejected_score": pl.Float64,
    "basis": pl.String,  # verdict | score | judge_score
    # judge_score pairs only: did the pairwise judge prefer `chosen` with it shown first and second
    "orders_agree": pl.Boolean,
    # null = a training pair; position_flip (the judge's preference followed the order shown) or
    # judge_untrusted (the judge's calibration did not clear its thresholds): kept for review only
    "drop_reason": pl.String,
}


def _key(r: dict) -> tuple[int, float, float]:
    return (int(r["verdict"] == "pass"), float(r["score"] or 0.0), float(r["judge_score"] or 0.0))


def _basis(a: tuple, b: tuple) -> str:
    return "verdict" if a[0] != b[0] else "score" if a[1] != b[1] else "judge_score"


def preference_pairs(verified: pl.DataFrame, max_pairs_per_task: int = 2) -> pl.DataFrame:
    """Best candidates paired with the worst, strictly better by verdict, then score, then judge."""
    rows = []
    for (task_id,), group in verified.group_by(["task_id"], maintain_order=True):
        cands = sorted(group.to_dicts(), key=_key, reverse=True)
        best, worst = cands, list(reversed(cands))
        used: set[str] = set()
        for c, r in zip(best, worst):
            if len(used) // 2 >= max_pairs_per_task or _key(c) <= _key(r):
                break
            if c["candidate_id"] in used or r["candidate_id"] in used:
                continue
            if (c["completion"] or "").strip() == (r["completion"] or "").strip():
                continue
            used |= {c["candidate_id"], r["candidate_id"]}
            rows.append(
                {
                    "pair_id": f"{c['candidate_id']}>{r['candidate_id']}",
                    "generation": c["generation"],
                    "task_id": task_id,
                    "family": c["family"],
                    "domain": c.get("domain"),
                    "task_source": c.get("source"),
                    "prompt": c["prompt"],
                    "chosen": c["completion"],
                    "rejected": r["completion"],
                    "chosen_candidate_id": c["candidate_id"],
                    "rejected_candidate_id": r["candidate_id"],
                    "chosen_verdict": c["verdict"],
                    "rejected_verdict": r["verdict"],
                    "chosen_score": c["score"],
                    "rejected_score": r["score"],
                    "basis": _basis(_key(c), _key(r)),
                }
            )
    return conform(rows, PAIR_SCHEMA)


def check_judge_pairs(pairs: pl.DataFrame, judge: Judge | None, judge_trusted: bool) -> pl.DataFrame:
    """Pairs whose order rests on the judge's scores (basis ``judge_score``) are shown to the
    judge in both orders: kept only when it prefers ``chosen`` both times and its calibration
    clears; the rest stay in the table with a drop reason. Pairs a program decided are kept."""
    idx = [i for i, b in enumerate(pairs["basis"].to_list()) if b == "judge_score"]
    agree: list[bool | None] = [None] * pairs.height
    reason: list[str | None] = [None] * pairs.height
    if idx and judge is not None:
        rows = pairs.to_dicts()
        shown = [(rows[i]["prompt"], rows[i]["chosen"], rows[i]["rejected"]) for i in idx]
        shown += [(p, r, c) for p, c, r in shown]
        prefs = judge.prefer(shown)
        for k, i in enumerate(idx):
            agree[i] = prefs[k] == "A" and prefs[len(idx) + k] == "B"
    for i in idx:
        if not judge_trusted:
            reason[i] = "judge_untrusted"
        elif not agree[i]:
            reason[i] = "position_flip"
    return pairs.with_columns(
        pl.Series("orders_agree", agree, dtype=pl.Boolean), pl.Series("drop_reason", reason, dtype=pl.String)
    )


class PreferencePairsSettings(Settings):
    """How many chosen/rejected pairs a task gives."""

    max_pairs_per_task: int = Field(default=2, ge=1)
