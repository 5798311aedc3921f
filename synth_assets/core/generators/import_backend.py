"""Candidates produced elsewhere (a batch job, another team's cluster) brought into a generation.

The import is a ``TextGenerator`` like the others, so imported rows get the same provenance,
verification and curation as sampled ones. A request is answered by the imported row with the
same ``task_id`` and ``sample_index``; a request with no such row is an error that says what
the file holds, never a silently smaller generation.

File schema (JSONL, Parquet or CSV), one row per completion:
  task_id        required  the task_pool id the completion answers
  completion     required  the generated text (may be empty, not missing)
  sample_index   optional  0, 1, ... per task (default: the row's order within its task)
  model          optional  the model that wrote it (default: the file name)
  finish_reason, prompt_tokens, completion_tokens   optional
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import Sample, SampleRequest
from synth_assets.core.tasks.sources import _require_str, read_table_file

IMPORT_FIELDS = (
    "task_id",
    "completion",
    "sample_index",
    "model",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
)
_WHAT = "generator.import_files"


def _int_column(df: pl.DataFrame, col: str, p: Path) -> pl.DataFrame:
    cast = df.with_columns(pl.col(col).cast(pl.Int64, strict=False).alias("_as_int"))
    bad = cast.with_row_index("_row").filter(
        pl.col(col).is_not_null() & (pl.col("_as_int").is_null() | (pl.col("_as_int") < 0))
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise SynthConfigError(
            f"{_WHAT}: {p} row {r['_row'] + 1} (task {r['task_id']}): field {col!r} is "
            f"{r[col]!r}; it must be a non-negative integer"
        )
    return cast.with_columns(pl.col("_as_int").alias(col)).drop("_as_int")


def read_import_file(path: str | Path) -> pl.DataFrame:
    """Validate one file; every error names the file, the row and the field."""
    p = Path(path)
    df = read_table_file(p, _WHAT)
    if df.height == 0:
        raise SynthConfigError(f"{_WHAT}: {p} holds no candidates")
    for col in ("task_id", "completion"):
        if col not in df.columns:
            raise SynthConfigError(
                f"{_WHAT}: {p} has no {col!r} column; each row needs task_id and completion "
                f"(optional: {', '.join(IMPORT_FIELDS[2:])})"
            )
    unknown = [c for c in df.columns if c not in IMPORT_FIELDS]
    df = df.drop(unknown)
    for col in ("task_id", "completion", "model", "finish_reason"):
        if col in df.columns and df.schema[col] != pl.String:
            df = df.with_columns(pl.col(col).cast(pl.String))
    _require_str(df, "task_id", p, _WHAT)
    missing = df.with_row_index("_row").filter(pl.col("completion").is_null())  # empty text is an answer
    if missing.height:
        r = missing.row(0, named=True)
        raise SynthConfigError(
            f"{_WHAT}: {p} row {r['_row'] + 1} (task {r['task_id']}): field 'completion' is "
            f"missing ({missing.height} rows affected)"
        )
    for col in ("sample_index", "prompt_tokens", "completion_tokens"):
        if col in df.columns:
            df = _int_column(df, col, p)
        else:
            df = df.with_columns(pl.lit(None, dtype=pl.Int64).alias(col))
    df = df.with_columns(
        pl.col("sample_index").fill_null(pl.int_range(pl.len()).over("task_id")),
        (pl.col("model") if "model" in df.columns else pl.lit(None, dtype=pl.String)).fill_null(p.stem).alias("model"),
        (pl.col("finish_reason") if "finish_reason" in df.columns else pl.lit(None, dtype=pl.String))
        .fill_null("imported")
        .alias("finish_reason"),
    )
    dup = df.filter(pl.struct("task_id", "sample_index").is_duplicated())
    if dup.height:
        r = dup.row(0, named=True)
        raise SynthConfigError(
            f"{_WHAT}: {p}: task {r['task_id']} has sample_index {r['sample_index']} more than once; "
            "each (task_id, sample_index) must be unique"
        )
    return df.select(
        "task_id", "sample_index", "completion", "model", "finish_reason", "prompt_tokens", "completion_tokens"
    )


class ImportedGenerator:
    """Answers requests from imported files instead of a model."""

    name = "import"
    # the files hold what they hold: no more samples can be drawn for a task none of whose was right
    samples_fixed = True

    def __init__(self, paths: Sequence[str], terms: str | None = None) -> None:
        if not paths:
            raise SynthConfigError(f"{_WHAT}: list at least one JSONL, Parquet or CSV file")
        frames = [read_import_file(p) for p in paths]
        self.rows = pl.concat(frames, how="vertical_relaxed")
        dup = self.rows.filter(pl.struct("task_id", "sample_index").is_duplicated())
        if dup.height:
            r = dup.row(0, named=True)
            raise SynthConfigError(
                f"{_WHAT}: task {r['task_id']} sample {r['sample_index']} appears in more than one file"
            )
        models = sorted(set(self.rows["model"]))
        self.model = (
            models[0]
            if len(models) == 1
            else "imported (" + ", ".join(models[:3]) + ("…" if len(models) > 3 else "") + ")"
        )
        self.terms = terms or "undeclared (set generator.model_terms for imported candidates)"
        self._by_key = {(r[0], r[1]): r for r in self.rows.iter_rows()}

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        missing = [r for r in requests if (r.task_id, r.sample_index) not in self._by_key]
        if missing:
            have = self.rows.group_by("task_id").agg(pl.col("sample_index").max() + 1)
            most = int(have["sample_index"].max()) if have.height else 0
            raise SynthConfigError(
                f"{_WHAT}: no imported candidate for {len(missing)} of {len(requests)} requests, e.g. task "
                f"{missing[0].task_id} sample {missing[0].sample_index}. The files hold {self.rows.height} candidates "
                f"for {have.height} tasks (up to {most} per task): set raw_candidates.samples_per_task to at most the "
                "samples every task has, and restrict task_pool to the imported tasks"
            )
        for req in requests:
            _t, _i, text, model, finish, pt, ct = self._by_key[(req.task_id, req.sample_index)]
            yield Sample(
                text, finish, int(pt or 0), int(ct or 0), 0.0, generator="import", model=model, terms=self.terms
            )
