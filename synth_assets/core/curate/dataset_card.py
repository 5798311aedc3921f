"""The dataset card written beside an export, in the Hugging Face dataset-card convention
(README.md with YAML front matter): what a downstream user needs to decide whether they may
and should train on the data: sources and their licences, the models and their terms, how
rows were verified and filtered, and how much of it is human."""

from __future__ import annotations

import polars as pl

from synth_assets.core.curate.mixing import human_share_of
from synth_assets.core.markdown import markdown_table

_HF_LICENSE = {"MIT": "mit", "Apache-2.0": "apache-2.0"}


def _table(df: pl.DataFrame, cols: list[str]) -> str:
    return markdown_table(df, cols, empty="_none_") + "\n"


def _licence_ids(licences: list[str]) -> list[str]:
    ids = []
    for lic in licences:
        key = (lic or "").split(" ")[0]
        ids.append(_HF_LICENSE.get(key, "other"))
    return sorted(set(ids))


def size_category(n: int) -> str:
    """The Hugging Face Hub's size bucket for n rows."""
    for bound, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
    ):
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "1B<n<10B" if n < 10**10 else "10B<n<100B" if n < 10**11 else "100B<n<1T"


def dataset_card(
    mix: pl.DataFrame,
    generation: int,
    drops_by_reason: dict[str, int],
    human_floor: float | None,
    ngram: int = 13,
    name: str = "synth-platform mix",
) -> str:
    synth = mix.filter(pl.col("source") == "synthetic")
    human = mix.filter(pl.col("source") == "human")
    share, unit = human_share_of(mix)
    licences = mix.group_by("task_source", "license").len().sort("task_source")
    gens = synth.group_by("generator", "model", "model_terms").len().sort("len", descending=True)
    verifiers = synth.group_by("verifier").len().sort("len", descending=True)
    splits = mix.group_by("split", "source").len().sort("split", "source")
    per_gen = synth.group_by("origin_generation").len().sort("origin_generation")
    drops = pl.DataFrame(
        {"reason": list(drops_by_reason), "rows": list(drops_by_reason.values())},
        schema={"reason": pl.String, "rows": pl.Int64},
    ).sort("rows", descending=True)
    floor_text = f"floor {human_floor:.0%}" if human_floor is not None else "floor as configured for the run"
    ids = _licence_ids(licences["license"].to_list())
    lic_yaml = ids[0] if len(ids) == 1 else "other"
    front = "\n".join(
        [
            "---",
            f"license: {lic_yaml}",
            *([f'license_details: "mixed: {", ".join(ids)}; see Licences below"'] if len(ids) > 1 else []),
            "language:\n- en",
            "task_categories:\n- text-generation",
            "tags:\n- synthetic\n- verified\n- chat",
            "size_categories:\n- " + size_category(mix.height),
            "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: train.parquet\n"
            "  - split: validation\n    path: validation.parquet",
            "---",
        ]
    )
    return f"""{front}

# {name}: generation {generation}

Verified synthetic examples mixed with human-written ones, in chat format (`messages`), one
JSON object per line in `train.jsonl` / `validation.jsonl` and the same rows in Parquet.
Each row carries its provenance: `source` (synthetic or human), `origin_generation`,
`task_id`, `family`, `domain`, `license` (of the task's source), `generator`, `model`,
`model_terms`, `verifier` and `candidate_id`. Splits are by task: no task is in both.

## Composition

- rows: {mix.height} ({synth.height} synthetic, {human.height} human)
- human share: **{share:.1%}** of {unit} ({floor_text}: the mix is never synthetic alone)
- synthetic rows accumulate across generations; by origin generation:

{_table(per_gen, ["origin_generation", "len"])}
{_table(splits, ["split", "source", "len"])}
## Licences

Every row keeps the licence of its source; use of the data must honour all of them.

{_table(licences.rename({"len": "rows"}), ["task_source", "license", "rows"])}
## Generators

Synthetic completions were written by these models; their terms of use apply to the outputs.

{_table(gens.rename({"len": "rows"}), ["generator", "model", "model_terms", "rows"])}
## Verification

Every synthetic row passed an automatic check before it was kept (code run against its tests in
a sandbox, answers checked by the task's scorer or math-verify, or a judge).

{_table(verifiers.rename({"len": "rows"}), ["verifier", "rows"])}
## Filters

Candidates removed in the generations of this mix, by reason (verification failures first):

{_table(drops, ["reason", "rows"])}
Decontamination: rows sharing a {ngram}-word sequence with, or near-duplicating, a held-out
evaluation item or a registered benchmark were removed; human rows overlapping held-out items
were left out.
"""
