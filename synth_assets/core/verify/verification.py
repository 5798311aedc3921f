"""Checking every candidate with something stronger than the generator.

Verdicts: ``pass`` (the verifier vouches for it), ``fail`` (wrong), ``timeout`` and ``error``
(the check could not complete). Every candidate keeps its verdict, score, verifier name and
version, detail and the time the check took: failures are evidence, and later they are the
rejected halves of preference pairs.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import CANDIDATE_SCHEMA, is_rationale_template
from synth_assets.core.sandbox.sandbox import FunctionCheck, Sandbox
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform, reasoning_gym_dataset, score_reasoning_gym
from synth_assets.core.tasks.worked_steps import split_rationale
from synth_assets.core.verify.ai_feedback import Constitution, Judge
from synth_assets.core.verify.custom_verifiers import (
    CustomCanary,
    CustomVerifier,
    CustomVerifierSpec,
    checked_canary,
    read_canaries_file,
)
from synth_assets.core.verify.steps import wrong_steps

VERDICT_SCHEMA: dict[str, pl.DataType] = {
    **CANDIDATE_SCHEMA,
    "extracted_answer": pl.String,
    "verdict": pl.String,
    "score": pl.Float64,
    "verifier_name": pl.String,
    "verifier_version": pl.String,
    "verdict_detail": pl.String,
    "verify_seconds": pl.Float64,
    "judge_score": pl.Float64,  # the LLM judge's score in [0, 1], when a judge ran
    "judge_detail": pl.String,
    "revision_of": pl.String,  # set on constitutional revisions: the candidate revised
    "critique": pl.String,
}


@dataclass
class Verdict:
    verdict: str
    score: float
    verifier_name: str
    verifier_version: str
    detail: str
    seconds: float = 0.0
    extracted_answer: str | None = None


@functools.cache
def _pkg_version(name: str) -> str:
    """Cached: it is asked once per verified candidate and reads package metadata from disk."""
    try:
        return version(name)
    except Exception:  # noqa: BLE001 (package metadata can fail many ways; the version is then "unknown")
        return "unknown"


def extract_short_answer(completion: str) -> str:
    """The answer a few-shot prompt asks for: the completion's first non-empty line."""
    for line in completion.splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_answer(completion: str, rationale: bool) -> tuple[str, list[str]]:
    """(the answer, the wrong steps) of a completion: the first line for an answer prompt; for a
    rationale prompt the ``Answer:`` line ("" when there is none) and the work's wrong steps."""
    if not rationale:
        return extract_short_answer(completion), []
    work, answer = split_rationale(completion)
    return answer or "", wrong_steps(work)


_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", re.IGNORECASE)


def extract_math_answer(completion: str) -> str:
    """Boxed answer, else 'Answer: x', else the last line."""
    boxed = _BOXED.findall(completion)
    if boxed:
        return boxed[-1].strip()
    m = _ANSWER_IS.findall(completion)
    if m:
        return m[-1].strip().rstrip(".")
    lines = [ln.strip() for ln in completion.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ verifiers
def verify_reasoning_gym(row: dict, pass_threshold: float) -> Verdict:
    spec = json.loads(row["verifier_spec"])
    # the configuration the task was built with (its level) travels in the spec: the item scored
    # is the item that was asked
    ds = reasoning_gym_dataset(spec["name"], spec["size"], spec["seed"], spec.get("config"))
    entry = ds[spec["index"]]
    answer, wrong = read_answer(row["completion"] or "", is_rationale_template(row.get("prompt_template")))
    t0 = time.perf_counter()
    if wrong:  # a right answer reached by a wrong step is not a pass: it would teach the wrong step
        return Verdict(
            "fail",
            0.0,
            f"reasoning_gym:{spec['name']}",
            _pkg_version("reasoning-gym"),
            f"wrong step {wrong[0]!r} (answer {answer[:40]!r})",
            time.perf_counter() - t0,
            answer,
        )
    # a family that can say what is wrong (the science families: the violated constraints) scores
    # and explains in one call (one simulation per verdict)
    explained = getattr(ds, "score_with_detail", None)
    try:
        if callable(explained):
            score, why = explained(answer, entry)
            score = float(score)
        else:
            score, why = score_reasoning_gym(ds, answer, entry), f"expected {str(entry['answer'])[:80]!r}"
    except Exception as exc:  # noqa: BLE001 - a scorer crash is an error verdict, not a crash of the run
        return Verdict(
            "error",
            0.0,
            f"reasoning_gym:{spec['name']}",
            _pkg_version("reasoning-gym"),
            f"scorer raised {type(exc).__name__}: {exc}",
            time.perf_counter() - t0,
            answer,
        )
    ok = score >= pass_threshold
    return Verdict(
        "pass" if ok else "fail",
        score,
        f"reasoning_gym:{spec['name']}",
        _pkg_version("reasoning-gym"),
        f"score {score:.3f} (threshold {pass_threshold}); {why}"[:500],
        time.perf_counter() - t0,
        answer,
    )


def scorer_says_right(row: dict) -> bool | None:
    """A sample's cheap verdict, for where raw_candidates samples more (resample_unsolved):
    reasoning-gym's scorer at verified_set's default threshold; None for every other verifier
    (code waits for the sandbox). The verdict that counts is still verify_candidates'."""
    if row["verifier"] != "reasoning_gym":
        return None
    return verify_reasoning_gym(row, VerifiedSetSettings.model_fields["pass_threshold"].default).verdict == "pass"


# Two readings of math-verify's that the verifier canaries caught (core/verify/canaries.py): a sign set apart
# by spaces reads as no sign at all ("- 7" as 7, "- \\frac{1}{3}" as 1/3: a wrong answer passed, a right one
# failed), and LaTeX without delimiters ("\\sqrt{2}", "x^2+2x+1") reads as nothing (every candidate failed).
_SPACED_SIGN = re.compile(r"^-\s+")


def _math_parse(text: str) -> list:
    from math_verify import parse

    text = _SPACED_SIGN.sub("-", text)
    return parse(text) or parse(f"${text}$")


def verify_math(row: dict) -> Verdict:
    from math_verify import verify

    t0 = time.perf_counter()
    answer = extract_math_answer(row["completion"] or "")
    try:
        gold, pred = _math_parse(row["answer"]), _math_parse(answer)
        ok = bool(verify(gold, pred))
    except Exception as exc:  # noqa: BLE001 (math-verify may raise anything on a malformed answer: an error verdict)
        return Verdict(
            "error",
            0.0,
            "math_verify",
            _pkg_version("math-verify"),
            f"math-verify raised {type(exc).__name__}: {exc}",
            time.perf_counter() - t0,
            answer,
        )
    return Verdict(
        "pass" if ok else "fail",
        1.0 if ok else 0.0,
        "math_verify",
        _pkg_version("math-verify"),
        f"expected {row['answer']!r}, got {answer!r}",
        time.perf_counter() - t0,
        answer,
    )


def _normalise(s: str) -> str:
    return " ".join(s.strip().lower().split()).rstrip(".")


def verify_exact(row: dict) -> Verdict:
    t0 = time.perf_counter()
    answer, wrong = read_answer(row["completion"] or "", is_rationale_template(row.get("prompt_template")))
    ok = not wrong and _normalise(answer) == _normalise(row["answer"] or "")
    return Verdict(
        "pass" if ok else "fail",
        1.0 if ok else 0.0,
        "exact_match",
        "1",
        f"wrong step {wrong[0]!r}" if wrong else f"expected {row['answer']!r}, got {answer!r}",
        time.perf_counter() - t0,
        answer,
    )


def code_check(row: dict) -> FunctionCheck:
    """HumanEval-style: the module is prompt + completion; the task's test (with the prompt's
    helpers) runs outside the candidate and calls it only through plain data."""
    spec = json.loads(row["verifier_spec"])
    return FunctionCheck(
        code=f"{row['prompt']}{row['completion'] or ''}",
        entry_point=spec["entry_point"],
        test=spec["test"],
        prompt=row["prompt"],
    )


def _code_verdicts(rows: list[dict], sandbox: Sandbox, timeout_s: float | None = None) -> list[Verdict]:
    """Verdicts on code rows from the sandbox; ``timeout_s`` shortens the wall-clock limit of this
    call (the canary that never ends, core/verify/canaries.py)."""
    sandbox_version = f"bwrap+{sandbox.python}" if sandbox.enabled else "UNSANDBOXED"
    checks = [code_check(r) for r in rows]
    results = sandbox.check_functions(checks) if timeout_s is None else sandbox.check_functions(checks, timeout_s)
    return [
        Verdict(
            res.status, 1.0 if res.status == "pass" else 0.0, "python_tests", sandbox_version, res.detail, res.seconds
        )
        for res in results
    ]


# ------------------------------------------------------------------ driver
def response_text(row: dict) -> str:
    """What a reader (judge, critic) sees as the candidate's response."""
    if row["verifier"] == "python_tests":
        return f"{row['prompt']}{row['completion'] or ''}"
    return (row["completion"] or "").strip()


def check_custom_names(candidates: pl.DataFrame, custom: dict[str, CustomVerifier]) -> None:
    wanted = {v.split(":", 1)[1] for v in candidates["verifier"].unique().to_list() if v and v.startswith("custom:")}
    missing = sorted(wanted - set(custom))
    if missing:
        raise SynthConfigError(
            f"verified_set.custom_verifiers: tasks name {', '.join('custom:' + m for m in missing)} but no such "
            f"verifier is configured (configured: {', '.join(sorted(custom)) or 'none'})"
        )


def verify_candidates(
    candidates: pl.DataFrame,
    sandbox: Sandbox,
    pass_threshold: float = 1.0,
    log: Callable[[str], None] = lambda _m: None,
    custom: dict[str, CustomVerifier] | None = None,
    judge: Judge | None = None,
    judge_threshold: float = 0.6,
    judge_all: bool = False,
) -> pl.DataFrame:
    """A verdict for every candidate; code runs in the sandbox, ``sandbox.workers`` at a time.

    The judge decides tasks whose verifier is ``judge``; with ``judge_all`` it also scores every
    other candidate, recorded in ``judge_score`` beside the programmatic verdict.
    """
    custom = custom or {}
    check_custom_names(candidates, custom)
    rows = candidates.to_dicts()
    verdicts: list[Verdict | None] = [None] * len(rows)
    code_idx = [i for i, r in enumerate(rows) if r["verifier"] == "python_tests"]
    if code_idx:
        log(f"running {len(code_idx)} code candidates in the sandbox ({sandbox.workers} at a time)")
        t0 = time.perf_counter()
        for i, v in zip(code_idx, _code_verdicts([rows[i] for i in code_idx], sandbox)):
            verdicts[i] = v
        log(f"code verified in {time.perf_counter() - t0:.1f}s")
    judge_idx = [i for i, r in enumerate(rows) if r["verifier"] == "judge" or (judge_all and judge is not None)]
    judged: dict[int, object] = {}
    if judge_idx:
        if judge is None:
            raise SynthConfigError(
                "verified_set.judge.enabled: tasks use verifier 'judge' but the judge is off; enable it"
            )
        log(f"judging {len(judge_idx)} candidates with {judge.name}")
        results = judge.score([(rows[i]["prompt"], response_text(rows[i])) for i in judge_idx])
        judged = dict(zip(judge_idx, results))
    for i, row in enumerate(rows):
        if verdicts[i] is not None:
            continue
        kind = row["verifier"] or ""
        if kind == "reasoning_gym":
            verdicts[i] = verify_reasoning_gym(row, pass_threshold)
        elif kind == "math":
            verdicts[i] = verify_math(row)
        elif kind == "exact":
            verdicts[i] = verify_exact(row)
        elif kind == "judge":
            j = judged[i]
            if j.score is None:
                verdicts[i] = Verdict("error", 0.0, judge.name, "1", f"judge reply has no score: {j.raw!r}", j.seconds)
            else:
                verdicts[i] = Verdict(
                    "pass" if j.score >= judge_threshold else "fail",
                    j.score,
                    judge.name,
                    "1",
                    f"judge score {j.score:.2f} (threshold {judge_threshold})",
                    j.seconds,
                )
        elif kind.startswith("custom:"):
            v = custom[kind.split(":", 1)[1]]
            r = v.check(
                {k: row.get(k) for k in ("task_id", "family", "prompt", "completion", "answer", "verifier_spec")}
            )
            verdicts[i] = Verdict(r.verdict, r.score, kind, v.version, r.detail, r.seconds)
        else:
            verdicts[i] = Verdict("error", 0.0, kind or "none", "-", f"no verifier named {kind!r}")
    out = []
    for i, (row, v) in enumerate(zip(rows, verdicts)):
        assert v is not None
        j = judged.get(i)
        out.append(
            {
                **row,
                "extracted_answer": v.extracted_answer,
                "verdict": v.verdict,
                "score": v.score,
                "verifier_name": v.verifier_name,
                "verifier_version": v.verifier_version,
                "verdict_detail": v.detail[:500],
                "verify_seconds": v.seconds,
                "judge_score": getattr(j, "score", None),
                "judge_detail": getattr(j, "raw", None),
            }
        )
    return conform(out, VERDICT_SCHEMA)


def revise_failures(
    verified: pl.DataFrame,
    constitution: Constitution,
    sandbox: Sandbox,
    max_revisions: int,
    log: Callable[[str], None] = lambda _m: None,
    **verify_kwargs: object,
) -> pl.DataFrame:
    """Critique and revise failed candidates (one per task first), then verify the revisions
    with each task's own verifier. Returns only the new revision rows."""
    failed = verified.filter((pl.col("verdict") != "pass") & pl.col("revision_of").is_null())
    failed = failed.sort("sample_index").unique("task_id", keep="first", maintain_order=True).head(max_revisions)
    if failed.height == 0:
        return conform([], VERDICT_SCHEMA)
    log(f"constitutional revision of {failed.height} failed candidates")
    rows = failed.to_dicts()
    stops = [("\n\n\n", "\nTask:", "\nPrinciples:") if r["verifier"] == "python_tests" else ("\n",) for r in rows]
    revisions = constitution.revise([(r["prompt"], response_text(r), st) for r, st in zip(rows, stops)])
    new = []
    for r, rev in zip(rows, revisions):
        text = rev.text if r["verifier"] != "python_tests" else "\n" + rev.text.strip("\n") + "\n"
        new.append(
            {
                **{k: r[k] for k in CANDIDATE_SCHEMA},
                "candidate_id": f"{r['candidate_id']}/rev1",
                "completion": text,
                "prompt_template": "constitutional_revision_v1",
                "completion_tokens": rev.sample.completion_tokens,
                "prompt_tokens": rev.sample.prompt_tokens,
                "latency_s": rev.sample.latency_s,
                "finish_reason": rev.sample.finish_reason,
                "generation_key": f"{r['generation_key']}/rev1",
                "revision_of": r["candidate_id"],
                "critique": rev.critique[:500],
            }
        )
    frame = pl.DataFrame(new, schema={**CANDIDATE_SCHEMA, "revision_of": pl.String, "critique": pl.String})
    checked = verify_candidates(frame.drop("revision_of", "critique"), sandbox, log=log, **verify_kwargs)
    return checked.with_columns(revision_of=frame["revision_of"], critique=frame["critique"])


class JudgeSettings(Settings):
    """The LLM judge inside verification."""

    enabled: bool = Field(default=False, description="score candidates with the LLM judge (the generator resource)")
    rubric_file: str | None = Field(
        default=None, description="the rubric; default synth_assets/prompts/judge_rubric.txt"
    )
    threshold: float = Field(default=0.6, ge=0, le=1, description="judge score (0-1) at which a 'judge' task passes")
    score_all: bool = Field(default=False, description="also score candidates that have a programmatic verifier")


class ReviseSettings(Settings):
    """Critique and revise of failed candidates."""

    enabled: bool = Field(default=False, description="critique and revise failed candidates against the principles")
    principles_file: str | None = Field(default=None, description="default synth_assets/prompts/principles.txt")
    max_revisions: int = Field(
        default=20, ge=0, description="failed candidates revised per generation (one per task first)"
    )
    max_tokens: int = Field(default=96, ge=1)


class CustomCanarySettings(Settings):
    """An example whose verdict the verifier's author knows: a canary of that verifier."""

    completion: str = Field(description="the response the verifier checks")
    expect: str = Field(description="'pass' (a good example) or 'fail' (a bad one: it must not pass)")
    prompt: str = Field(default="", description="the task's prompt, as the verifier gets it")
    answer: str | None = Field(default=None, description="the task's reference answer, if the verifier uses one")
    verifier_spec: str | None = Field(default=None, description="the task's verifier_spec (JSON), if it uses one")
    name: str = Field(default="", description="shown in the canary report")


class CustomVerifierSettings(Settings):
    """A user verifier: a callable or a command, and the canaries that prove it."""

    name: str = Field(description="tasks use it as verifier 'custom:<name>'")
    callable: str | None = Field(default=None, description="'package.module:function'")
    command: list[str] = Field(default=[], description="an external command; JSON on stdin, exit 0 = pass")
    timeout_s: float = Field(default=10.0, gt=0)
    pass_threshold: float = Field(default=1.0, ge=0, le=1)
    version: str = Field(default="1", description="recorded with every verdict")
    canaries: list[CustomCanarySettings] = Field(
        default=[], description="good and bad examples run every generation; none: the verifier is unproven (WARN)"
    )
    canaries_file: str | None = Field(
        default=None, description="more canaries: a JSONL file beside the command (completion, expect, prompt, ...)"
    )

    def spec(self) -> CustomVerifierSpec:
        """The core's spec of this verifier, its declared canaries read (the file's after the config's)."""
        where = f"verified_set.custom_verifiers[{self.name}].canaries"
        canaries = [
            checked_canary(
                CustomCanary(c.completion, c.expect, c.prompt, c.answer, c.verifier_spec, c.name or f"#{i + 1}"),
                f"{where}[{i}]",
            )
            for i, c in enumerate(self.canaries)
        ]
        if self.canaries_file:
            canaries += read_canaries_file(self.canaries_file, self.name)
        return CustomVerifierSpec(
            self.name,
            self.callable,
            tuple(self.command),
            self.timeout_s,
            self.pass_threshold,
            self.version,
            tuple(canaries),
        )


class VerifiedSetSettings(Settings):
    """When a scored candidate passes (the judge, revise and custom verifiers nest beside it)."""

    pass_threshold: float = Field(
        default=1.0, ge=0, le=1, description="a scorer's score at or above which a candidate passes"
    )
    canary_items: int = Field(
        default=2,
        ge=0,
        description="tasks per verifier whose answers make its canaries, run every generation before any verdict "
        "is trusted (0: no canaries, and the check verifiers_proven warns that the verifiers are unproven)",
    )
