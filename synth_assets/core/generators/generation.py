"""Sampling candidates for tasks: the generator interface, prompts and provenance.

Every backend (the embedded llama.cpp model, OpenAI-compatible servers, imports) implements
``TextGenerator``: it turns ``SampleRequest`` objects into ``Sample`` objects. Everything
else here (which requests to make, which prompt, what provenance to keep) is shared.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple, Protocol

import polars as pl
from pydantic import Field, field_validator

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import few_shot_entries, few_shot_examples, split_level
from synth_assets.core.tasks.worked_steps import ANSWER_LABEL, WORK_LABEL, has_worked_steps, worked_steps

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.String,
    "generation": pl.Int64,
    "task_id": pl.String,
    "source": pl.String,
    "family": pl.String,
    "domain": pl.String,
    "prompt": pl.String,  # the task as a person would read it
    "answer": pl.String,
    "verifier": pl.String,
    "verifier_spec": pl.String,
    "license": pl.String,
    "completion": pl.String,
    "finish_reason": pl.String,
    "generator": pl.String,
    "model": pl.String,
    "model_terms": pl.String,  # the licence or terms of use of the model that wrote the completion
    "prompt_template": pl.String,
    "temperature": pl.Float64,
    "top_p": pl.Float64,
    "max_tokens": pl.Int64,
    "seed": pl.Int64,
    "sample_index": pl.Int64,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "latency_s": pl.Float64,
    "cached": pl.Boolean,  # served from the response cache (requested in an earlier, interrupted run)
    "cost_usd": pl.Float64,  # from the generator's price table; 0 for cached samples, null when unpriced
    "generation_key": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
}

CODE_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```", "\nassert ")
ANSWER_STOP = ("\n",)
# a rationale completion is a Work line and an Answer line: it stops at the blank line before the
# next question (or at the next question, should the model skip the blank line)
RATIONALE_STOP = ("\n\n", "\nQuestion:")
RATIONALE_MAX_TOKENS = 64
RATIONALE_INSTRUCTION = "Work out each question step by step, then give the final answer."
# every rationale prompt's template name starts so: verification, curation and the canaries read
# the form a candidate was asked in from its recorded template
RATIONALE_TEMPLATE_PREFIX = "rationale_"


@dataclass(frozen=True)
class SampleRequest:
    task_id: str
    prompt: str  # the full text sent to the model
    prompt_template: str
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int
    sample_index: int

    def key(self, model: str) -> str:
        """Identity of a sample: same model, prompt, sampling and index => same request."""
        payload = {"model": model, **{k: v for k, v in asdict(self).items() if k != "task_id"}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class Sample:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool = False  # served from the response cache: no request was made for it this run
    # set by generators that route requests to several members (MixtureGenerator): who wrote
    # it, and the request as that member sent it (its temperature and template may differ)
    generator: str | None = None
    model: str | None = None
    terms: str | None = None
    prices: tuple[float, float] | None = None
    request: SampleRequest | None = None


class TextGenerator(Protocol):
    """What every generator backend provides."""

    name: str  # the backend, e.g. "llama_cpp"
    model: str  # the model identity recorded on every row

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        """One Sample per request, in order."""
        ...


# ------------------------------------------------------------------ prompts
def _rg_families() -> set[str]:
    from synth_assets.core.tasks.sources import reasoning_gym_families

    return set(reasoning_gym_families())


class PromptSettings(Settings):
    """How a task becomes a prompt for a base model."""

    few_shot: int = Field(default=2, ge=0, description="solved examples in answer prompts (the model is a base model)")
    answer_max_tokens: int = Field(default=24, ge=1, description="tokens an answer completion may take")
    code_max_tokens: int = Field(default=160, ge=1, description="tokens a code completion may take")
    few_shot_seed: int = Field(default=7, description="which solved examples are shown")
    few_shot_pool: int = Field(
        default=20,
        ge=0,
        description="solved examples of the family's level from which each task draws its own few_shot "
        "(0 or <= few_shot: the same examples for every task, which a base model learns to copy)",
    )

    form: Literal["answer", "rationale"] = Field(
        default="answer",
        description="answer: the final answer only; rationale: a short worked rationale ('Work:', each "
        "arithmetic step and leg lookup checked) then 'Answer:', for families with a rationale writer "
        "(chain_sum, basic_arithmetic, products, leg_counting; others stay answer-only)",
    )
    rationale_max_tokens: int = Field(
        default=RATIONALE_MAX_TOKENS, ge=1, description="tokens a rationale completion (work and answer) may take"
    )

    def shots(self, family: str, key: str) -> list[tuple[str, str]]:
        """The solved examples shown before the task or held-out item ``key`` of ``family``."""
        if not self.few_shot:
            return []
        return few_shot_examples(family, self.few_shot, self.few_shot_seed, self.few_shot_pool, key)

    @property
    def template(self) -> str:
        """The prompt template's name: how many examples, and drawn from how large a pool."""
        if self.few_shot_pool > self.few_shot:
            return f"answer_{self.few_shot}of{self.few_shot_pool}shot_v2"
        return f"answer_{self.few_shot}shot_v1"

    def ask(self, family: str, question: str, key: str, rephrased: bool = False, form: str | None = None) -> Asked:
        """How a reasoning-gym question of ``family`` is asked: the prompt with its own few-shot
        draw for ``key``, the template's name, the token budget and stop strings. ``form``
        overrides the setting (training builds each row's prompt in the form the row was written
        in); ``rephrased`` is the held-out evaluation's prompt-template shift."""
        rationale = (form or self.form) == "rationale" and has_worked_steps(split_level(family)[0])
        if not rationale:
            examples = self.shots(family, key)
            prompt = rephrased_answer_prompt(question, examples) if rephrased else answer_prompt(question, examples)
            template = self.template if examples else "answer_0shot_v1"
            return Asked(prompt, template, self.answer_max_tokens, ANSWER_STOP, examples[-1][1] if examples else "")
        base = split_level(family)[0]
        entries = few_shot_entries(family, self.few_shot, self.few_shot_seed, self.few_shot_pool, key)
        worked = [(e["question"], worked_steps(base, e) or "", str(e["answer"])) for e in entries]
        prompt = rationale_prompt(question, worked, REPHRASED_RATIONALE if rephrased else RATIONALE_INSTRUCTION)
        return Asked(
            prompt,
            f"{RATIONALE_TEMPLATE_PREFIX}{self.few_shot}of{max(self.few_shot, self.few_shot_pool)}shot_v1",
            self.rationale_max_tokens,
            RATIONALE_STOP,
            worked[-1][2] if worked else "",
        )


def answer_prompt(
    question: str,
    examples: Sequence[tuple[str, str]],
    instruction: str = "Answer each question with the final answer only.",
    q_label: str = "Question:",
    a_label: str = "Answer:",
) -> str:
    """Few-shot completion prompt: the base model continues after the answer label. The held-out
    evaluation's rephrased variant passes other wording and labels."""
    parts = [instruction + "\n"]
    for q, a in examples:
        parts.append(f"{q_label} {q}\n{a_label} {a}\n")
    parts.append(f"{q_label} {question}\n{a_label}")
    return "\n".join(parts)


REPHRASED_INSTRUCTION = "Reply to every problem below with nothing but its final result."
REPHRASED_RATIONALE = "Solve every problem below: show the working, then state the result."


def rephrased_answer_prompt(question: str, examples: Sequence[tuple[str, str]]) -> str:
    """The answer prompt under other wording and labels (the held-out prompt-template shift)."""
    return answer_prompt(question, examples, REPHRASED_INSTRUCTION, "Q:", "A:")


def rationale_prompt(
    question: str, examples: Sequence[tuple[str, str, str]], instruction: str = RATIONALE_INSTRUCTION
) -> str:
    """Few-shot prompt for a worked rationale: each solved example shows its steps on a Work line
    and its result on an Answer line; the model continues after the question's ``Work:``."""
    parts = [instruction + "\n"]
    for q, work, a in examples:
        parts.append(f"Question: {q}\n{WORK_LABEL} {work}\n{ANSWER_LABEL} {a}\n")
    parts.append(f"Question: {question}\n{WORK_LABEL}")
    return "\n".join(parts)


def is_rationale_template(template: str | None) -> bool:
    """Whether a recorded prompt template asked for a rationale."""
    return (template or "").startswith(RATIONALE_TEMPLATE_PREFIX)


def is_rationale_prompt(prompt: str) -> bool:
    """Whether a stored prompt asks for a rationale (it ends where the work begins)."""
    return prompt.endswith(f"\n{WORK_LABEL}")


class Asked(NamedTuple):
    prompt: str
    template: str
    max_tokens: int
    stop: tuple[str, ...]
    last_shot_answer: str


def build_prompt(
    task: dict, settings: PromptSettings, form: str | None = None
) -> tuple[str, str, int, tuple[str, ...]]:
    """(prompt text, template name, max tokens, stop sequences) for one task row; ``form``
    overrides ``settings.form`` (see ``PromptSettings.ask``)."""
    if task["verifier"] == "python_tests":
        # HumanEval style: the model continues the function body after the signature+docstring
        return task["prompt"], "code_completion_v1", settings.code_max_tokens, CODE_STOP
    if task["source"] == "reasoning_gym" or (
        task["source"] == "synthesized" and split_level(task["family"])[0] in _rg_families()
    ):
        asked = settings.ask(task["family"], task["prompt"], task.get("task_id") or task["prompt"], form=form)
        return asked.prompt, asked.template, asked.max_tokens, asked.stop
    return answer_prompt(task["prompt"], []), "answer_0shot_v1", settings.answer_max_tokens, ANSWER_STOP


# ------------------------------------------------------------------ planning and running
class SamplingPlan(PromptSettings):
    """How many samples each task gets and how they are drawn (plus the prompt settings)."""

    samples_per_task: int = Field(default=6, ge=1, description="samples drawn for every task")
    temperatures: list[float] = Field(
        default=[0.7, 1.0], min_length=1, description="sampling temperatures, cycled over a task's samples"
    )
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int = Field(
        default=0, description="base seed; each sample's seed derives from it, the generation and the task"
    )
    progress_every_s: float = Field(
        default=15.0, gt=0, description="seconds between progress lines (samples done, rate) in the run log"
    )

    @field_validator("temperatures")
    @classmethod
    def _in_range(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not 0.0 <= t <= 2.0]
        if bad:
            raise ValueError(f"temperatures {bad} are outside [0, 2]")
        return v

    @property
    def prompts(self) -> PromptSettings:
        return self


class CandidatePlan(SamplingPlan):
    """The generation's sampling (raw_candidates): the plan, and more samples where none was right."""

    resample_unsolved: int = Field(
        default=6,
        ge=0,
        description="more samples for each task none of whose first samples_per_task is right by its own cheap "
        "check (reasoning-gym's scorer; code is not run here): without them the tasks a model rarely solves "
        "never reach the training mix (0 = off)",
    )


def _sample_seed(base: int, generation: int, task_id: str, index: int) -> int:
    h = hashlib.sha256(f"{base}/{generation}/{task_id}/{index}".encode()).hexdigest()
    return int(h[:8], 16)


def plan_requests(
    tasks: pl.DataFrame, plan: SamplingPlan, generation: int, indices: range | None = None
) -> list[tuple[dict, SampleRequest]]:
    """Requests ordered so samples of one prompt run back to back (llama.cpp reuses the KV cache).
    ``indices``: the sample indices of each task (default: the first ``samples_per_task``); each
    index has its own seed, so a task's later samples are new draws."""
    out = []
    for task in tasks.iter_rows(named=True):
        prompt, template, max_tokens, stop = build_prompt(task, plan.prompts)
        for i in indices if indices is not None else range(plan.samples_per_task):
            temperature = plan.temperatures[i % len(plan.temperatures)]
            out.append(
                (
                    task,
                    SampleRequest(
                        task_id=task["task_id"],
                        prompt=prompt,
                        prompt_template=template,
                        temperature=float(temperature),
                        top_p=plan.top_p,
                        max_tokens=max_tokens,
                        stop=stop,
                        seed=_sample_seed(plan.seed, generation, task["task_id"], i),
                        sample_index=i,
                    ),
                )
            )
    # each task draws its own few-shot examples, so tasks whose prompts share their first example
    # go back to back: the batched decoder evaluates a shared prefix once (a stable sort keeps
    # the samples of one prompt together and in order)
    out.sort(key=lambda tr: (tr[0]["family"] or "", tr[1].prompt))
    return out


def run_generation(
    tasks: pl.DataFrame,
    generator: TextGenerator,
    plan: SamplingPlan,
    generation: int,
    log: Callable[[str], None] = lambda _m: None,
    log_every_s: float = 15.0,
    is_right: Callable[[dict], bool | None] | None = None,
    resample: int = 0,
) -> pl.DataFrame:
    """Sample every task; one row per sample with full provenance.

    With ``is_right`` (a sample row -> right, wrong, or None where no cheap check exists) and
    ``resample`` (CandidatePlan.resample_unsolved), each task none of whose first samples is right
    gets that many more.
    Sampling the same number per task trains on the tasks the model already solves: in the
    three-family default run (2026-12-07) round 2's chain_sum@1 rows held 11 of 136 with a negative
    answer, and the candidate's greedy score on subtraction fell while addition's rose (DART-Math,
    Tong et al. 2024: rejection sampling is biased toward easy queries; more trials for the hard
    ones). The verdict stays verified_set's: this check only decides where to sample more."""
    planned = plan_requests(tasks, plan, generation)
    if not planned:
        raise SynthConfigError(
            "raw_candidates: the task pool is empty; configure task_pool "
            "(reasoning_gym_families, tasks_per_family, humaneval_tasks or user_task_files)"
        )
    rows = _sample(planned, generator, generation, log, log_every_s)
    if is_right is not None and resample and any(getattr(g, "samples_fixed", False) for g in backends(generator)):
        # a generator answering from files (or a mixture with one) cannot draw more samples
        log("resample_unsolved: not for imported candidates (the files hold every sample there is)")
    elif is_right is not None and resample:
        unsolved = unsolved_tasks(rows, is_right)
        if unsolved:
            more = range(plan.samples_per_task, plan.samples_per_task + resample)
            again = plan_requests(tasks.filter(pl.col("task_id").is_in(unsolved)), plan, generation, more)
            log(
                f"{len(unsolved)} tasks with no right answer in {plan.samples_per_task} samples: "
                f"{resample} more samples each (resample_unsolved)"
            )
            rows += _sample(again, generator, generation, log, log_every_s)
    from synth_assets.core.tasks.sources import conform

    return conform(rows, CANDIDATE_SCHEMA)


def unsolved_tasks(rows: list[dict], is_right: Callable[[dict], bool | None]) -> list[str]:
    """The tasks, in order, whose every sample is checked and wrong (a task with a sample the
    check cannot judge is left alone: code is judged in the sandbox, later)."""
    verdicts: dict[str, list[bool | None]] = {}
    for row in rows:
        verdicts.setdefault(row["task_id"], []).append(is_right(row))
    return [t for t, v in verdicts.items() if None not in v and not any(v)]


def _sample(
    planned: list[tuple[dict, SampleRequest]],
    generator: TextGenerator,
    generation: int,
    log: Callable[[str], None],
    log_every_s: float,
) -> list[dict]:
    """The generator's samples of ``planned``, one provenance row each, with progress lines."""
    rows, started, last_log = [], time.monotonic(), time.monotonic()
    requests = [r for _t, r in planned]
    for n, ((task, planned_req), sample) in enumerate(zip(planned, generator.generate(requests), strict=True), start=1):
        req = sample.request or planned_req
        model = sample.model or generator.model
        key = req.key(f"{sample.generator or generator.name}|{model}")
        rows.append(
            {
                "candidate_id": f"g{generation}/{key[:16]}",
                "generation": generation,
                **{
                    k: task[k]
                    for k in (
                        "task_id",
                        "source",
                        "family",
                        "domain",
                        "prompt",
                        "answer",
                        "verifier",
                        "verifier_spec",
                        "license",
                    )
                },
                "completion": sample.text,
                "finish_reason": sample.finish_reason,
                "generator": sample.generator or generator.name,
                "model": model,
                "model_terms": sample.terms or getattr(generator, "terms", None),
                "prompt_template": req.prompt_template,
                "temperature": req.temperature,
                "top_p": req.top_p,
                "max_tokens": req.max_tokens,
                "seed": req.seed,
                "sample_index": req.sample_index,
                "prompt_tokens": sample.prompt_tokens,
                "completion_tokens": sample.completion_tokens,
                "latency_s": sample.latency_s,
                "cached": sample.cached,
                "cost_usd": _cost(generator, model, sample),
                "generation_key": key,
                "created_at": _now(),
            }
        )
        if time.monotonic() - last_log >= log_every_s or n == len(planned):
            elapsed = time.monotonic() - started
            log(f"generated {n}/{len(planned)} samples in {elapsed:.0f}s ({60 * n / max(elapsed, 1e-9):.1f}/min)")
            last_log = time.monotonic()
    return rows


def backends(generator: TextGenerator) -> list[TextGenerator]:
    """The generator and, for a mixture, each of its members' generators."""
    return [generator, *(m.generator for m in getattr(generator, "members", []))]


def attach_log(generator: TextGenerator, log: Callable[[str], None]) -> None:
    """Route a backend's own messages (cache hits, retries given up) to the run's log."""
    for g in backends(generator):
        if hasattr(g, "log"):
            g.log = log


def _cost(generator: TextGenerator, model: str, sample: Sample) -> float | None:
    """USD from the price table {model: (prompt per 1M tokens, completion per 1M)}. A sample
    served from the response cache cost nothing this run; null means the model has no price."""
    if sample.cached:
        return 0.0
    price = sample.prices or (getattr(generator, "prices", None) or {}).get(model)
    if price is None:
        return None
    return (sample.prompt_tokens * price[0] + sample.completion_tokens * price[1]) / 1e6


def _now() -> datetime:
    return datetime.now(UTC)
