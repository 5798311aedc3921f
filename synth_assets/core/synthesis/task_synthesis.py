"""Growing the task pool from seed tasks (Self-Instruct / Evol-Instruct style), with gates.

A proposed task enters the pool only once something checked it:

- answer tasks: a reference answer by **self-consistency**: several samples of the generator
  answer the new question, and the majority answer is kept only when its agreement rate reaches
  ``min_agreement`` (kept with the task). A paraphrase must also keep its seed's answer. Then a
  **program check** (``reference_check``): where a program can read the question (GCD, letter
  counts, arithmetic, ...), its answer must equal the majority's (else ``reference_mismatch``);
  where none can, the task is marked ``unverified_reference`` and sampled for review.
- code tasks: the generator writes a function (signature + docstring) and a ``check(candidate)``
  test; several sampled solutions run against the tests in the sandbox, and the task is kept
  when at least ``min_passing_solutions`` of them pass and agree on every test call (a
  solution that passes the tests is the reference solution).
- novelty: no near-duplicate (MinHash, exact Jaccard confirmation) of an existing task or of
  another accepted proposal.
- decontamination: no shared word n-gram with, and no near-duplicate of, a held-out item.

Every proposal is recorded, with its seed, method, generator and each gate's result; rejected
ones keep the first gate that refused them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence

import polars as pl
from pydantic import Field

from synth_assets.core.curate.curation import REFERENCE_TEXT_SCHEMA, ngram_hits
from synth_assets.core.curate.near_duplicates import NearDupSettings, find_near_duplicates
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import ANSWER_STOP, SampleRequest, TextGenerator, answer_prompt
from synth_assets.core.sandbox.sandbox import FunctionCheck, Sandbox
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.reference_check import check_reference
from synth_assets.core.tasks.sources import TASK_SCHEMA, conform
from synth_assets.core.verify.verification import extract_short_answer

METHODS = ("new_task", "harder", "paraphrase", "edge_case", "code_task")
SYNTH_LICENSE = "derived from seed tasks (see seed_license); generated text under the generator's terms"
PROPOSAL_SCHEMA: dict[str, pl.DataType] = {
    **TASK_SCHEMA,
    "seed_task_id": pl.String,
    "seed_license": pl.String,
    "method": pl.String,
    "generator": pl.String,
    "model": pl.String,
    "agreement": pl.Float64,  # self-consistency agreement of the reference answer / passing-solution share
    # how the reference was established: "program: <solver>", "unverified_reference" (agreement only),
    # "tests" (code: sampled solutions pass the generated tests)
    "reference_check": pl.String,
    "gates": pl.String,  # JSON: each gate's result
    "status": pl.String,  # accepted | rejected
    "reject_reason": pl.String,
}

_QUESTION_STOP = ("\nAnswer:", "\nQuestion:", "\n\n")
_CODE_STOP = ("\ndef check", "\nif __name__", "\n```", "\nprint(")
_TEST_STOP = ("\ndef ", "\nif __name__", "\n```", "\nprint(", "\n\n\n")


class SynthesisSettings(Settings):
    """How tasks are proposed and which gates they must pass (defaults of a full run)."""

    enabled: bool = Field(default=True, description="propose new tasks this run (accepted ones are kept either way)")
    methods: list[str] = Field(default=list(METHODS), description=f"any of {list(METHODS)}")
    proposals_per_method: int = Field(default=3, ge=0, description="proposals per method per run")
    consistency_samples: int = Field(default=5, ge=2, description="answers sampled for the self-consistency gate")
    min_agreement: float = Field(
        default=0.6, gt=0, le=1, description="majority share an answer needs to become the reference"
    )
    solutions_per_task: int = Field(default=3, ge=1, description="solutions run against a proposed code task's tests")
    min_passing_solutions: int = Field(default=2, ge=1, description="passing solutions a code task needs")
    novelty_threshold: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Jaccard (word 3-shingles) at which a proposal is a near-duplicate of a task",
    )
    decontamination_ngram: int = Field(
        default=13, ge=3, description="word n-gram shared with a held-out item that rejects a proposal"
    )
    temperature: float = Field(default=0.9, ge=0, le=2, description="sampling temperature of proposals and tests")
    answer_temperature: float = Field(default=0.7, ge=0, le=2, description="temperature of answers and solutions")
    seed: int = Field(default=0)

    def validate(self) -> None:
        """What one field's bounds cannot say (checked again here for callers outside Dagster)."""
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise SynthConfigError(f"synthesized_tasks.methods: unknown {bad}; choose from {list(METHODS)}")
        if self.min_passing_solutions < 1 or self.min_passing_solutions > self.solutions_per_task:
            raise SynthConfigError(
                "synthesized_tasks.min_passing_solutions must be between 1 and solutions_per_task "
                f"(got {self.min_passing_solutions} of {self.solutions_per_task})"
            )


def _seed_int(*parts: object) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _norm(s: str) -> str:
    return " ".join(s.strip().split()).lower()


# ------------------------------------------------------------------ prompts
def new_task_prompt(seeds: Sequence[dict]) -> str:
    parts = ["Here are example questions with their answers. Write one new question of the same kind.\n"]
    for s in seeds:
        parts.append(f"Question: {s['prompt']}\nAnswer: {s['answer']}\n")
    parts.append("Question:")
    return "\n".join(parts)


_HARDER_DEMOS = [
    ("What is 3 + 4?", "What is 37 + 48 - 19?"),
    ("How many legs do 2 dogs have?", "How many legs do 3 dogs, 2 chickens and 1 spider have?"),
]
_PARAPHRASE_DEMOS = [
    ("What is 3 + 4?", "Compute the sum of 3 and 4."),
    (
        "How many times does the letter r appear in the word 'carrot'?",
        "Count the occurrences of the letter r in 'carrot'.",
    ),
]


def rewrite_prompt(seed: dict, method: str) -> str:
    demos = _HARDER_DEMOS if method == "harder" else _PARAPHRASE_DEMOS
    verb = (
        "Rewrite the question so it is harder"
        if method == "harder"
        else "Rewrite the question in other words, keeping its answer"
    )
    parts = [f"{verb}.\n"]
    for a, b in demos:
        parts.append(f"Original: {a}\nRewritten: {b}\n")
    parts.append(f"Original: {seed['prompt']}\nRewritten:")
    return "\n".join(parts)


def code_task_prompt(seeds: Sequence[dict]) -> str:
    """Seeds are HumanEval-style functions (signature + docstring); the model writes another."""
    parts = ["# Python functions, each with a docstring and an example.\n"]
    for s in seeds:
        parts.append(s["prompt"].rstrip() + "\n    ...\n\n")
    parts.append("def")
    return "\n".join(parts)


def test_prompt(function_prompt: str, entry_point: str) -> str:
    return f"{function_prompt.rstrip()}\n    ...\n\n\ndef check(candidate):\n    assert candidate("


# ------------------------------------------------------------------ generation helpers
def _generate(gen: TextGenerator, prompts: list[tuple[str, str, int, tuple[str, ...], float, int]]) -> list[str]:
    reqs = [
        SampleRequest(
            task_id=f"synth/{i}",
            prompt=p,
            prompt_template=tmpl,
            temperature=temp,
            top_p=0.95,
            max_tokens=mt,
            stop=stop,
            seed=seed,
            sample_index=0,
        )
        for i, (p, tmpl, mt, stop, temp, seed) in enumerate(prompts)
    ]
    return [s.text for s in gen.generate(reqs)] if reqs else []


_ENTRY = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(")


def parse_function(text: str) -> tuple[str, str] | None:
    """('def name(...):\\n    \"\"\"doc\"\"\"\\n', name) from a completion after 'def', or None."""
    src = "def" + text
    m = _ENTRY.match(text)
    if not m or '"""' not in src:
        return None
    first = src.index('"""')
    second = src.find('"""', first + 3)
    if second < 0:
        return None
    prompt = src[: second + 3] + "\n"
    try:
        compile(prompt + "    pass\n", "<synth>", "exec")
    except SyntaxError:
        return None
    return prompt, m.group(1)


def self_consistency(answers: list[str]) -> tuple[str | None, float]:
    normed = [_norm(a) for a in answers if a.strip()]
    if not normed:
        return None, 0.0
    top, n = Counter(normed).most_common(1)[0]
    original = next(a.strip() for a in answers if _norm(a) == top)
    return original, n / len(answers)


def _verifier_for(answer: str) -> str:
    try:
        float(answer.replace(",", ""))
        return "math"
    except ValueError:
        return "exact"


# ------------------------------------------------------------------ the driver
def synthesize_tasks(
    seeds: pl.DataFrame,
    existing: pl.DataFrame,
    heldout_texts: list[str],
    gen: TextGenerator,
    sandbox: Sandbox | None,
    settings: SynthesisSettings,
    thin_families: Sequence[str] = (),
    few_shot: Callable[[str], list[tuple[str, str]]] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> pl.DataFrame:
    """Proposals (PROPOSAL_SCHEMA) with their gate results; status 'accepted' rows are tasks."""
    settings.validate()
    answer_seeds = seeds.filter(pl.col("verifier") != "python_tests").filter(pl.col("answer").is_not_null())
    code_seeds = seeds.filter(pl.col("verifier") == "python_tests")
    proposals: list[dict] = []

    def propose(method: str, seed: dict, prompt: str, answer_hint: str | None = None, **extra: object) -> None:
        text = prompt if method == "code_task" else prompt.strip()  # code continues after the docstring's newline
        proposals.append({"method": method, "seed": seed, "prompt": text, "answer_hint": answer_hint, **extra})

    # 1. answer tasks: new, harder, paraphrase, edge cases for thin families
    families = answer_seeds["family"].unique(maintain_order=True).to_list()
    k = settings.proposals_per_method
    jobs: list[tuple[str, dict, str]] = []
    rows = answer_seeds.to_dicts()
    for i in range(k if rows else 0):
        if "new_task" in settings.methods:
            fam = families[i % len(families)]
            fam_rows = [r for r in rows if r["family"] == fam]
            pick = [fam_rows[(i + j) % len(fam_rows)] for j in range(min(3, len(fam_rows)))]
            jobs.append(("new_task", pick[0], new_task_prompt(pick)))
        if "edge_case" in settings.methods and thin_families:
            fam = list(thin_families)[i % len(thin_families)]
            fam_rows = [r for r in rows if r["family"] == fam] or rows
            pick = [fam_rows[(i * 7 + j) % len(fam_rows)] for j in range(min(3, len(fam_rows)))]
            jobs.append(("edge_case", pick[0], new_task_prompt(pick)))
        seed = rows[(i * 5) % len(rows)]
        for m in ("harder", "paraphrase"):
            if m in settings.methods:
                jobs.append((m, seed, rewrite_prompt(seed, m)))
    texts = _generate(
        gen,
        [
            (
                p,
                f"synth_{m}_v1",
                64,
                _QUESTION_STOP if m in ("new_task", "edge_case") else ("\n",),
                settings.temperature,
                _seed_int(settings.seed, m, s["task_id"], n),
            )
            for n, (m, s, p) in enumerate(jobs)
        ],
    )
    for (m, s, _), t in zip(jobs, texts):
        propose(m, s, t, s["answer"] if m == "paraphrase" else None)
    log(f"task synthesis: {len(jobs)} answer-task proposals")

    # 2. code tasks: a function, then a test, then solutions run against it
    code_jobs = []
    if "code_task" in settings.methods and code_seeds.height:
        crow = code_seeds.to_dicts()
        for i in range(k):
            pick = [crow[(i + j) % len(crow)] for j in range(min(2, len(crow)))]
            code_jobs.append((pick[0], code_task_prompt(pick)))
        ftexts = _generate(
            gen,
            [
                (
                    p,
                    "synth_code_task_v1",
                    160,
                    ("\n    ...", "\ndef ", "\n\n\n"),
                    settings.temperature,
                    _seed_int(settings.seed, "code", s["task_id"], n),
                )
                for n, (s, p) in enumerate(code_jobs)
            ],
        )
        for (s, _), t in zip(code_jobs, ftexts):
            parsed = parse_function(t)
            propose("code_task", s, parsed[0] if parsed else "def" + t, entry_point=parsed[1] if parsed else None)
    log(f"task synthesis: {len(code_jobs)} code-task proposals")

    # 3. gates
    out = []
    for p in proposals:
        p["gates"] = {}
        p["reject"] = None
        if not p["prompt"] or len(p["prompt"]) < 8:
            p["reject"] = "empty_or_too_short"
    _gate_answers(proposals, gen, settings, few_shot)
    _gate_code(proposals, gen, sandbox, settings)
    _gate_novelty(proposals, existing, settings)
    _gate_decontamination(proposals, heldout_texts, settings)
    for p in proposals:
        s = p["seed"]
        code = p["method"] == "code_task"
        task_id = f"synth/{hashlib.sha256((p['method'] + p['prompt']).encode()).hexdigest()[:12]}"
        out.append(
            {
                "task_id": task_id,
                "source": "synthesized",
                "family": s["family"],
                "domain": "code" if code else s["domain"],
                "prompt": p["prompt"],
                "answer": p.get("answer"),
                "verifier": "python_tests" if code else p.get("verifier"),
                "verifier_spec": json.dumps(p["spec"]) if p.get("spec") else None,
                "license": SYNTH_LICENSE,
                "seed_task_id": s["task_id"],
                "seed_license": s.get("license"),
                "method": p["method"],
                "generator": gen.name,
                "model": gen.model,
                "agreement": p.get("agreement"),
                "reference_check": p.get("reference_check"),
                "gates": json.dumps(p["gates"]),
                "status": "rejected" if p["reject"] else "accepted",
                "reject_reason": p["reject"],
            }
        )
    df = conform(out, PROPOSAL_SCHEMA)
    return df.unique("task_id", keep="first", maintain_order=True)


def _gate_answers(
    proposals: list[dict],
    gen: TextGenerator,
    settings: SynthesisSettings,
    few_shot: Callable[[str], list[tuple[str, str]]] | None,
) -> None:
    live = [p for p in proposals if p["method"] != "code_task" and not p["reject"]]
    reqs = []
    for p in live:
        examples = few_shot(p["seed"]["family"]) if few_shot else []
        prompt = answer_prompt(p["prompt"], examples)
        for j in range(settings.consistency_samples):
            reqs.append(
                (
                    prompt,
                    "synth_consistency_v1",
                    24,
                    ANSWER_STOP,
                    settings.answer_temperature,
                    _seed_int(settings.seed, "answer", p["prompt"], j),
                )
            )
    texts = _generate(gen, reqs)
    n = settings.consistency_samples
    for i, p in enumerate(live):
        answers = [extract_short_answer(t) for t in texts[i * n : (i + 1) * n]]
        answer, agreement = self_consistency(answers)
        p["agreement"] = agreement
        p["gates"]["self_consistency"] = {
            "answers": answers,
            "majority": answer,
            "agreement": round(agreement, 3),
            "min_agreement": settings.min_agreement,
        }
        if answer is None or agreement < settings.min_agreement:
            p["reject"] = "no_consistent_answer"
            continue
        if p["answer_hint"] is not None and _norm(answer) != _norm(str(p["answer_hint"])):
            p["gates"]["paraphrase_keeps_answer"] = False
            p["reject"] = "paraphrase_changed_answer"
            continue
        # agreement alone admits a consistently wrong generator: where a program can read the
        # question, its answer decides
        check = check_reference(p["seed"]["family"], p["prompt"], answer)
        if check is None:
            p["reference_check"] = "unverified_reference"
            p["gates"]["program_check"] = "no program reads this question: agreement only"
        else:
            p["gates"]["program_check"] = {
                "solver": check.solver,
                "expected": check.expected,
                "majority": answer,
                "agrees": check.agrees,
            }
            if not check.agrees:
                p["reject"] = "reference_mismatch"
                continue
            p["reference_check"] = f"program: {check.solver}"
        p["answer"], p["verifier"] = answer, _verifier_for(answer)


def _gate_code(proposals: list[dict], gen: TextGenerator, sandbox: Sandbox | None, settings: SynthesisSettings) -> None:
    live = [p for p in proposals if p["method"] == "code_task" and not p["reject"]]
    for p in live:
        if not p.get("entry_point"):
            p["reject"] = "function_unparseable"
    live = [p for p in live if not p["reject"]]
    if not live:
        return
    if sandbox is None:
        for p in live:
            p["reject"] = "no_sandbox"
        return
    tests = _generate(
        gen,
        [
            (
                test_prompt(p["prompt"], p["entry_point"]),
                "synth_code_test_v1",
                96,
                _TEST_STOP,
                settings.temperature,
                _seed_int(settings.seed, "test", p["prompt"]),
            )
            for p in live
        ],
    )
    sols = _generate(
        gen,
        [
            (
                p["prompt"],
                "synth_code_solution_v1",
                160,
                ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"),
                settings.answer_temperature,
                _seed_int(settings.seed, "sol", p["prompt"], j),
            )
            for p in live
            for j in range(settings.solutions_per_task)
        ],
    )
    programs, index = [], []
    for i, (p, t) in enumerate(zip(live, tests)):
        test = "def check(candidate):\n    assert candidate(" + t.rstrip() + "\n"
        asserts = [ln for ln in test.splitlines() if ln.strip().startswith("assert candidate(")]
        try:
            compile(test, "<test>", "exec")
        except SyntaxError:
            p["reject"] = "test_unparseable"
            continue
        if not asserts:
            p["reject"] = "test_unparseable"
            continue
        p["test"] = test
        for j in range(settings.solutions_per_task):
            sol = sols[i * settings.solutions_per_task + j]
            programs.append(FunctionCheck(f"{p['prompt']}{sol}", p["entry_point"], test, p["prompt"]))
            index.append((p, sol))
    results = sandbox.check_functions(programs) if programs else []
    passing: dict[int, list[str]] = {}
    for (p, sol), res in zip(index, results):
        if res.status == "pass":
            passing.setdefault(id(p), []).append(sol)
    for p in live:
        if p["reject"]:
            continue
        good = passing.get(id(p), [])
        distinct = len({_norm(s) for s in good})
        p["agreement"] = len(good) / settings.solutions_per_task
        p["gates"]["tests_vs_solutions"] = {
            "solutions": settings.solutions_per_task,
            "passing": len(good),
            "distinct_passing": distinct,
            "min_passing": settings.min_passing_solutions,
        }
        if len(good) < settings.min_passing_solutions:
            p["reject"] = "solutions_disagree_with_tests"
            continue
        p["spec"] = {"test": p["test"], "entry_point": p["entry_point"], "reference_solution": good[0]}
        p["reference_check"] = "tests"


def _gate_novelty(proposals: list[dict], existing: pl.DataFrame, settings: SynthesisSettings) -> None:
    live = [p for p in proposals if not p["reject"]]
    if not live:
        return
    old = existing["prompt"].to_list() if existing.height else []
    texts = old + [p["prompt"] for p in live]
    nd = find_near_duplicates(texts, NearDupSettings(threshold=settings.novelty_threshold, shingle_size=3))
    dup_of: dict[int, tuple[int, float]] = {}
    jac = {(x, y): j for x, y, j in zip(nd.i.tolist(), nd.j.tolist(), nd.jaccard.tolist())}
    for a, b in sorted(nd.document_pairs()):
        if b >= len(old) and (b not in dup_of):  # a < b: an existing task or an earlier proposal
            dup_of[b] = (a, jac.get((min(nd.rep[a], nd.rep[b]), max(nd.rep[a], nd.rep[b])), 1.0))
    seen = {_norm(t) for t in old}
    for x, p in enumerate(live, start=len(old)):
        if _norm(p["prompt"]) in seen or x in dup_of:
            a, j = dup_of.get(x, (None, 1.0))
            p["gates"]["novelty"] = {
                "near_duplicate_of": texts[a][:80] if a is not None else "exact copy",
                "jaccard": round(j, 3),
            }
            p["reject"] = "not_novel"
        else:
            p["gates"]["novelty"] = "novel"
            seen.add(_norm(p["prompt"]))


def _gate_decontamination(proposals: list[dict], heldout_texts: list[str], settings: SynthesisSettings) -> None:
    live = [p for p in proposals if not p["reject"]]
    if not live or not heldout_texts:
        return
    refs = conform(
        pl.DataFrame(
            {"ref_source": "heldout", "ref_id": [str(i) for i in range(len(heldout_texts))], "text": heldout_texts}
        ),
        REFERENCE_TEXT_SCHEMA,
    )
    counts, first = ngram_hits(
        pl.Series([p["prompt"] for p in live], dtype=pl.String), refs, settings.decontamination_ngram
    )
    for p, c, f in zip(live, counts, first):
        p["gates"]["decontamination"] = (
            "clean" if c == 0 else f"{c} shared {settings.decontamination_ngram}-grams with {f}"
        )
        if c:
            p["reject"] = "contaminated_heldout"
