"""Checking a worked rationale's steps (the writing and the format: core/tasks/worked_steps.py).

In the ``rationale`` prompt form (PromptSettings.form) a model writes a short worked rationale
on a ``Work:`` line and its result on an ``Answer:`` line (STaR). The answer is what is scored;
every step a program can check is checked, so a right answer reached by a wrong step is not a
pass and never becomes training data (a model trained on it would learn the wrong step).

A step is ``<arithmetic> = <number>`` anywhere in the work: the left side is evaluated exactly
(fractions, no ``eval``: only numbers, + - * / and parentheses are read), and a step whose
sides differ is wrong. Text around a step ("3 spiders: 3 * 8 = 24") is allowed; a bare
``x = y`` with no operator is not a step. Steps cannot prove the rationale is about the
question (steps that are right but unrelated pass): the answer's scorer decides that.

A lookup is checked too: ``<n> <animal>: <legs> legs each, <n> * <legs>`` (the leg_counting
rationale, core/tasks/worked_steps.py ``leg_steps``) is wrong when the animal does not have that
many legs in reasoning-gym's table, or the multiplication does not use the count and legs named.
An animal the table does not know is not a lookup (the answer's scorer still decides).
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

from synth_assets.core.tasks.worked_steps import LEGS_EACH, leg_table, value_of

# the left side starts at a number or a sign and holds only arithmetic; the right side is a number
_STEP = re.compile(r"(-?\(?\s*-?\d[\d\s+\-*/().]*?)\s*=\s*(-?\d+(?:\.\d+)?)")


_LOOKUP = re.compile(rf"(?P<n>\d+) (?P<animal>[a-z][a-z ]*?): (?P<legs>\d+) {LEGS_EACH}(?:, (?P<a>\d+) \* (?P<b>\d+))?")


def wrong_lookups(work: str) -> list[str]:
    """The leg lookups in ``work`` that disagree with reasoning-gym's table (or whose
    multiplication uses other numbers than the count and legs named, in either order), in order."""
    table, wrong = leg_table(), []
    for m in _LOOKUP.finditer(work):
        name = m["animal"].strip()
        legs = table.get(name, table.get(name[:-1]) if name.endswith("s") else None)
        if legs is None:
            continue
        product = m["a"] is not None and sorted((int(m["a"]), int(m["b"]))) != sorted((int(m["n"]), int(m["legs"])))
        if int(m["legs"]) != legs or product:
            wrong.append(m.group(0).strip())
    return wrong


def wrong_steps(work: str) -> list[str]:
    """The steps in ``work`` that are wrong, in order: leg lookups that disagree with the table,
    then arithmetic steps whose two sides differ (as written)."""
    wrong = wrong_lookups(work)
    for m in _STEP.finditer(work):
        lhs, rhs = m.group(1).strip(), m.group(2)
        try:
            tree = ast.parse(lhs, mode="eval").body
            if not any(isinstance(n, ast.BinOp) for n in ast.walk(tree)):
                continue  # a bare number: not a step
            ok = value_of(tree) == Fraction(rhs)
        except ZeroDivisionError:
            ok = False  # a step that divides by zero is wrong
        except (SyntaxError, ValueError, RecursionError):
            continue  # not arithmetic we can read (a power, a stray bracket): not a step
        if not ok:
            wrong.append(m.group(0).strip())
    return wrong
