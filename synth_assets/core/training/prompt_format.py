"""Mix rows as training text in exactly the format the generator is later prompted with.

A model is trained on (prompt, target) pairs where the prompt is what ``build_prompt`` sends to
the generator for that task (the few-shot answer prompt, or the HumanEval signature) and the
target is what the generator would have to write next (the answer and the stop newline, or the
function body). Training on any other format would teach a skill the pipeline never asks for.
"""

from __future__ import annotations

import polars as pl

from synth_assets.core.generators.generation import PromptSettings, build_prompt
from synth_assets.core.tasks.worked_steps import is_rationale_text


def _task_view(row: dict) -> dict:
    """What ``build_prompt`` reads of a task, recovered from a mix row."""
    code = row.get("domain") == "code"
    source = row.get("task_source") or "reasoning_gym"
    return {
        "verifier": "python_tests" if code else "answer",
        "source": source,
        "family": row.get("family"),
        "prompt": row["prompt"],
    }


def training_pair(row: dict, prompts: PromptSettings) -> tuple[str, str]:
    """(prompt text, target text) for one mix row (needs prompt, response, domain, family)."""
    response = row["response"] or ""
    # each row is trained in the form it was written in (a worked rationale has an Answer line),
    # so a mix accumulated over generations of either form trains each row as it was asked
    form = "rationale" if is_rationale_text(response) else "answer"
    prompt, _template, _max_tokens, stop = build_prompt(_task_view(row), prompts, form=form)
    if row.get("domain") == "code":
        # code rows hold the whole function (signature, docstring and body): train on the body
        return prompt, response[len(prompt) :] if response.startswith(prompt) else response
    # answer prompts end with "Answer:": the model writes " <answer>" and stops at the newline;
    # rationale prompts end with "Work:": " <steps>\nAnswer: <answer>" and the blank line
    return prompt, " " + response.strip() + stop[0]


def training_pairs(mix: pl.DataFrame, prompts: PromptSettings) -> list[tuple[str, str]]:
    return [training_pair(r, prompts) for r in mix.iter_rows(named=True)]


def preference_triple(row: dict, prompts: PromptSettings) -> tuple[str, str, str]:
    """(prompt text, chosen target, rejected target) for one preference pair, in the format of
    ``training_pair``: the candidates' completions are what the generator wrote after the prompt."""
    form = "rationale" if is_rationale_text(row["chosen"] or "") else "answer"
    prompt, _template, _max_tokens, stop = build_prompt(_task_view(row), prompts, form=form)
    if row.get("domain") == "code":
        return prompt, row["chosen"] or "", row["rejected"] or ""
    return prompt, " " + (row["chosen"] or "").strip() + stop[0], " " + (row["rejected"] or "").strip() + stop[0]
