"""Wrong reference answers through task synthesis, before and after the program check.

    .venv/bin/python bench/reference_check.py            # 100 questions per family, 76 families

Questions are real reasoning-gym text (seed 3): every fast family of ``bench/near_duplicates``.
For each question the bench plants a wrong reference answer (the true answer plus one for a
number, the first two items swapped or an extra word otherwise) and asks what a consistently
wrong generator would get through:
- before: the agreement gate alone admits every planted answer (the generator agrees with itself);
- after: ``check_reference`` rejects it when a program reads the question (``reference_mismatch``);
  otherwise the task is admitted as ``unverified_reference`` and sampled for review.
It also counts false alarms: true answers (reasoning-gym's own) that a program contradicts,
which would reject good tasks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.near_duplicates import FAMILIES
from synth_assets.core.tasks.reference_check import check_reference
from synth_assets.core.tasks.sources import DEFAULT_FAMILIES


def plant(answer: str) -> str:
    try:
        return str(int(answer.replace(",", "")) + 1)
    except ValueError:
        pass
    try:
        return repr(float(answer) + 1.0)
    except ValueError:
        pass
    items = [a.strip() for a in answer.split(",")]
    if len(items) >= 2:
        return ", ".join([items[1], items[0]] + items[2:])
    return answer + " extra"


def main() -> None:
    import reasoning_gym

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-family", type=int, default=100)
    args = ap.parse_args()
    rows = []
    for fam in FAMILIES:
        ds = reasoning_gym.create_dataset(fam, size=args.per_family, seed=3)
        read = false_alarm = caught = 0
        for i in range(args.per_family):
            q, a = ds[i]["question"], str(ds[i]["answer"])
            truth = check_reference(fam, q, a)
            wrong = check_reference(fam, q, plant(a))
            read += truth is not None
            false_alarm += truth is not None and not truth.agrees
            caught += wrong is not None and not wrong.agrees
        rows.append((fam, read, false_alarm, caught))
    n = args.per_family
    print(
        f"{'family':<26} {'read by a program':>17} {'false alarms':>12} {'wrong admitted before':>21} "
        f"{'after: rejected':>15} {'after: unverified':>17}"
    )
    for fam, read, fa, caught in rows:
        if read:
            print(f"{fam:<26} {read:>17} {fa:>12} {n:>21} {caught:>15} {n - caught:>17}")
    tot_read = sum(r[1] for r in rows)
    tot_fa = sum(r[2] for r in rows)
    tot_caught = sum(r[3] for r in rows)
    total = n * len(rows)
    print(
        f"\nfamilies with a program: {sum(1 for r in rows if r[1])} of {len(rows)}; "
        f"questions read: {tot_read} of {total}; false alarms on true answers: {tot_fa}"
    )
    print(
        f"planted wrong answers: before {total} admitted ({total} by agreement); after {tot_caught} rejected as "
        f"reference_mismatch, {total - tot_caught} admitted as unverified_reference (no program reads them)"
    )
    where = [r for r in rows if r[1]]
    leaked = sum(r[1] - r[3] for r in where)
    print(f"where a program read the question: wrong answers admitted after = {leaked} (of {sum(r[1] for r in where)})")
    default = [r for r in rows if r[0] in DEFAULT_FAMILIES]
    print(
        f"default families {DEFAULT_FAMILIES}: read {sum(r[1] for r in default)} of {n * len(default)}, "
        f"wrong admitted after {sum(n - r[3] for r in default)} (all as unverified_reference)"
    )


if __name__ == "__main__":
    main()
