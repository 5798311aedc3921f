"""Yield that counts distinct work: distinct verified rows and distinct solved tasks per
CPU-minute, with what a guesser would have passed subtracted. Pure functions, no Dagster.

"Verified rows per CPU-minute" counts every passing sample, so a model that writes the same
right answer to a task eight times yields eight rows of one piece of work, and a model that
always answers the family's most common value "passes" every task whose answer that happens to
be. ``distinct_yield`` counts each (task, normalized answer) once and each solved task once, and
subtracts the passes a guesser drawing from the family's answer distribution would expect.
"""

from __future__ import annotations

import polars as pl

OVERALL = "all"

YIELD_SCHEMA: dict[str, pl.DataType] = {
    "family": pl.String,  # a family (family@level), or "all"
    "tasks": pl.Int64,
    "samples": pl.Int64,  # verified rows (samples and revisions)
    "passing_rows": pl.Int64,  # every passing row, repeats included (the old count)
    "distinct_passing_rows": pl.Int64,  # distinct (task_id, normalized answer) among passing rows
    "distinct_solved_tasks": pl.Int64,  # tasks with at least one passing row
    "guesser_expected_passes": pl.Float64,  # expected distinct passes of the guesser (see distinct_yield)
    "distinct_rows_over_guessers": pl.Float64,  # distinct_passing_rows - guesser_expected_passes
    "solved_tasks_over_guessers": pl.Float64,  # distinct_solved_tasks - guesser_expected_passes
    "cpu_minutes": pl.Float64,  # the generation's CPU-minutes (every family's row: the whole generation's)
    "passing_rows_per_cpu_min": pl.Float64,
    "distinct_rows_per_cpu_min": pl.Float64,  # guesser-subtracted
    "solved_tasks_per_cpu_min": pl.Float64,  # guesser-subtracted
}


def normalized(expr: pl.Expr) -> pl.Expr:
    """An answer as text compared for distinctness: lower case, runs of whitespace as one space,
    no surrounding space nor trailing full stop (exact match's own normalization)."""
    return (
        expr.fill_null("")
        .str.to_lowercase()
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        .str.strip_chars_end(".")
        .str.strip_chars()
    )


def row_answer(verified: pl.DataFrame) -> pl.Expr:
    """The answer a verified row gives: the code itself for code tasks (``python_tests``), else
    the answer the verifier extracted, else the whole completion."""
    extracted = pl.col("extracted_answer") if "extracted_answer" in verified.columns else pl.lit(None, pl.String)
    code = (pl.col("verifier") == "python_tests") if "verifier" in verified.columns else pl.lit(False)
    return normalized(pl.when(code).then(pl.col("completion")).otherwise(pl.coalesce(extracted, pl.col("completion"))))


def guesser_expected(verified: pl.DataFrame) -> pl.DataFrame:
    """Per task (family, task_id): k, the share of its reference answer and the guesser's chance.

    The guesser answers each of a task's k attempts (its verified rows: samples and revisions) with
    a value drawn from the family's answer distribution: the shares of the normalized reference
    answers over the family's distinct tasks in ``verified``. It solves task t with probability
    ``1 - (1 - share(answer_t))**k``; a reference answer it can draw is one passing value, so that is
    also its expected number of distinct passing rows on t. Summed over the family's tasks it is
    what a model earns by learning the answer distribution rather than the task. The distribution
    is estimated from the same tasks, so a family of few tasks overstates the guesser (each answer
    has a share of at least 1/tasks); code tasks carry no reference answer and a guesser expects 0.
    """
    tasks = verified.group_by("family", "task_id").agg(
        pl.len().alias("k"), normalized(pl.col("answer").first()).alias("ref"), pl.col("answer").first().alias("raw")
    )
    shares = (
        tasks.filter(pl.col("raw").is_not_null())
        .group_by("family", "ref")
        .agg(pl.len().alias("same"))
        .join(tasks.group_by("family").agg(pl.len().alias("n_tasks")), on="family")
        .select("family", "ref", (pl.col("same") / pl.col("n_tasks")).alias("share"))
    )
    return (
        tasks.join(shares, on=["family", "ref"], how="left")
        .with_columns(
            pl.when(pl.col("raw").is_null()).then(0.0).otherwise(pl.col("share")).fill_null(0.0).alias("share")
        )
        .with_columns((1 - (1 - pl.col("share")) ** pl.col("k")).alias("guess"), pl.col("k").cast(pl.Int64))
        .select("family", "task_id", "k", "share", "guess")
        .sort("family", "task_id")
    )


def distinct_yield(verified: pl.DataFrame, cpu_seconds: float) -> pl.DataFrame:
    """Per family and overall (family ``"all"``, last): distinct passing rows, distinct solved
    tasks, the guessers' expected passes, both counts with those subtracted, and per CPU-minute
    figures (``YIELD_SCHEMA``).

    ``verified`` holds one generation's verified rows (VERDICT_SCHEMA; task_id, family, answer,
    completion, extracted_answer, verifier and verdict are read). A passing row counts once per
    (task_id, normalized answer): eight passes of "12" on one task are one row; two forms a scorer
    accepts ("12" and "12.0") are two rows, and one solved task. The guessers' expected passes are
    ``guesser_expected``'s, summed; they are subtracted from both counts and not clipped at 0 (a
    negative figure is fewer distinct passes than guessing explains).

    ``cpu_seconds`` is what generating the rows cost (``generation_cpu_seconds``); every family's
    per-CPU-minute figure divides by the whole generation's CPU-minutes, so the families' figures
    add up to the overall one (a family's share of the generation's work, not its own cost).
    """
    if verified.height == 0:
        return pl.DataFrame(schema=YIELD_SCHEMA)
    minutes = max(float(cpu_seconds), 1e-9) / 60
    rows = verified.with_columns(row_answer(verified).alias("_answer"), (pl.col("verdict") == "pass").alias("_pass"))
    passing = rows.filter(pl.col("_pass"))
    guess = guesser_expected(verified).group_by("family").agg(pl.col("guess").sum().alias("guesser_expected_passes"))
    per_family = (
        rows.group_by("family")
        .agg(
            pl.col("task_id").n_unique().alias("tasks"),
            pl.len().alias("samples"),
            pl.col("_pass").sum().cast(pl.Int64).alias("passing_rows"),
        )
        .join(
            passing.group_by("family").agg(
                pl.struct("task_id", "_answer").n_unique().alias("distinct_passing_rows"),
                pl.col("task_id").n_unique().alias("distinct_solved_tasks"),
            ),
            on="family",
            how="left",
        )
        .join(guess, on="family", how="left")
        .with_columns(pl.col("distinct_passing_rows", "distinct_solved_tasks").fill_null(0).cast(pl.Int64))
        .sort("family")
    )
    counts = ["tasks", "samples", "passing_rows", "distinct_passing_rows", "distinct_solved_tasks"]
    overall = per_family.select(
        pl.lit(OVERALL).alias("family"), *[pl.col(c).sum() for c in [*counts, "guesser_expected_passes"]]
    )
    return (
        pl.concat([per_family.select(overall.columns), overall], how="vertical_relaxed")
        .with_columns(
            (pl.col("distinct_passing_rows") - pl.col("guesser_expected_passes")).alias("distinct_rows_over_guessers"),
            (pl.col("distinct_solved_tasks") - pl.col("guesser_expected_passes")).alias("solved_tasks_over_guessers"),
            pl.lit(minutes).alias("cpu_minutes"),
        )
        .with_columns(
            (pl.col("passing_rows") / minutes).alias("passing_rows_per_cpu_min"),
            (pl.col("distinct_rows_over_guessers") / minutes).alias("distinct_rows_per_cpu_min"),
            (pl.col("solved_tasks_over_guessers") / minutes).alias("solved_tasks_per_cpu_min"),
        )
        .select([pl.col(c).cast(t) for c, t in YIELD_SCHEMA.items()])
    )


def generation_wall_seconds(raw_candidates: pl.DataFrame) -> float:
    """How long the generation's sampling took, from its rows alone: from the earliest request's
    start (a row's ``created_at`` less its ``latency_s``) to the last row's ``created_at``.
    Samples decoded side by side (the batched decoder) overlap, so this is the span, not the sum
    of latencies. A sample served from the response cache carries the latency it had when it was
    generated, so a generation completed after a killed run counts the completing run's span
    (and the stored latency of its earliest sample), not the killed run's time."""
    if raw_candidates.height == 0:
        return 0.0
    span = raw_candidates.select(
        (
            pl.col("created_at").max()
            - (
                pl.col("created_at") - pl.duration(microseconds=(pl.col("latency_s").fill_null(0) * 1e6).cast(pl.Int64))
            ).min()
        ).dt.total_microseconds()
    ).item()
    return max(float(span or 0) / 1e6, 0.0)


def generation_cpu_seconds(raw_candidates: pl.DataFrame, cores: int) -> float:
    """CPU seconds of the generation, as wall time x cores: ``generation_wall_seconds`` times the
    cores the generator used (the embedded llama.cpp generator uses every core unless
    ``n_threads`` says fewer). No process CPU time is recorded with the rows, so this is an upper
    bound of the CPU the generator burned; for a remote endpoint it is the local machine's time,
    not the endpoint's."""
    return generation_wall_seconds(raw_candidates) * max(int(cores), 1)
