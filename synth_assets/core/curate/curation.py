"""From verified candidates to the filtered set, with a reason for every dropped row.

Stages run in a fixed order and each row gets the first reason that applies:

1. verification verdict (``verdict_fail`` ...);
2. quality filters: ``empty_completion``, ``encoding_invalid``, ``too_short``, ``too_long``,
   ``answer_missing``, ``code_syntax_error``, ``judge_below_threshold``;
3. ``exact_duplicate``: the same normalised text as another row of the task, in this
   generation or one already accepted;
4. decontamination: ``contaminated_heldout`` / ``contaminated_benchmark`` (a shared word
   n-gram with a held-out item or a registered benchmark file) and
   ``contaminated_near_duplicate`` (MinHash-confirmed Jaccard with such an item);
5. ``near_duplicate``: MinHash LSH over the *completions* of this generation and of every
   row accepted in earlier generations, each pair confirmed by exact Jaccard. Procedural
   prompts are templates, so prompts would make whole families look alike; completions of
   different tasks count only when both are long enough to mean something. Rows are kept by
   a greedy representative selection (``select_representatives``): every dropped row names a
   kept row it is confirmed similar to, and no confirmed pair remains among the kept rows;
6. ``diversity_cap``: at most k rows per task, picked to be as different from each other
   (and from the task's earlier accepted rows) as possible.

Everything is vectorised over polars/numpy so a million candidates curate in about a minute
(`bench/curation_scale.py`).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from synth_assets.core.curate.near_duplicates import (
    SHINGLE_CHUNK,
    NearDupSettings,
    estimated_similarity,
    find_near_duplicates,
    select_representatives,
    shingle,
    signatures,
)
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import RATIONALE_TEMPLATE_PREFIX
from synth_assets.core.settings import Settings
from synth_assets.core.tasks.sources import conform, read_table_file
from synth_assets.core.verify.verification import VERDICT_SCHEMA

if TYPE_CHECKING:
    from synth_assets.core.warehouse import Warehouse

FILTERED_SCHEMA: dict[str, pl.DataType] = {
    **VERDICT_SCHEMA,
    "training_text": pl.String,
    "text_hash": pl.String,
    "cluster_id": pl.String,
}
DROP_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.String,
    "generation": pl.Int64,
    "task_id": pl.String,
    "family": pl.String,
    "domain": pl.String,
    "verdict": pl.String,
    "drop_reason": pl.String,
    "drop_detail": pl.String,
    "duplicate_of": pl.String,  # near/exact duplicates: the row that was kept instead
    "cluster_id": pl.String,
    "completion": pl.String,
}
REFERENCE_TEXT_SCHEMA: dict[str, pl.DataType] = {"ref_source": pl.String, "ref_id": pl.String, "text": pl.String}

# word n-gram length shared with a held-out item that counts as contamination (all stages)
DECONTAMINATION_NGRAM = 13
ANSWER_VERIFIERS = ("reasoning_gym", "math", "exact")
REASON_ORDER = (
    "verdict_*",
    "empty_completion",
    "encoding_invalid",
    "too_short",
    "too_long",
    "answer_missing",
    "code_syntax_error",
    "judge_below_threshold",
    "exact_duplicate",
    "contaminated_heldout",
    "contaminated_benchmark",
    "contaminated_near_duplicate",
    "near_duplicate",
    "diversity_cap",
)
_BAD_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x{fffd}]"
_WORD_RE = r"\w+"


class QualitySettings(Settings):
    """Row-level quality filters; each drop has its reason code."""

    min_chars: int = Field(default=1, ge=0, description="shortest training text kept")
    max_chars: int = Field(default=20_000, ge=1, description="longest training text kept")
    require_answer: bool = Field(default=True, description="answer tasks need an extracted final answer")
    code_must_parse: bool = Field(default=True, description="code rows must parse as Python")
    judge_min_score: float | None = Field(default=None, ge=0, le=1, description="drop rows a judge scored below this")
    encoding_check: bool = Field(default=True, description="drop texts with control or U+FFFD characters")

    @model_validator(mode="after")
    def _ordered(self) -> QualitySettings:
        if self.max_chars < self.min_chars:
            raise ValueError(f"need min_chars <= max_chars (got {self.min_chars}, {self.max_chars})")
        return self


class CurationSettings(Settings):
    """Everything that decides which verified candidates are kept."""

    decontamination_ngram: int = Field(
        default=DECONTAMINATION_NGRAM, ge=3, description="word n-gram length for overlap with held-out items"
    )
    decontaminate_near_duplicates: bool = Field(
        default=True, description="also drop rows whose text is a near-duplicate of a held-out or benchmark item"
    )
    max_per_task: int = Field(
        default=4, ge=0, description="accepted rows per task per generation, most different first (0 = no cap)"
    )
    near_duplicates: NearDupSettings = Field(default_factory=NearDupSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)


@dataclass
class Curation:
    kept: pl.DataFrame
    dropped: pl.DataFrame
    coverage: pl.DataFrame  # per family: candidates, passing, kept, wiped_out
    stats: dict


# ------------------------------------------------------------------ texts
def training_text_expr() -> pl.Expr:
    """What the assistant turn of a training example says for this candidate."""
    completion = pl.col("completion").fill_null("")
    answer = (
        pl.when(pl.col("extracted_answer").fill_null("").str.strip_chars() != "")
        .then(pl.col("extracted_answer"))
        .otherwise(completion)
    )
    # a worked rationale is trained whole (its steps were checked): the work, then the answer line
    rationale = pl.col("prompt_template").fill_null("").str.starts_with(RATIONALE_TEMPLATE_PREFIX)
    return (
        pl.when(pl.col("verifier") == "python_tests")
        .then((pl.col("prompt").fill_null("") + completion).str.strip_chars_end() + "\n")
        .when(rationale & (pl.col("extracted_answer").fill_null("").str.strip_chars() != ""))
        .then(completion.str.strip_chars())
        .otherwise(answer.str.strip_chars())
    )


def dedup_text_expr() -> pl.Expr:
    """What near-duplicate detection compares: what the model wrote, never the task's template."""
    return (
        pl.when(pl.col("verifier") == "python_tests")
        .then(pl.col("completion").fill_null(""))
        .otherwise(pl.col("training_text"))
    )


def normalise_expr(col: str) -> pl.Expr:
    return pl.col(col).str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Python twin of the vectorised n-grams, used by the asset check to re-derive the fact."""
    import re

    words = re.findall(_WORD_RE, text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def heldout_ngrams(texts: Iterable[str], n: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for t in texts:
        out |= word_ngrams(t, n)
    return out


def heldout_texts_of(heldout: pl.DataFrame) -> list[str]:
    """What decontamination compares against: each held-out item's prompt and response."""
    return [f"{p}\n{r}" for p, r in zip(heldout["prompt"].to_list(), heldout["response"].to_list())]


def heldout_references(heldout: pl.DataFrame) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "ref_source": ["heldout"] * heldout.height,
                "ref_id": heldout["ref_id"].to_list(),
                "text": heldout_texts_of(heldout),
            }
        ),
        REFERENCE_TEXT_SCHEMA,
    )


_BENCH_PROMPT = ("prompt", "question", "input", "instruction", "problem", "text")
_BENCH_RESPONSE = ("response", "answer", "output", "canonical_solution", "solution", "completion")


def read_benchmark_file(path: str | Path) -> pl.DataFrame:
    """A benchmark the user registered for decontamination: JSONL, Parquet or CSV with a prompt-like
    column (prompt, question, input, instruction, problem or text) and optionally a response-like one."""
    what = "filtered_set.benchmark_files"
    df = read_table_file(path, what)
    p = Path(path)
    prompt = next((c for c in _BENCH_PROMPT if c in df.columns), None)
    if prompt is None:
        raise SynthConfigError(
            f"{what}: {p} has no text column; name one of {', '.join(_BENCH_PROMPT)} (found {df.columns[:10]})"
        )
    response = next((c for c in _BENCH_RESPONSE if c in df.columns and c != prompt), None)
    text = pl.col(prompt).cast(pl.String).fill_null("")
    if response:
        text = text + "\n" + pl.col(response).cast(pl.String).fill_null("")
    ids = pl.col("id").cast(pl.String) if "id" in df.columns else pl.int_range(pl.len()).cast(pl.String)
    return df.select(pl.lit(f"benchmark:{p.stem}").alias("ref_source"), ids.alias("ref_id"), text.alias("text"))


# ------------------------------------------------------------------ decontamination
def ngram_hits(texts: pl.Series, references: pl.DataFrame, n: int) -> tuple[np.ndarray, list[str | None]]:
    """Per text: how many of its word n-grams occur in a reference, and the first reference hit."""
    if references.height == 0 or texts.len() == 0:
        return np.zeros(texts.len(), np.int64), [None] * texts.len()
    st = NearDupSettings(shingle="word", shingle_size=n)
    ref = shingle(references["text"], st, mode="regex", whole_short=False, bits=64)
    ref_owner = np.repeat(np.arange(references.height), ref.sizes())
    order = np.argsort(ref.hashes, kind="stable")
    ref_sorted, owner_sorted = ref.hashes[order], ref_owner[order]
    counts = np.zeros(texts.len(), np.int64)
    first: list[str | None] = [None] * texts.len()
    labels = (references["ref_source"] + ":" + references["ref_id"]).to_list()
    for s in range(0, texts.len(), SHINGLE_CHUNK):  # a slice at a time: each text's hits are its own
        part = texts.slice(s, SHINGLE_CHUNK)
        cand = shingle(part, st, mode="regex", whole_short=False, bits=64)
        pos = np.searchsorted(ref_sorted, cand.hashes)
        pos_c = np.minimum(pos, max(len(ref_sorted) - 1, 0))
        hit = (len(ref_sorted) > 0) & (ref_sorted[pos_c] == cand.hashes)
        owner = np.repeat(np.arange(part.len()), cand.sizes())
        counts[s : s + part.len()] = np.bincount(owner[hit], minlength=part.len())
        hit_idx = np.flatnonzero(hit)
        if len(hit_idx):
            owners = owner[hit_idx]
            _, first_pos = np.unique(owners, return_index=True)
            for k in first_pos:
                first[s + owners[k]] = labels[owner_sorted[pos_c[hit_idx[k]]]]
    return counts, first


def decontaminate_references(human: pl.DataFrame, heldout_texts: list[str], n: int) -> tuple[pl.DataFrame, list[str]]:
    """Human rows that share no word n-gram with a held-out item, and the ids of those that do.

    HumanEval has sibling tasks with near-identical docstrings, so a split by task id alone
    leaks held-out text into the human half.
    """
    refs = conform(
        pl.DataFrame(
            {
                "ref_source": ["heldout"] * len(heldout_texts),
                "ref_id": [str(i) for i in range(len(heldout_texts))],
                "text": heldout_texts,
            }
        ),
        REFERENCE_TEXT_SCHEMA,
    )
    texts = human["prompt"].fill_null("") + "\n" + human["response"].fill_null("")
    counts, _ = ngram_hits(texts, refs, n)
    bad = human["ref_id"].filter(pl.Series(counts > 0)).to_list() if human.height else []
    return human.filter(~pl.col("ref_id").is_in(bad)), bad


def reference_hits(texts: pl.Series, refs: pl.DataFrame, ngram: int, near: NearDupSettings | None) -> pl.DataFrame:
    """Per text of a slice: how many word n-grams it shares with the references and the first
    reference hit; for a text with none, the reference it is a confirmed near-duplicate of (and
    the Jaccard), when ``near`` is given. Pure, and a slice's answer depends on it alone."""
    counts, first = ngram_hits(texts, refs, ngram)
    label: list[str | None] = [None] * texts.len()
    jaccard = np.full(texts.len(), np.nan)
    clean = np.flatnonzero(counts == 0)
    if near is not None and len(clean):
        nr = refs.height
        names = (refs["ref_source"] + ":" + refs["ref_id"]).to_list()
        both = pl.concat([refs["text"], texts.gather(clean)])
        nd = find_near_duplicates(both, near, pair_filter=lambda a, b: (a < nr) & (b >= nr))
        hit, partner, jac = nd.linked(np.arange(len(both)) < nr)
        for x in np.flatnonzero(hit[nr:]):
            label[clean[x]], jaccard[clean[x]] = names[partner[nr + x]], jac[nr + x]
    return pl.DataFrame(
        {
            "count": counts,
            "first": pl.Series(first, dtype=pl.String),
            "near": pl.Series(label, dtype=pl.String),
            "jaccard": jaccard,
        }
    )


MapSlices = Callable[..., list]


def _local_map(fn: Callable[..., pl.DataFrame], slices: Iterable, *shared: object) -> list:
    return [fn(s, *shared) for s in slices]


# ------------------------------------------------------------------ curation
def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


class _Reasons:
    """The first reason per row; later stages only see rows no earlier stage dropped."""

    def __init__(self, n: int) -> None:
        self.reason: list[str | None] = [None] * n
        self.detail: list[str] = [""] * n
        self.dup_of: list[str | None] = [None] * n
        self.cluster: list[str | None] = [None] * n

    def alive(self) -> np.ndarray:
        return np.array([r is None for r in self.reason], bool)

    def drop(self, mask: np.ndarray, reason: str, detail: str | Callable[[int], str] = "") -> None:
        self.drop_rows(np.flatnonzero(np.asarray(mask, bool)), reason, detail)

    def drop_rows(self, rows: Iterable[int], reason: str, detail: str | Callable[[int], str] = "") -> None:
        for i in rows:
            if self.reason[i] is None:
                self.reason[i] = reason
                self.detail[i] = detail(i) if callable(detail) else detail


def _quality(df: pl.DataFrame, q: QualitySettings, r: _Reasons) -> None:
    """Stage 2: the row-level quality filters, each with its reason code and detail."""
    text = df["training_text"]
    r.drop(
        (
            (text.str.strip_chars() == "")
            | ((df["verifier"] == "python_tests") & (df["completion"].fill_null("").str.strip_chars() == ""))
        ).to_numpy(),
        "empty_completion",
        "nothing generated",
    )
    if q.encoding_check:
        r.drop(
            text.str.contains(_BAD_CHARS).fill_null(False).to_numpy(),
            "encoding_invalid",
            "control character or U+FFFD replacement character in the text",
        )
    n = text.str.len_chars().to_numpy()
    r.drop(n < q.min_chars, "too_short", lambda i: f"{n[i]} characters < min_chars {q.min_chars}")
    r.drop(n > q.max_chars, "too_long", lambda i: f"{n[i]} characters > max_chars {q.max_chars}")
    if q.require_answer:
        r.drop(
            (
                df["verifier"].is_in(ANSWER_VERIFIERS) & (df["extracted_answer"].fill_null("").str.strip_chars() == "")
            ).to_numpy(),
            "answer_missing",
            "no final answer could be extracted",
        )
    if q.code_must_parse:
        code = np.flatnonzero((df["verifier"] == "python_tests").to_numpy() & r.alive())
        texts = text.to_list()
        bad = [i for i in code if not _parses(texts[i])]
        r.drop_rows(bad, "code_syntax_error", "prompt + completion is not valid Python")
    if q.judge_min_score is not None:
        js = df["judge_score"].to_numpy()
        low = ~np.isnan(js.astype(float)) & (js.astype(float) < q.judge_min_score)
        r.drop(low, "judge_below_threshold", lambda i: f"judge score {js[i]:.2f} < {q.judge_min_score}")


# what the decisions read of a verified row, and of a row accepted earlier: a generation is
# curated from these columns alone, so the store's other columns never enter Python memory
CURATION_COLUMNS = (
    "candidate_id",
    "generation",
    "task_id",
    "family",
    "domain",
    "verifier",
    "prompt",
    "prompt_template",
    "completion",
    "extracted_answer",
    "verdict",
    "verdict_detail",
    "score",
    "judge_score",
)
HISTORY_COLUMNS = ("candidate_id", "task_id", "verifier", "completion", "training_text")
DECISION_SCHEMA: dict[str, pl.DataType] = {
    "candidate_id": pl.String,
    "training_text": pl.String,
    "text_hash": pl.String,
    "cluster_id": pl.String,
    "drop_reason": pl.String,
    "drop_detail": pl.String,
    "duplicate_of": pl.String,
}


@dataclass
class Decisions:
    """One row per candidate, in input order: null ``drop_reason`` = kept."""

    table: pl.DataFrame  # DECISION_SCHEMA
    coverage: pl.DataFrame
    stats: dict


def curate(
    verified: pl.DataFrame,
    settings: CurationSettings,
    references: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
) -> Curation:
    """Kept rows, dropped rows with reasons (together every input row exactly once), and coverage.

    ``references``: texts to decontaminate against (REFERENCE_TEXT_SCHEMA). ``previous``: rows
    accepted in earlier generations (FILTERED_SCHEMA); new rows may not duplicate them.
    In memory; ``curate_generation`` does the same from and into the warehouse.
    """
    verified = conform(verified, VERDICT_SCHEMA) if set(CURATION_COLUMNS) - set(verified.columns) else verified
    dec = decide(verified, settings, references, previous)
    out = verified.drop([c for c in DECISION_SCHEMA if c != "candidate_id" and c in verified.columns]).hstack(
        dec.table.drop("candidate_id")
    )
    keep = out["drop_reason"].is_null()
    kept = conform(out.filter(keep), FILTERED_SCHEMA)
    dropped = conform(out.filter(~keep), DROP_SCHEMA)
    return Curation(kept, dropped, dec.coverage, dec.stats)


def decide(
    verified: pl.DataFrame,
    settings: CurationSettings,
    references: pl.DataFrame | None = None,
    previous: pl.DataFrame | None = None,
    map_slices: MapSlices | None = None,
) -> Decisions:
    """Every candidate's fate (``CURATION_COLUMNS`` in, ``DECISION_SCHEMA`` out, same order);
    ``previous`` needs ``HISTORY_COLUMNS`` only. ``map_slices`` runs the per-row work
    (``reference_hits``) elsewhere, e.g. ``RaySlices.map``; by default here, slice by slice.

    The stages run in the module docstring's order, each on the rows no earlier stage dropped;
    columns are dropped (and freed) as soon as no later stage reads them."""
    refs = references if references is not None else conform([], REFERENCE_TEXT_SCHEMA)
    prev = previous if previous is not None and previous.height else conform([], FILTERED_SCHEMA)
    df = verified.select(CURATION_COLUMNS).with_columns(training_text_expr().alias("training_text"))
    del verified  # the caller may have passed its only reference: columns dropped below are freed
    df = df.with_columns(dedup_text_expr().alias("_dedup"))
    r = _Reasons(df.height)
    _failed_verdicts(df, r)
    _quality(df, settings.quality, r)
    prev_dedup = prev.with_columns(dedup_text_expr().alias("_dedup")) if prev.height else None
    _exact_duplicates(df, prev_dedup, r)
    _decontaminate(df, refs, settings, r, map_slices)
    df = df.drop("prompt", "completion", "extracted_answer", "verdict_detail", "judge_score")

    # the near-duplicate stage compares everything accepted before with this generation's live rows
    live = np.flatnonzero(r.alive())
    texts = [
        prev_dedup["_dedup"] if prev_dedup is not None else pl.Series([], dtype=pl.String),
        df["_dedup"].gather(live),
    ]
    df = df.drop("_dedup")
    del prev_dedup
    prev_tasks = prev["task_id"] if prev.height else pl.Series([], dtype=pl.String)
    n_pairs, n_candidates, kept_sig = _near_duplicates(texts, df, prev, prev_tasks, live, settings, r)
    _diversity_cap(df, prev_tasks, live, prev.height, kept_sig, settings.max_per_task, r)
    del kept_sig  # (n, num_perm) uint32: a quarter of a GB at a million rows, freed before assembly
    stats = {
        "input_rows": df.height,
        "kept": int(r.alive().sum()),
        "near_duplicates_dropped": n_pairs,
        "lsh_candidate_pairs": n_candidates,
        "previous_rows_compared": prev.height,
        "references_compared": refs.height,
    }
    return _decisions(df, r, stats)


def _failed_verdicts(df: pl.DataFrame, r: _Reasons) -> None:
    """Stage 1: a row verification did not pass is dropped as ``verdict_<verdict>``, with the
    verifier's detail."""
    failed = df.select(
        pl.int_range(pl.len()).alias("i"),
        pl.col("verdict").fill_null("missing"),
        pl.col("verdict_detail").fill_null("").str.slice(0, 200),
    ).filter(pl.col("verdict") != "pass")
    for i, verdict, detail in failed.iter_rows():
        r.reason[i], r.detail[i] = f"verdict_{verdict}", detail


def _exact_duplicates(df: pl.DataFrame, prev_dedup: pl.DataFrame | None, r: _Reasons) -> None:
    """Stage 3: the same normalised text as a row of the task accepted in an earlier generation,
    or as an earlier live row of this generation (which it names). In polars: a million keys as
    Python strings and a dict of them cost more memory than the rows themselves."""
    key_expr = (pl.col("task_id") + "\x1f" + normalise_expr("_dedup")).alias("k")
    prev_keys = prev_dedup.select(key_expr)["k"] if prev_dedup is not None else pl.Series("k", [], pl.String)
    dups = (
        df.select(pl.int_range(pl.len()).alias("i"), key_expr, pl.col("candidate_id"))
        .filter(pl.Series(r.alive()))
        .with_columns(
            pl.col("k").is_in(prev_keys.implode()).alias("earlier"),
            pl.col("candidate_id").first().over("k").alias("first"),
            pl.col("k").is_first_distinct().alias("is_first"),
        )
        .filter(pl.col("earlier") | ~pl.col("is_first"))
        .select("i", "earlier", "first")
    )
    for i, earlier, first_id in dups.iter_rows():
        if earlier:
            r.drop_rows([i], "exact_duplicate", "same normalised text as a row accepted in an earlier generation")
        else:
            r.drop_rows([i], "exact_duplicate", "same normalised text as another candidate of this task")
            r.dup_of[i] = first_id


def _decontaminate(
    df: pl.DataFrame, refs: pl.DataFrame, settings: CurationSettings, r: _Reasons, map_slices: MapSlices | None
) -> None:
    """Stage 4: word n-grams shared with a reference item, then near-duplicates of reference
    items, a slice of live rows at a time (a row's answer depends on the row alone), on a Ray
    cluster when ``map_slices`` sends it there."""
    alive = r.alive()
    if not (refs.height and alive.any()):
        return
    live = np.flatnonzero(alive)
    slices = (
        df["prompt"].gather(rows).fill_null("") + "\n" + df["training_text"].gather(rows)
        for rows in (live[s : s + SHINGLE_CHUNK] for s in range(0, len(live), SHINGLE_CHUNK))
    )
    near = settings.near_duplicates if settings.decontaminate_near_duplicates else None
    hits = pl.concat((map_slices or _local_map)(reference_hits, slices, refs, settings.decontamination_ngram, near))
    ng = settings.decontamination_ngram
    for x, count, first, label, jac in (
        hits.with_row_index("x").filter((pl.col("count") > 0) | pl.col("near").is_not_null()).iter_rows()
    ):
        if count:
            reason = "contaminated_benchmark" if first.startswith("benchmark:") else "contaminated_heldout"
            r.drop_rows([live[x]], reason, f"{count} shared {ng}-word sequences with {first}")
        else:
            r.drop_rows([live[x]], "contaminated_near_duplicate", f"Jaccard {jac:.2f} with {label}")


def _near_duplicates(
    texts: list[pl.Series],
    df: pl.DataFrame,
    prev: pl.DataFrame,
    prev_tasks: pl.Series,
    live: np.ndarray,
    settings: CurationSettings,
    r: _Reasons,
) -> tuple[int, int, np.ndarray | None]:
    """Stage 5: MinHash LSH over the completions of every row accepted before and of this
    generation's ``live`` rows (``texts``: those two, in that order; emptied here, the caller's
    only reference, so the texts are freed once shingled), each pair confirmed by exact Jaccard,
    the kept rows chosen by ``select_representatives``. Returns (pairs dropped, LSH candidate
    pairs, the signatures of the compared texts for the diversity cap: None when it needs none)."""
    n_prev = prev.height
    all_text = pl.concat(texts)
    texts.clear()
    ids = df["candidate_id"]
    # row names are gathered when needed: a million Python strings cost more than the texts
    all_ids = pl.concat([prev["candidate_id"] if n_prev else pl.Series([], dtype=pl.String), ids.gather(live)])
    k = settings.max_per_task
    if not (len(all_text) and settings.near_duplicates.enabled):
        if k and len(all_text):
            return 0, 0, signatures(shingle(all_text, settings.near_duplicates), settings.near_duplicates)
        return 0, 0, None
    task_code = pl.concat([prev_tasks, df["task_id"].gather(live)]).cast(pl.Categorical).to_physical().to_numpy()
    min_sh = settings.near_duplicates.cross_task_min_shingles
    sh = shingle(all_text, settings.near_duplicates)
    del all_text
    sizes = sh.sizes()

    # the comparison scope: every pair within a task, and pairs across tasks when both texts
    # are long enough to mean something (short procedural answers repeat across tasks by
    # design). Short texts are candidates only within their task; an extra within-task pass
    # over the sizes where a short and a long text can still reach the threshold
    # (|A & B| / |A | B| <= min / max size) covers short-long pairs of one task.
    t = settings.near_duplicates.threshold
    scope = np.where(sizes >= min_sh, -1, task_code)
    border = (sizes >= np.ceil(t * min_sh)) & (sizes <= np.floor((min_sh - 1) / t))
    forced = np.arange(sh.n) < n_prev
    score = np.concatenate([np.zeros(n_prev), df["score"].fill_null(0).to_numpy()[live].astype(float)])
    kept_sig = signatures(sh, settings.near_duplicates)
    sel = select_representatives(
        sh, settings.near_duplicates, score, scope=scope, extra=[(border, task_code)], forced=forced, sig=kept_sig
    )
    del sh, scope, border, forced, score, task_code
    n_pairs, n_candidates = int((~sel.keep).sum()), sel.candidates
    keep, dup_of, dup_j = sel.keep, sel.duplicate_of, sel.jaccard
    lost_x = np.flatnonzero(~keep)
    for x, kept_id in zip(lost_x.tolist(), all_ids.gather(dup_of[lost_x]).to_list()):
        row = live[x - n_prev]
        r.drop_rows([row], "near_duplicate", f"Jaccard {dup_j[x]:.2f} with {kept_id} (kept)")
        r.dup_of[row] = r.cluster[row] = kept_id
    heads = np.unique(dup_of[~keep])
    heads = heads[heads >= n_prev]
    for x, head_id in zip(heads.tolist(), all_ids.gather(heads).to_list()):
        r.cluster[live[x - n_prev]] = head_id
    # an exact duplicate names the row kept in its place: when that row itself just lost
    # to a near-duplicate, name the row that row lost to (an identical text, same Jaccard)
    lost_rows = live[~keep[n_prev:]]
    lost = dict(zip(ids.gather(lost_rows).to_list(), lost_rows.tolist()))
    for row in range(df.height):
        if r.reason[row] == "exact_duplicate" and r.dup_of[row] in lost:
            twin = lost[r.dup_of[row]]
            r.dup_of[row] = r.cluster[row] = r.dup_of[twin]
            r.detail[row] += f"; that row lost to {r.dup_of[twin]} ({r.detail[twin].split(' with ')[0]})"
    return n_pairs, n_candidates, kept_sig


def _diversity_cap(
    df: pl.DataFrame,
    prev_tasks: pl.Series,
    live: np.ndarray,
    n_prev: int,
    kept_sig: np.ndarray | None,
    k: int,
    r: _Reasons,
) -> None:
    """Stage 6: at most ``k`` rows per task, picked greedily to be as different from each other
    (and from the task's rows accepted earlier) as the signatures estimate; ``live`` and
    ``n_prev`` place each row in ``kept_sig`` as the near-duplicate stage laid it out."""
    alive = r.alive()
    if not (k and alive.any()):
        return
    pos_of_row = np.full(df.height, -1, np.int64)
    pos_of_row[live] = n_prev + np.arange(len(live))
    # only tasks over the cap need a decision (in Python); the rest never leave polars
    over = (
        df.select(pl.int_range(pl.len()).alias("i"), "task_id")
        .filter(pl.Series(alive))
        .group_by("task_id", maintain_order=True)
        .agg("i")
        .filter(pl.col("i").list.len() > k)
    )
    prev_by_task: dict[str, list[int]] = {}
    if n_prev and over.height:
        near = np.flatnonzero(prev_tasks.is_in(over["task_id"].implode()).to_numpy())
        for x, task in zip(near.tolist(), prev_tasks.gather(near).to_list()):
            prev_by_task.setdefault(task, []).append(x)
    scores = df["score"].fill_null(0).to_numpy().astype(float)
    for task, rows in over.iter_rows():
        chosen_pos = list(prev_by_task.get(task, []))
        pool = sorted(rows, key=lambda i: (-scores[i], i))
        picked: list[int] = []
        if not chosen_pos:
            picked.append(pool.pop(0))
            chosen_pos.append(int(pos_of_row[picked[0]]))
        while len(picked) < k and pool:
            cand_pos = pos_of_row[np.array(pool)]
            closest = np.zeros(len(pool))
            for c in chosen_pos:
                closest = np.maximum(closest, estimated_similarity(kept_sig, c, cand_pos))
            best = int(np.argmin(closest))  # first minimum = best score among equals
            picked.append(pool.pop(best))
            chosen_pos.append(int(pos_of_row[picked[-1]]))
        r.drop_rows(
            pool,
            "diversity_cap",
            f"task {task} had {len(rows)} accepted rows; kept the {k} most different from each other",
        )


def _decisions(df: pl.DataFrame, r: _Reasons, stats: dict) -> Decisions:
    """The decisions table (with the text hash of every kept row) and the coverage report."""
    keep_mask = r.alive()
    table = df.select("candidate_id", "training_text").with_columns(
        pl.Series("cluster_id", r.cluster, dtype=pl.String),
        pl.Series("drop_reason", r.reason, dtype=pl.String),
        pl.Series("drop_detail", r.detail, dtype=pl.String),
        pl.Series("duplicate_of", r.dup_of, dtype=pl.String),
    )
    hashes: list[str | None] = [None] * df.height
    kept_rows = np.flatnonzero(keep_mask)
    for s in range(0, len(kept_rows), SHINGLE_CHUNK):  # kept rows only, a slice of Python strings at a time
        rows = kept_rows[s : s + SHINGLE_CHUNK]
        for i, t in zip(rows.tolist(), df["training_text"].gather(rows).to_list()):
            hashes[i] = hashlib.sha256(normalise(t).encode()).hexdigest()[:16]
    table = table.with_columns(pl.Series("text_hash", hashes, dtype=pl.String))
    del hashes
    table = table.with_columns(
        pl.when(pl.col("drop_reason").is_null()).then(None).otherwise(pl.col("drop_detail")).alias("drop_detail")
    ).select(list(DECISION_SCHEMA))
    coverage = coverage_report(
        df.select("family", "domain", "verdict"), df.select("family", "domain").filter(pl.Series(keep_mask))
    )
    return Decisions(table, coverage, stats)


def coverage_report(verified: pl.DataFrame, kept: pl.DataFrame) -> pl.DataFrame:
    """Per family and domain: candidates, passing, kept; ``wiped_out`` when filtering removed
    every passing row of a family that verification had let through."""
    schema = {
        "family": pl.String,
        "domain": pl.String,
        "candidates": pl.Int64,
        "passing": pl.Int64,
        "kept": pl.Int64,
        "wiped_out": pl.Boolean,
    }
    if verified.height == 0:
        return pl.DataFrame(schema=schema)
    base = verified.group_by("family", "domain").agg(
        pl.len().cast(pl.Int64).alias("candidates"), (pl.col("verdict") == "pass").sum().cast(pl.Int64).alias("passing")
    )
    k = kept.group_by("family", "domain").agg(pl.len().cast(pl.Int64).alias("kept"))
    return (
        base.join(k, on=["family", "domain"], how="left", nulls_equal=True)
        .with_columns(pl.col("kept").fill_null(0))
        .with_columns(((pl.col("passing") > 0) & (pl.col("kept") == 0)).alias("wiped_out"))
        .select(list(schema))
        .sort("family")
    )


@dataclass
class StoredCuration:
    """What ``curate_generation`` wrote, for the asset's metadata and logs."""

    kept: int
    dropped: int
    coverage: pl.DataFrame
    stats: dict
    drops_by_reason: dict[str, int]
    clusters: int


def curate_generation(
    warehouse: Warehouse,
    generation: int,
    settings: CurationSettings,
    references: pl.DataFrame | None = None,
    verified_table: str = "verified_set",
    kept_table: str = "filtered_set",
    dropped_table: str = "filter_drops",
    log: Callable[[str], None] = lambda _m: None,
    map_slices: MapSlices | None = None,
) -> StoredCuration:
    """``curate`` from and into the warehouse: the decisions read only ``CURATION_COLUMNS`` of the
    generation and ``HISTORY_COLUMNS`` of the rows kept in earlier generations, and the kept and
    dropped rows are written by DuckDB joining the stored rows with the decisions, both tables
    in one transaction, so a generation's full rows never enter Python memory (a million
    candidates curate in under 2 GiB; ``bench/scale.py``)."""
    v = f"{warehouse.schema}.{verified_table}"
    cols = ", ".join(f'"{c}"' for c in CURATION_COLUMNS)
    previous = None
    if generation > 1 and warehouse.table_exists(kept_table):
        previous = warehouse.sql(
            f"select {', '.join(HISTORY_COLUMNS)} from {warehouse.schema}.{kept_table} where generation < ?",
            [generation],
        )
    n_ids = warehouse.sql(
        f"select count(*) as n, count(distinct candidate_id) as u from {v} where generation = ?", [generation]
    ).row(0)
    if n_ids[0] != n_ids[1]:
        raise SynthConfigError(
            f"{v}: generation {generation} holds {n_ids[0]} rows but {n_ids[1]} distinct "
            "candidate_id values; re-materialize verified_set for it"
        )
    log(
        f"curating {n_ids[0]} candidates against {0 if references is None else references.height} reference items "
        f"and {0 if previous is None else previous.height} rows accepted earlier"
    )
    # the frame is passed without a name kept here, so decide() frees the columns it is done with
    dec = decide(
        warehouse.sql(f"select {cols} from {v} where generation = ?", [generation]),
        settings,
        references,
        previous,
        map_slices,
    )
    del previous
    decisions = dec.table.with_row_index("_pos")

    def select(schema: dict, which: str) -> str:  # a schema's columns: decisions from d, the rest as stored
        cols = ", ".join(f'd."{c}"' if c in DECISION_SCHEMA and c != "candidate_id" else f'v."{c}"' for c in schema)
        return (
            f"select {cols} from {v} v join _decisions d using (candidate_id) "
            f"where v.generation = ? and d.drop_reason is {which} order by d._pos"
        )

    written = warehouse.write_generation_sql(
        {kept_table: select(FILTERED_SCHEMA, "null"), dropped_table: select(DROP_SCHEMA, "not null")},
        [generation],
        generation,
        {"_decisions": decisions},
    )
    dropped = decisions.filter(pl.col("drop_reason").is_not_null())
    reasons = {str(k): int(c) for k, c in dropped.group_by("drop_reason").len().sort("drop_reason").iter_rows()}
    kept = decisions.filter(pl.col("drop_reason").is_null())
    return StoredCuration(
        written[kept_table],
        written[dropped_table],
        dec.coverage,
        dec.stats,
        reasons,
        int(kept["cluster_id"].drop_nulls().n_unique()),
    )
