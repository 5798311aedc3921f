"""Worked rationales: the format, and the steps of an arithmetic problem as a person works it.

In the ``rationale`` prompt form (PromptSettings.form) a model writes a short worked rationale on
a ``Work:`` line and its result on an ``Answer:`` line (STaR). The solved examples in its prompt
show steps written here; the verifier checks a model's steps (core/verify/steps.py).
"""

from __future__ import annotations

import ast
from fractions import Fraction
from typing import Any

ANSWER_LABEL = "Answer:"
WORK_LABEL = "Work:"
_OP_NAMES = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
# families whose items carry the expression a rationale is written from (reasoning-gym metadata)
EXPRESSION_FAMILIES = ("chain_sum", "basic_arithmetic", "products")
# families whose items carry the animals counted (reasoning-gym metadata); a rationale names each
# animal's legs, a lookup the verifier checks against reasoning-gym's own table
LEG_FAMILIES = ("leg_counting",)
LEGS_EACH = "legs each"


def value_of(node: ast.AST, steps: list[str] | None = None) -> Fraction:
    """The exact value of an arithmetic expression tree; each binary operation is appended to
    ``steps`` as ``a op b = c``. Anything but numbers and + - * / raises ValueError."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = value_of(node.operand, steps)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OP_NAMES:
        a, b = value_of(node.left, steps), value_of(node.right, steps)
        op = _OP_NAMES[type(node.op)]
        if op == "/" and b == 0:
            raise ZeroDivisionError(f"{number(a)} / 0")
        v = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
        if steps is not None:
            steps += _split_step(a, op, b, v)
        return v
    raise ValueError(f"not arithmetic: {ast.dump(node)[:60]}")


def _split_step(a: Fraction, op: str, b: Fraction, v: Fraction) -> list[str]:
    """One operation as a person works it: a whole number of two or more digits on the right is
    taken tens first, then ones (``98 + 93``: ``98 + 90 = 188; 188 + 3 = 191``; ``14 * 23``:
    ``14 * 20 = 280; 14 * 3 = 42; 280 + 42 = 322``), which is where a small model's one-step
    sums go wrong; anything else is one step."""
    whole = a.denominator == 1 and b.denominator == 1
    if not whole or op == "/" or b < 10 or b % 10 == 0:
        return [f"{number(a)} {op} {number(b)} = {number(v)}"]
    tens, ones = b - b % 10, b % 10
    if op == "*":
        x, y = a * tens, a * ones
        return [
            f"{number(a)} * {number(tens)} = {number(x)}",
            f"{number(a)} * {number(ones)} = {number(y)}",
            f"{number(x)} + {number(y)} = {number(v)}",
        ]
    x = a + tens if op == "+" else a - tens
    return [f"{number(a)} {op} {number(tens)} = {number(x)}", f"{number(x)} {op} {number(ones)} = {number(v)}"]


def number(v: Fraction) -> str:
    """A value as a person writes it: 7, -3, 2.5."""
    if v.denominator == 1:
        return str(v.numerator)
    return f"{float(v):.6g}"


def expression_steps(expression: str) -> list[str]:
    """The steps of an arithmetic expression in the order a person works it out (operator
    precedence kept, a two-digit right operand taken tens first): ``88 * 4 + 83`` ->
    ``88 * 4 = 352``, ``352 + 80 = 432``, ``432 + 3 = 435``."""
    steps: list[str] = []
    value_of(ast.parse(expression.strip(), mode="eval").body, steps)
    return steps


def worked_steps(family_base: str, entry: dict[str, Any]) -> str | None:
    """The worked rationale of a reasoning-gym item (the ``Work:`` line of a solved example), or
    None when the family has no rationale writer."""
    metadata = entry.get("metadata") or {}
    if family_base in EXPRESSION_FAMILIES and metadata.get("expression"):
        return "; ".join(expression_steps(metadata["expression"]))
    if family_base in LEG_FAMILIES and metadata.get("animals"):
        return leg_steps(metadata["animals"])
    return None


def leg_steps(animals: dict[str, int]) -> str:
    """The rationale of a leg count as a person works it: each animal's legs looked up and
    multiplied, then the products added (``{"spider": 2, "chicken": 3}`` -> ``2 spiders: 8 legs
    each, 2 * 8 = 16; 3 chickens: 2 legs each, 3 * 2 = 6; 16 + 6 = 22``). The animal is named
    as the question names it (reasoning-gym adds an "s" for more than one)."""
    table, parts, products = leg_table(), [], []
    for animal, count in animals.items():
        legs = table[animal]
        products.append(count * legs)
        parts.append(
            f"{count} {animal}{'s' if count > 1 else ''}: {legs} {LEGS_EACH}, {count} * {legs} = {count * legs}"
        )
    total = products[0]
    for p in products[1:]:
        parts.append(f"{total} + {p} = {total + p}")
        total += p
    return "; ".join(parts)


def leg_table() -> dict[str, int]:
    """Legs per animal: reasoning-gym's own table, the one its answers are computed from."""
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    return ANIMALS


def has_worked_steps(family_base: str) -> bool:
    return family_base in EXPRESSION_FAMILIES or family_base in LEG_FAMILIES


def split_rationale(text: str) -> tuple[str, str | None]:
    """(the work, the answer) of a rationale completion: the answer is the last ``Answer:``
    line's text (None when there is none), the work everything before it."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped.startswith(ANSWER_LABEL):
            return "\n".join(lines[:i]), stripped[len(ANSWER_LABEL) :].strip()
    return text, None


def is_rationale_text(response: str) -> bool:
    """Whether a stored response (training text) is a rationale: it has an ``Answer:`` line."""
    return split_rationale(response or "")[1] is not None
