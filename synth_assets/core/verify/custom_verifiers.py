"""User-registered verifiers: a Python callable or an external command, each with a timeout.

A task uses one by naming it in its ``verifier`` field as ``custom:<name>``.

* callable (``"package.module:function"``): called with a dict (task_id, family, prompt,
  completion, answer, verifier_spec) and returns a bool, a score in [0, 1], or a dict with
  ``score`` and optional ``verdict`` and ``detail``.
* command (an argv list, e.g. a simulator or a proof checker): gets the same dict as JSON on
  stdin; exit code 0 means pass, 1 fail, anything else error; a JSON object on stdout may
  add ``score`` and ``detail``. Commands are the user's own trusted tools and run outside the
  code sandbox, with the model's output only as data on their stdin.

A verifier proves itself with canaries declared beside it (``CustomCanary``: good examples
that must pass, bad ones that must not), in the run config or in a JSONL file next to the
command; every generation runs them (``core/verify/canaries.py``), and a verifier without any
is reported as unproven.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth_assets.core.errors import SynthConfigError

CANARY_EXPECTATIONS = ("pass", "fail")  # a good example must pass; a bad one must not


@dataclass(frozen=True)
class CustomCanary:
    """An input whose verdict the verifier's author knows: ``expect`` is ``pass`` (a good
    example) or ``fail`` (a bad one, which must not pass). The verifier gets it as it gets a
    candidate: task_id, family, prompt, completion, answer and verifier_spec."""

    completion: str
    expect: str
    prompt: str = ""
    answer: str | None = None
    verifier_spec: str | None = None
    name: str = ""


@dataclass(frozen=True)
class CustomVerifierSpec:
    name: str
    callable: str | None = None
    command: tuple[str, ...] = field(default_factory=tuple)
    timeout_s: float = 10.0
    pass_threshold: float = 1.0
    version: str = "1"
    canaries: tuple[CustomCanary, ...] = ()


def read_canaries_file(path: str, verifier: str) -> list[CustomCanary]:
    """Declared canaries from a JSONL file (one object a line: completion, expect, and optional
    prompt, answer, verifier_spec, name), with errors that name the file and the line."""
    where = f"verified_set.custom_verifiers[{verifier}].canaries_file"
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except OSError as exc:
        raise SynthConfigError(f"{where}: cannot read {path!r}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SynthConfigError(f"{where}: {p} line {n} is not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise SynthConfigError(f"{where}: {p} line {n}: expected an object with completion and expect")
        known = {"completion", "expect", "prompt", "answer", "verifier_spec", "name"}
        if set(obj) - known or "completion" not in obj or "expect" not in obj:
            raise SynthConfigError(
                f"{where}: {p} line {n}: fields are completion and expect (pass or fail), optionally "
                f"prompt, answer, verifier_spec and name; got {sorted(obj)}"
            )
        out.append(
            checked_canary(
                CustomCanary(
                    str(obj["completion"]),
                    str(obj["expect"]),
                    str(obj.get("prompt") or ""),
                    None if obj.get("answer") is None else str(obj["answer"]),
                    None if obj.get("verifier_spec") is None else str(obj["verifier_spec"]),
                    str(obj.get("name") or f"line {n}"),
                ),
                f"{where}: {p} line {n}",
            )
        )
    return out


def checked_canary(canary: CustomCanary, where: str) -> CustomCanary:
    if canary.expect not in CANARY_EXPECTATIONS:
        raise SynthConfigError(f"{where}: expect is {canary.expect!r}; use pass (a good example) or fail (a bad one)")
    return canary


@dataclass
class CustomResult:
    verdict: str
    score: float
    detail: str
    seconds: float


def _load_callable(spec: CustomVerifierSpec) -> Callable[[dict], Any]:
    module, _, attr = (spec.callable or "").partition(":")
    where = f"verified_set.custom_verifiers[{spec.name}].callable"
    if not module or not attr:
        raise SynthConfigError(f"{where}: {spec.callable!r} must look like 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SynthConfigError(f"{where}: cannot import {spec.callable!r}: {exc}") from None
    if not callable(fn):
        raise SynthConfigError(f"{where}: {spec.callable!r} is not callable")
    return fn


def _interpret(value: Any, threshold: float) -> tuple[str, float, str]:
    if isinstance(value, bool):
        return ("pass" if value else "fail"), float(value), ""
    if isinstance(value, (int, float)):
        return ("pass" if value >= threshold else "fail"), float(value), ""
    if isinstance(value, dict) and "score" in value:
        score = float(value["score"])
        verdict = value.get("verdict") or ("pass" if score >= threshold else "fail")
        if verdict not in ("pass", "fail", "error", "timeout"):
            return "error", 0.0, f"verifier returned verdict {verdict!r}"
        return verdict, score, str(value.get("detail", ""))[:300]
    return "error", 0.0, f"verifier returned {type(value).__name__}; expected bool, number or dict with 'score'"


class CustomVerifier:
    def __init__(self, spec: CustomVerifierSpec) -> None:
        if bool(spec.callable) == bool(spec.command):
            raise SynthConfigError(
                f"verified_set.custom_verifiers[{spec.name}]: set exactly one of 'callable' or 'command'"
            )
        if spec.timeout_s <= 0:
            raise SynthConfigError(f"verified_set.custom_verifiers[{spec.name}].timeout_s must be > 0")
        self.spec = spec
        self._fn = _load_callable(spec) if spec.callable else None
        self._pool = ThreadPoolExecutor(max_workers=1) if self._fn else None

    @property
    def version(self) -> str:
        what = self.spec.callable or " ".join(self.spec.command)
        return f"{self.spec.version} ({what})"

    def check(self, payload: dict) -> CustomResult:
        t0 = time.perf_counter()
        if self._fn is not None:
            fut = self._pool.submit(self._fn, payload)
            try:
                value = fut.result(timeout=self.spec.timeout_s)
            except FutureTimeout:
                # a thread cannot be killed: replace the pool so later calls are not stuck behind it
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = ThreadPoolExecutor(max_workers=1)
                return CustomResult(
                    "timeout", 0.0, f"callable exceeded {self.spec.timeout_s}s", time.perf_counter() - t0
                )
            except Exception as exc:  # noqa: BLE001 - a user's verifier may raise anything: it becomes an error verdict
                return CustomResult(
                    "error", 0.0, f"callable raised {type(exc).__name__}: {exc}"[:300], time.perf_counter() - t0
                )
            verdict, score, detail = _interpret(value, self.spec.pass_threshold)
            return CustomResult(verdict, score, detail, time.perf_counter() - t0)
        try:
            proc = subprocess.run(
                list(self.spec.command),
                input=json.dumps(payload),
                capture_output=True,
                text=True,
                timeout=self.spec.timeout_s,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return CustomResult("timeout", 0.0, f"command exceeded {self.spec.timeout_s}s", time.perf_counter() - t0)
        except OSError as exc:
            return CustomResult("error", 0.0, f"command failed to start: {exc}", time.perf_counter() - t0)
        extra: dict = {}
        if proc.stdout.strip().startswith("{"):
            try:
                extra = json.loads(proc.stdout)
            except json.JSONDecodeError:
                extra = {}
        verdict = {0: "pass", 1: "fail"}.get(proc.returncode, "error")
        score = float(extra.get("score", 1.0 if verdict == "pass" else 0.0))
        detail = str(extra.get("detail") or proc.stderr.strip()[-300:] or f"exit code {proc.returncode}")
        return CustomResult(verdict, score, detail[:300], time.perf_counter() - t0)


def build_verifiers(specs: list[CustomVerifierSpec]) -> dict[str, CustomVerifier]:
    names = [s.name for s in specs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SynthConfigError(f"verified_set.custom_verifiers: names must be unique; repeated {sorted(dupes)}")
    return {s.name: CustomVerifier(s) for s in specs}
