"""One markdown-table renderer for every table the platform shows: asset previews, the dataset
card, a failed check's offending rows and the drift report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl


def _cell(v: Any, width: int | None) -> str:
    s = "" if v is None else str(v)
    s = s.replace("\n", "⏎").replace("|", "\\|")
    return s if width is None or len(s) <= width else s[: width - 1] + "…"


def markdown_table(
    df: pl.DataFrame,
    columns: Sequence[str] | None = None,
    rows: int | None = None,
    width: int | None = None,
    fmt: dict[str, Callable[[Any], str]] | None = None,
    empty: str = "_empty_",
) -> str:
    """A GitHub-flavoured markdown table of ``df`` (``columns`` in order, the first ``rows``),
    cells cut to ``width`` characters, with per-column formatters."""
    cols = list(columns) if columns is not None else list(df.columns)
    if df.height == 0 or not cols:
        return empty
    fmt = fmt or {}
    body = df.select(cols) if rows is None else df.head(rows).select(cols)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in body.iter_rows():
        lines.append("| " + " | ".join(fmt[c](v) if c in fmt else _cell(v, width) for c, v in zip(cols, r)) + " |")
    return "\n".join(lines)
