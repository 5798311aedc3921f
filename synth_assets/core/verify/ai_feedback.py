"""AI feedback through the generator interface: an LLM judge with a rubric, and a
constitutional critique-and-revise step against written principles.

Both are plain completion prompts, so they work with base models (the embedded default) and
with chat endpoints alike. The rubric and the principles are user files; the defaults ship in
``synth_assets/prompts/``. A judge's score never overrides a programmatic verdict: it is
recorded beside it, and it decides only for tasks whose verifier is ``judge``. A revision is a
new candidate that is verified again by the task's own verifier.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import Sample, SampleRequest, TextGenerator

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
DEFAULT_RUBRIC = PROMPTS / "judge_rubric.txt"
DEFAULT_PRINCIPLES = PROMPTS / "principles.txt"
_SCORE = re.compile(r"\b(10|[1-9])\b")


def read_text_file(path: str | Path | None, default: Path, field: str) -> str:
    p = Path(path) if path else default
    if not p.exists():
        raise SynthConfigError(f"{field}: file {p} does not exist")
    text = p.read_text(encoding="utf-8").strip()
    if not text:
        raise SynthConfigError(f"{field}: file {p} is empty")
    return text


def judge_prompt(rubric: str, task: str, response: str) -> str:
    return f"{rubric}\n\nTask:\n{task.strip()}\n\nResponse:\n{response.strip()}\n\nScore (1-10):"


# worked examples, one for each answer, so a base model learns the format and that B is as
# likely as A (without them the embedded model answered "A" to every pair)
_PREFERENCE_SHOTS = (("What is 9 + 4?", "13", "14", "A"), ("How many vowels are in 'banana'?", "2", "3", "B"))


def _preference_item(task: str, a: str, b: str) -> str:
    return (
        f"Task:\n{task.strip()}\n\nResponse A:\n{a.strip()}\n\nResponse B:\n{b.strip()}\n\n"
        "The better response is Response"
    )


def preference_prompt(task: str, a: str, b: str) -> str:
    shots = "".join(f"{_preference_item(t, x, y)} {w}\n\n" for t, x, y, w in _PREFERENCE_SHOTS)
    return f"Which response answers the task correctly?\n\n{shots}{_preference_item(task, a, b)}"


_CHOICE = re.compile(r"\b([AB])\b")


def parse_choice(text: str) -> str | None:
    m = _CHOICE.search(text)
    return m.group(1) if m else None


def parse_score(text: str) -> int | None:
    m = _SCORE.search(text)
    return int(m.group(1)) if m else None


@dataclass
class JudgeResult:
    score: float | None  # normalised to [0, 1]; None when the judge's reply had no score
    raw: str
    seconds: float


class Judge:
    """Scores (task, response) pairs against a rubric with any TextGenerator."""

    def __init__(self, generator: TextGenerator, rubric: str, max_tokens: int = 4, seed: int = 0) -> None:
        self.generator, self.rubric, self.max_tokens, self.seed = generator, rubric, max_tokens, seed

    @property
    def name(self) -> str:
        return f"llm_judge:{self.generator.model}"

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeResult]:
        reqs = [
            SampleRequest(
                task_id=f"judge/{i}",
                prompt=judge_prompt(self.rubric, t, r),
                prompt_template="judge_v1",
                temperature=0.0,
                top_p=1.0,
                max_tokens=self.max_tokens,
                stop=("\n",),
                seed=self.seed,
                sample_index=0,
            )
            for i, (t, r) in enumerate(pairs)
        ]
        out = []
        for s in self.generator.generate(reqs):
            n = parse_score(s.text)
            out.append(JudgeResult(None if n is None else (n - 1) / 9, s.text.strip()[:200], s.latency_s))
        return out

    def prefer(self, items: Sequence[tuple[str, str, str]]) -> list[str | None]:
        """For each (task, response A, response B): "A", "B", or None when the reply names neither."""
        reqs = [
            SampleRequest(
                task_id=f"prefer/{i}",
                prompt=preference_prompt(t, a, b),
                prompt_template="judge_pairwise_v1",
                temperature=0.0,
                top_p=1.0,
                max_tokens=self.max_tokens,
                stop=("\n",),
                seed=self.seed,
                sample_index=0,
            )
            for i, (t, a, b) in enumerate(items)
        ]
        return [parse_choice(s.text) for s in self.generator.generate(reqs)]


def critique_prompt(principles: str, task: str, response: str) -> str:
    return (
        f"Principles:\n{principles}\n\nTask:\n{task.strip()}\n\nResponse:\n{response.strip()}\n\n"
        "Critique: which principle does the response break, and how?\nCritique:"
    )


def revision_prompt(principles: str, task: str, response: str, critique: str) -> str:
    return (
        f"Principles:\n{principles}\n\nTask:\n{task.strip()}\n\nResponse:\n{response.strip()}\n\n"
        f"Critique:{critique.rstrip()}\n\nRewrite the response so that it follows every principle.\n"
        "Revised response:"
    )


@dataclass
class Revision:
    critique: str
    text: str
    sample: Sample


class Constitution:
    """Critique a response against principles, then revise it (two generator calls)."""

    def __init__(self, generator: TextGenerator, principles: str, max_tokens: int = 64, seed: int = 0) -> None:
        self.generator, self.principles, self.max_tokens, self.seed = generator, principles, max_tokens, seed

    def revise(self, items: Sequence[tuple[str, str, Sequence[str]]]) -> list[Revision]:
        """items: (task, response, stop sequences for the revision)."""
        crit_reqs = [
            SampleRequest(
                task_id=f"critique/{i}",
                prompt=critique_prompt(self.principles, t, r),
                prompt_template="constitutional_critique_v1",
                temperature=0.0,
                top_p=1.0,
                max_tokens=self.max_tokens,
                stop=("\n\n",),
                seed=self.seed,
                sample_index=0,
            )
            for i, (t, r, _s) in enumerate(items)
        ]
        critiques = [s.text.strip() for s in self.generator.generate(crit_reqs)]
        rev_reqs = [
            SampleRequest(
                task_id=f"revision/{i}",
                prompt=revision_prompt(self.principles, t, r, c),
                prompt_template="constitutional_revision_v1",
                temperature=0.0,
                top_p=1.0,
                max_tokens=self.max_tokens,
                stop=tuple(stop),
                seed=self.seed,
                sample_index=0,
            )
            for i, ((t, r, stop), c) in enumerate(zip(items, critiques))
        ]
        return [Revision(c, s.text, s) for c, s in zip(critiques, self.generator.generate(rev_reqs))]
