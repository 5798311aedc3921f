"""Programs that solve a synthesized question, so its reference answer is not just agreement.

Self-consistency admits a wrong reference whenever the generator is consistently wrong (a GCD
of 532 and 656 accepted as 2 at 80% agreement; a letter count accepted as 10 when the letter
occurs 3 times). Wherever a program can read the instance, it computes the answer and the
proposal is rejected on a mismatch (``reference_mismatch``). Each solver parses one question
shape of a reasoning-gym family (as reasoning-gym prints it and as a rewrite would plausibly
say it) and returns None when it cannot read the question with certainty: that task keeps its
agreement-only reference, is marked ``unverified_reference`` and sampled for review.

Solvers recompute with the standard library (``math.gcd``, ``str.count``, ``sorted``, an
``ast`` arithmetic evaluator without names or calls) and reasoning-gym's own animal table;
they never trust a number the generator wrote.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class ProgramCheck:
    solver: str  # which program read the question
    expected: str  # what it computed
    agrees: bool  # whether the proposed reference says the same


_INT = re.compile(r"-?\d+")


def _numbers_after(text: str, pattern: str) -> list[int] | None:
    m = re.search(pattern, text, re.I)
    if not m:
        return None
    tail = text[m.end() :]
    tail = re.sub(r"\(\s*(gcd|lcm|hcf)\s*\)", " ", tail, flags=re.I)
    # "the 3 numbers 12, 18 and 24": a count of the numbers is not one of them
    tail = re.sub(r"\b\d+\s+(numbers|integers|values)\b", " ", tail, flags=re.I)
    nums = [int(x) for x in _INT.findall(tail)]
    return nums if len(nums) >= 2 and all(n > 0 for n in nums) else None


def _gcd(q: str) -> str | None:
    nums = _numbers_after(q, r"(greatest common divisor|greatest common factor|highest common factor|\bgcd\b|\bhcf\b)")
    return str(math.gcd(*nums)) if nums else None


def _lcm(q: str) -> str | None:
    nums = _numbers_after(q, r"(least common multiple|lowest common multiple|\blcm\b)")
    return str(math.lcm(*nums)) if nums else None


_LETTER = re.compile(
    r"""letter\s+["'“‘]?([A-Za-z])["'”’]?\s.*?\b(?:in|within)\s+(?:the\s+)?(?:text|word|sentence|phrase|string)?\s*:?\s*"""
    r"""["“'‘](.+?)["”'’]\s*[?.]?\s*$""",
    re.S | re.I,
)


def _letter_count(q: str) -> str | None:
    if not re.search(r"how many (times|occurrences)|count the (number of )?occurrences", q, re.I):
        return None
    m = _LETTER.search(q.strip())
    if not m:
        return None
    return str(m.group(2).lower().count(m.group(1).lower()))


_OPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ValueError("not plain arithmetic")


_EXPR = re.compile(r"(?:[-+(]\s*)*\d[\d.\s+\-*/×÷x()]*\d(?:\s*\))*")
_ARITH_WORDS = re.compile(
    r"\b(calculate|compute|evaluate|what is|what's|solve|arithmetic|result of|value of|"
    r"multiplication|sum|product|difference)\b|=",
    re.I,
)


_ARITH_FAMILIES = {"basic_arithmetic", "chain_sum", "products", "decimal_chain_sum", "decimal_arithmetic"}


def _arithmetic(q: str, family: str = "") -> str | None:
    """The one arithmetic expression of a question (numbers, + - * / and brackets), exactly.
    Outside the arithmetic families the expression must hold every digit of the question: a
    puzzle grid or a cryptarithm has sums in it that are not the question."""
    if not _ARITH_WORDS.search(q):
        return None
    exprs = [e.strip() for e in _EXPR.findall(q) if re.search(r"\d\s*[-+*/×÷x]\s*[-(]*\s*\d", e)]
    if len(exprs) != 1:
        return None
    if family not in _ARITH_FAMILIES and re.search(r"\d", q.replace(exprs[0], " ")):
        return None
    src = exprs[0].replace("×", "*").replace("÷", "/")
    src = re.sub(r"(?<=[\d)\s])x(?=[\s(\d-])", "*", src)
    if src.count("(") != src.count(")"):
        return None
    try:
        value = _eval(ast.parse(src, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):  # generator-written text: any shape
        return None
    if value.denominator != 1 and "/" in src:
        return None  # division: exact, floor or rounded? the question's convention is not ours to guess
    return str(value.numerator) if value.denominator == 1 else repr(float(value))


def _count_bits(q: str) -> str | None:
    m = re.search(r"how many 1 bits .*?number (\d+)", q, re.I | re.S)
    return str(bin(int(m.group(1))).count("1")) if m else None


@functools.cache  # built once: every leg-count question reads it
def _legs_table() -> dict[str, int]:
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    table: dict[str, int] = {}
    for name, legs in ANIMALS.items():
        forms = {name, name + "s", name + "es"}
        if name.endswith("y"):
            forms.add(name[:-1] + "ies")
        if name.endswith("fish") or name in ("sheep", "deer", "shrimp"):
            forms.add(name)
        if name.endswith("ouse"):
            forms.add(name[:-4] + "ice")
        if name.endswith("man"):
            forms.add(name[:-3] + "men")
        for f in forms:
            table[f] = legs
    return table


def _legs(q: str) -> str | None:
    at = [m.start() for m in re.finditer(r"how many legs", q, re.I)]
    if not at:
        return None
    last = q[at[-1] :].strip()
    m = re.search(r"\bif (?:you|we|there) (?:have|has|are|is)\s+(.+?)\??\s*$", last, re.I | re.S) or re.search(
        r"\b(?:do|does)\s+(.+?)\s+have\b", last, re.I | re.S
    )
    if not m:
        return None
    table = _legs_table()
    items = [s.strip() for s in re.split(r",|\band\b", m.group(1)) if s.strip()]
    total = 0
    for item in items:
        im = re.fullmatch(r"(\d+)\s+([a-z][a-z\s-]*?)", item.lower())
        if not im or im.group(2) not in table:
            return None  # an animal the table does not know: cannot be sure
        total += int(im.group(1)) * table[im.group(2)]
    return str(total) if items else None


def _word_sort(q: str) -> str | None:
    m = re.search(r"sort these words in (ascending|descending) order.*?:\s*(.+?)\s*$", q.strip(), re.I | re.S)
    if not m or "ascii" not in q.lower() and "unicode" not in q.lower():
        return None
    words = [w.strip() for w in m.group(2).split(",") if w.strip()]
    return ", ".join(sorted(words, reverse=m.group(1).lower() == "descending")) if len(words) >= 2 else None


# family -> solvers tried first; every solver is also tried on any family's rewrite, since a
# "harder" GCD question is still a GCD question
SOLVERS: dict[str, Callable[[str], str | None]] = {
    "gcd": _gcd,
    "lcm": _lcm,
    "letter_counting": _letter_count,
    "count_bits": _count_bits,
    "leg_counting": _legs,
    "word_sorting": _word_sort,
    "arithmetic": _arithmetic,
}
_FAMILY_SOLVER = {
    "gcd": "gcd",
    "lcm": "lcm",
    "letter_counting": "letter_counting",
    "count_bits": "count_bits",
    "leg_counting": "leg_counting",
    "word_sorting": "word_sorting",
    "basic_arithmetic": "arithmetic",
    "chain_sum": "arithmetic",
    "products": "arithmetic",
    "decimal_chain_sum": "arithmetic",
    "decimal_arithmetic": "arithmetic",
}
_DESCRIPTION = {
    "gcd": "math.gcd",
    "lcm": "math.lcm",
    "letter_counting": "str.count",
    "count_bits": "bin(n).count('1')",
    "leg_counting": "reasoning-gym's ANIMALS table",
    "word_sorting": "sorted()",
    "arithmetic": "ast arithmetic (exact fractions)",
}


def _same(expected: str, answer: str) -> bool:
    def num(s: str) -> float | None:
        try:
            return float(s.replace(",", "").strip())
        except ValueError:
            return None

    ints = [re.fullmatch(r"\s*-?[\d,]+\s*", x) for x in (expected, answer)]
    if all(ints):  # integers compare exactly: a float tolerance would equate 10**10 and 10**10 + 1
        return int(expected.replace(",", "")) == int(answer.replace(",", ""))
    a, b = num(expected), num(answer)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)

    def words(s: str) -> list[str]:  # lists of words
        return [w.strip() for w in s.split(",")]

    return words(expected) == words(answer)


def check_reference(family: str, question: str, answer: str) -> ProgramCheck | None:
    """A program's verdict on ``answer`` to ``question``, or None when no program can read it."""
    order = [_FAMILY_SOLVER[family]] if family in _FAMILY_SOLVER else []
    order += [k for k in SOLVERS if k not in order]
    for key in order:
        expected = _arithmetic(question, family) if key == "arithmetic" else SOLVERS[key](question)
        if expected is not None:
            return ProgramCheck(f"{key} ({_DESCRIPTION[key]})", expected, _same(expected, answer))
    return None
