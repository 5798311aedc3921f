"""HumanEval candidates with known answers, for agreement tests and the verification bench."""

from __future__ import annotations

import json

from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.verify.verification import _code_verdicts


def broken_variants(solution: str) -> list[str]:
    """Deterministic wrong versions of a solution: the body replaced by ``return None``, and
    the first ``return`` negated (which some weak test suites still accept)."""
    out = ["    return None\n"]
    if "return " in solution:
        out.append(solution.replace("return ", "return not ", 1))
    return out


def humaneval_candidates(problems: list[dict]) -> list[tuple[dict, str]]:
    """(problem, completion) pairs: each canonical solution and its broken variants."""
    return [(p, c) for p in problems for c in [p["canonical_solution"], *broken_variants(p["canonical_solution"])]]


def sandbox_verdicts(sandbox: Sandbox, candidates: list[tuple[dict, str]]) -> list[str]:
    """Verdicts for HumanEval-shaped (problem, completion) pairs, as the pipeline computes them."""
    rows = [
        {
            "prompt": p["prompt"],
            "completion": c,
            "verifier_spec": json.dumps({"test": p["test"], "entry_point": p["entry_point"]}),
            "verifier": "python_tests",
        }
        for p, c in candidates
    ]
    return [v.verdict for v in _code_verdicts(rows, sandbox)]
