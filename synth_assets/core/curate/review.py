"""A review queue for people: flagged accepted rows, and decisions the next mix honours.

Flagged: every accepted row the LLM judge scored low, one row of every synthesized task whose
reference answer no program could check (``unverified_reference``), plus a spot-check sample
of each task family's accepted rows. A reviewer accepts or rejects rows (``synth review accept|reject``);
decisions are appended to ``synth.review_decisions`` and the latest decision per row wins.
Rejected rows never enter a mix again; with ``review_policy: require_acceptance`` flagged rows
stay out until someone accepts them.
"""

from __future__ import annotations

import getpass
import hashlib
from datetime import UTC, datetime

import polars as pl
from pydantic import Field

from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform

QUEUE_SCHEMA = {
    "candidate_id": pl.String,
    "generation": pl.Int64,
    "task_id": pl.String,
    "family": pl.String,
    "prompt": pl.String,
    "training_text": pl.String,
    "judge_score": pl.Float64,
    "flag_reason": pl.String,
    "status": pl.String,  # pending | accepted | rejected
}
DECISION_SCHEMA = {
    "candidate_id": pl.String,
    "decision": pl.String,
    "reviewer": pl.String,
    "note": pl.String,
    "decided_at": pl.Datetime("us", "UTC"),
}


JUDGE_UNTRUSTED = "judge_untrusted"


PROMISING_SCIENCE = "promising_science"


def flag_rows(
    filtered: pl.DataFrame,
    spot_checks_per_family: int,
    judge_threshold: float,
    unverified_tasks: set[str] = frozenset(),
    judge_trusted: bool = True,
    science_per_family: int = 0,
) -> pl.DataFrame:
    """Low judge scores, a spot-check sample per family, one row per task whose reference
    answer rests on the generator's agreement alone (``unverified_reference``), while the
    judge's calibration does not clear its thresholds every row only the judge passed
    (``judge_untrusted``: held out of the mix until a person accepts it), and the most
    promising accepted proposals of each science family (``promising_science``: the highest
    simulation scores, one per task first) for a scientist to look at."""
    rows = []
    for _family, group in filtered.group_by(["family"], maintain_order=True):
        ordered = sorted(group.to_dicts(), key=lambda r: hashlib.sha1(r["candidate_id"].encode()).hexdigest())
        spot = {r["candidate_id"] for r in ordered[:spot_checks_per_family]}
        promising = _promising([r for r in ordered if r.get("domain") == "science"], science_per_family)
        sampled: set[str] = set()
        for r in ordered:
            untrusted = not judge_trusted and r.get("verifier") == "judge"
            low = r.get("judge_score") is not None and r["judge_score"] < judge_threshold
            unverified = r["task_id"] in unverified_tasks and r["task_id"] not in sampled
            if unverified:
                sampled.add(r["task_id"])
            if untrusted or low or unverified or r["candidate_id"] in promising or r["candidate_id"] in spot:
                reason = (
                    JUDGE_UNTRUSTED
                    if untrusted
                    else "low_judge_score"
                    if low
                    else "unverified_reference"
                    if unverified
                    else PROMISING_SCIENCE
                    if r["candidate_id"] in promising
                    else "spot_check"
                )
                rows.append({**r, "flag_reason": reason, "status": "pending"})
    return conform(rows, QUEUE_SCHEMA)


def _promising(rows: list[dict], k: int) -> set[str]:
    """Up to k proposals: best score first, one per task before a second of any task."""
    firsts, rest, seen = [], [], set()
    for r in sorted(rows, key=lambda r: -(r.get("score") or 0.0)):
        (rest if r["task_id"] in seen else firsts).append(r)
        seen.add(r["task_id"])
    return {r["candidate_id"] for r in (firsts + rest)[:k]}


def latest_decisions(decisions: pl.DataFrame | None) -> dict[str, str]:
    if decisions is None or decisions.height == 0:
        return {}
    last = decisions.sort("decided_at").group_by("candidate_id").agg(pl.col("decision").last())
    return dict(last.iter_rows())


def with_status(queue: pl.DataFrame, decisions: dict[str, str]) -> pl.DataFrame:
    status = {"accept": "accepted", "reject": "rejected"}
    return queue.with_columns(
        pl.col("candidate_id")
        .map_elements(lambda c: status.get(decisions.get(c, ""), "pending"), return_dtype=pl.String)
        .alias("status")
    )


def decision_rows(ids: list[str], decision: str, note: str = "", reviewer: str | None = None) -> pl.DataFrame:
    if decision not in ("accept", "reject"):
        raise ValueError("decision must be accept or reject")
    now = datetime.now(UTC)
    who = reviewer or getpass.getuser()
    return pl.DataFrame(
        [{"candidate_id": i, "decision": decision, "reviewer": who, "note": note, "decided_at": now} for i in ids],
        schema=DECISION_SCHEMA,
    )


def apply_decisions(
    accepted: pl.DataFrame,
    decisions: dict[str, str],
    flagged: set[str],
    require_acceptance: bool,
    must_accept: set[str] = frozenset(),
) -> tuple[pl.DataFrame, int, int]:
    """(rows allowed into the mix, rejected count, held-back pending count). Rows in
    ``must_accept`` (only an untrusted judge passed them) wait for acceptance under any policy."""
    rejected = {c for c, d in decisions.items() if d == "reject"}
    held = {c for c in (flagged if require_acceptance else set()) | set(must_accept) if decisions.get(c) != "accept"}
    keep = accepted.filter(~pl.col("candidate_id").is_in(rejected | held))
    n_rej = accepted.filter(pl.col("candidate_id").is_in(rejected)).height
    n_held = accepted.filter(pl.col("candidate_id").is_in(held - rejected)).height
    return keep, n_rej, n_held


class ReviewQueueSettings(Settings):
    """What the review queue samples for a person."""

    spot_checks_per_family: int = Field(default=3, ge=0, description="accepted rows per family sampled for review")
    judge_threshold: float = Field(
        default=0.5, ge=0, le=1, description="accepted rows the judge scored below this are flagged"
    )
    science_reviews_per_family: int = Field(
        default=3, ge=0, description="the most promising accepted proposals of each science family, for a scientist"
    )
