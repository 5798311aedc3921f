"""The structural checks of the curated stages, beside their assets (``pipeline.py``): every
verifier proven by its canaries, every candidate accounted for, no family wiped out, the human
floor, no held-out contamination, train and validation disjoint. Critical ones block downstream
assets.

Each check recomputes its fact from the stored data rather than trusting the producing
asset's own bookkeeping, so a bug in a stage shows up here.
"""

import dagster as dg
import polars as pl

from synth_assets.assets._common import check_generation, stored_frame
from synth_assets.core.curate.curation import DECONTAMINATION_NGRAM, heldout_ngrams, heldout_texts_of, word_ngrams
from synth_assets.core.curate.mixing import human_share_of
from synth_assets.core.markdown import markdown_table
from synth_assets.core.verify.canaries import CANARY_SCHEMA, CANARY_TABLE, REPORT_COLUMNS, assess
from synth_assets.core.verify.judge_calibration import is_trusted
from synth_assets.core.warehouse import Warehouse


@dg.asset_check(
    asset="verified_set",
    blocking=True,
    required_resource_keys={"warehouse"},
    description="Every verifier this generation used gave the known verdict on each of its canaries (true and "
    "wrong answers, canonical solutions, mutants and hostile programs, declared examples), so its verdicts can be "
    "trusted. A wrong canary fails (ERROR: nothing downstream is built); a verifier without canaries warns.",
)
def verifiers_proven(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    wh = context.resources.warehouse.get()
    g = check_generation(context)
    canaries = wh.read(CANARY_TABLE, generation=g) if wh.table_exists(CANARY_TABLE) else pl.DataFrame()
    verdicts = (
        wh.sql(
            f"select distinct verifier, verifier_name, verifier_version from {wh.schema}.verified_set "
            "where generation = ?",
            [g],
        )
        if wh.table_exists("verified_set")
        else pl.DataFrame(schema=dict.fromkeys(("verifier", "verifier_name", "verifier_version"), pl.String))
    )
    a = assess(canaries if canaries.height else pl.DataFrame(schema=CANARY_SCHEMA), verdicts)
    metadata: dict = {
        "generation": g,
        "canaries": a.canaries.height,
        "canaries_wrong": a.wrong.height,
        "report": dg.MetadataValue.md(markdown_table(a.canaries, REPORT_COLUMNS, width=60, empty="_no canaries_")),
        "proven": dg.MetadataValue.json(a.proven),
        "unproven": dg.MetadataValue.json(a.unproven),
    }
    if a.judges:
        metadata["judge"] = dg.MetadataValue.md(_judge_line(wh, g, a.judges))
    if a.wrong.height:
        metadata["wrong_canaries"] = dg.MetadataValue.md(
            markdown_table(a.wrong, [*REPORT_COLUMNS[:-1], "detail"], width=80)
        )
        names = ", ".join(sorted(set(a.wrong["verifier"].to_list())))
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{a.wrong.height} of {a.canaries.height} canaries got the wrong verdict ({names}): nothing "
            "downstream is built on this generation's verdicts. See wrong_canaries.",
            metadata=metadata,
        )
    if a.unproven:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="unproven: " + "; ".join(a.unproven),
            metadata=metadata,
        )
    return dg.AssetCheckResult(
        passed=True,
        description=f"every verifier proven: {a.canaries.height} canaries right ({', '.join(a.proven) or 'none used'})",
        metadata=metadata,
    )


def _judge_line(wh: Warehouse, generation: int, judges: list[str]) -> str:
    """The judge's canary is its calibration (judge_calibration, check judge_trusted)."""
    who = ", ".join(judges)
    stored = (
        wh.read("judge_calibration", generation=generation) if wh.table_exists("judge_calibration") else pl.DataFrame()
    )
    if stored.height == 0:
        return (
            f"the judge ({who}) is proven by its calibration: `judge_calibration` measures it after this check "
            "(check `judge_trusted`); until it clears, rows only the judge passed wait in the review queue"
        )
    state = "**trusted**" if is_trusted(stored) else "**not trusted** (rows only it passed wait in the review queue)"
    return f"the judge ({who}): its calibration of generation {generation} says {state}; see `judge_calibration`"


@dg.asset_check(
    asset="filtered_set",
    additional_deps=["filter_drops", "raw_candidates", "verified_set"],
    blocking=True,
    required_resource_keys={"warehouse"},
    description="Every raw candidate of this generation (and every revision) is verified once, then either kept "
    "or dropped with a reason.",
)
def candidates_accounted_for(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    wh = context.resources.warehouse.get()
    g = check_generation(context)
    n = {
        t: int(wh.sql(f"select count(*) as n from {wh.schema}.{t} where generation = ?", [g])["n"][0])
        for t in ("raw_candidates", "verified_set", "filtered_set", "filter_drops")
    }
    missing_reason = int(
        wh.sql(
            f"select count(*) as n from {wh.schema}.filter_drops where generation = ? "
            "and (drop_reason is null or drop_reason = '')",
            [g],
        )["n"][0]
    )
    stray = wh.sql(
        f"""select count(*) as n from (
              select candidate_id from {wh.schema}.verified_set where generation = $1
              except
              (select candidate_id from {wh.schema}.filtered_set where generation = $1
               union all select candidate_id from {wh.schema}.filter_drops where generation = $1))""",
        [g],
    )["n"][0]
    n["revisions"] = int(
        wh.sql(
            f"select count(*) as n from {wh.schema}.verified_set where generation = ? and revision_of is not null", [g]
        )["n"][0]
    )
    ok = (
        n["raw_candidates"] + n["revisions"] == n["verified_set"] == n["filtered_set"] + n["filter_drops"]
        and missing_reason == 0
        and stray == 0
    )
    return dg.AssetCheckResult(
        passed=bool(ok),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"generation": g, **n, "drops_without_reason": missing_reason, "unaccounted_candidates": int(stray)},
    )


@dg.asset_check(
    asset="filtered_set",
    additional_deps=["verified_set"],
    required_resource_keys={"warehouse"},
    description="Coverage guard: no task family or domain with passing candidates lost all of them to filtering.",
)
def no_family_wiped_out(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    wh = context.resources.warehouse.get()
    g = check_generation(context)
    cov = wh.sql(
        f"""with v as (select family, domain, count(*) filter (where verdict = 'pass') as passing
                       from {wh.schema}.verified_set where generation = $1 group by all),
                 k as (select family, domain, count(*) as kept from {wh.schema}.filtered_set
                       where generation = $1 group by all)
            select v.family, v.domain, v.passing, coalesce(k.kept, 0) as kept
            from v left join k on v.family is not distinct from k.family and v.domain is not distinct from k.domain
            order by 1""",
        [g],
    )
    wiped = cov.filter((pl.col("passing") > 0) & (pl.col("kept") == 0))
    domains = cov.group_by("domain").agg(pl.col("passing").sum(), pl.col("kept").sum())
    wiped_domains = domains.filter((pl.col("passing") > 0) & (pl.col("kept") == 0))["domain"].to_list()
    return dg.AssetCheckResult(
        passed=wiped.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "generation": g,
            "families_wiped_out": dg.MetadataValue.json(wiped["family"].to_list()),
            "domains_wiped_out": dg.MetadataValue.json(wiped_domains),
            "coverage": dg.MetadataValue.md(markdown_table(cov, ["family", "domain", "passing", "kept"])),
            "how_to_fix": "see filter_drops for the family's drop reasons; loosen that filter or add tasks",
        },
    )


@dg.asset_check(
    asset="mixed_training_set",
    blocking=True,
    required_resource_keys={"warehouse"},
    description="The human share of the mix is at or above the floor it was built under.",
)
def human_share_at_or_above_floor(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    mixed_training_set = stored_frame(context, "mixed_training_set")
    if mixed_training_set.height == 0:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": 0, "why": "the mix of this generation is empty"},
        )
    floor = float(mixed_training_set["human_floor"][0])
    total = mixed_training_set.height
    human = int((mixed_training_set["source"] == "human").sum())
    share, unit = human_share_of(mixed_training_set)
    return dg.AssetCheckResult(
        passed=share + 1e-9 >= floor,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "human_share": round(share, 4),
            "share_of": unit,
            "human_floor": floor,
            "human_rows": human,
            "rows": total,
        },
    )


@dg.asset_check(
    asset="mixed_training_set",
    additional_deps=["heldout_eval"],
    blocking=True,
    required_resource_keys={"warehouse"},
    description="No mixed row (synthetic or human) shares a word sequence, as long as the mix's decontamination "
    f"n-gram (default {DECONTAMINATION_NGRAM}), with a held-out item.",
)
def no_heldout_contamination(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    mixed_training_set = stored_frame(context, "mixed_training_set")
    heldout_eval = stored_frame(context, "heldout_eval", snapshot=True)
    n = int(mixed_training_set["decontamination_ngram"][0]) if mixed_training_set.height else DECONTAMINATION_NGRAM
    banned = heldout_ngrams(heldout_texts_of(heldout_eval), n) if heldout_eval.height else set()
    held_ids = set(heldout_eval["ref_id"].to_list()) if heldout_eval.height else set()
    bad = []
    for r in mixed_training_set.select("row_id", "task_id", "prompt", "response").iter_rows(named=True):
        if r["task_id"] in held_ids or word_ngrams(f"{r['prompt']}\n{r['response']}", n) & banned:
            bad.append(r["row_id"])
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"contaminated_rows": len(bad), "ngram": n, "sample_row_ids": dg.MetadataValue.json(bad[:20])},
    )


@dg.asset_check(
    asset="mixed_training_set",
    blocking=True,
    required_resource_keys={"warehouse"},
    description="No task has rows in both train and validation.",
)
def train_validation_disjoint(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    mixed_training_set = stored_frame(context, "mixed_training_set")
    both = (
        mixed_training_set.group_by("task_id").agg(pl.col("split").n_unique().alias("k")).filter(pl.col("k") > 1)
        if mixed_training_set.height
        else pl.DataFrame({"task_id": []})
    )
    return dg.AssetCheckResult(
        passed=both.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "tasks_in_both_splits": both.height,
            "sample": dg.MetadataValue.json(both["task_id"].head(20).to_list()),
        },
    )


PIPELINE_CHECKS = [
    verifiers_proven,
    candidates_accounted_for,
    no_family_wiped_out,
    human_share_at_or_above_floor,
    no_heldout_contamination,
    train_validation_disjoint,
]
