"""The generation stages: raw candidates -> verified -> filtered (+ drop log) -> mixed.

Each asset is a thin shell: read config, call the Dagster-free core, return the frame (the
IO manager writes it to DuckDB by generation) with metadata the UI shows.
"""

import os
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from synth_assets.assets._common import (
    DUCKDB_POOL,
    GENERATIONAL,
    GENERATIONS,
    KINDS,
    UP_TO_THIS_GENERATION,
    counts,
    generation_of,
    generational_asset,
    markdown_preview,
    table_meta,
    user_errors,
)
from synth_assets.core.curate.curation import (
    CurationSettings,
    QualitySettings,
    curate_generation,
    decontaminate_references,
    heldout_references,
    heldout_texts_of,
    read_benchmark_file,
)
from synth_assets.core.curate.mixing import MixSettings, build_mix, human_share_of
from synth_assets.core.curate.near_duplicates import NearDupSettings
from synth_assets.core.curate.preferences import PreferencePairsSettings, check_judge_pairs
from synth_assets.core.curate.preferences import preference_pairs as build_preference_pairs
from synth_assets.core.curate.review import (
    JUDGE_UNTRUSTED,
    ReviewQueueSettings,
    apply_decisions,
    flag_rows,
    latest_decisions,
    with_status,
)
from synth_assets.core.generators.generation import CandidatePlan, attach_log, run_generation
from synth_assets.core.generators.llama_backend import packaged_token_counter
from synth_assets.core.markdown import markdown_table
from synth_assets.core.training.frontier import at_chosen_levels
from synth_assets.core.verify.ai_feedback import DEFAULT_PRINCIPLES, DEFAULT_RUBRIC, Constitution, Judge, read_text_file
from synth_assets.core.verify.canaries import CANARY_TABLE, REPORT_COLUMNS, start_canaries
from synth_assets.core.verify.custom_verifiers import build_verifiers
from synth_assets.core.verify.judge_calibration import is_trusted
from synth_assets.core.verify.verification import (
    CustomCanarySettings,
    CustomVerifierSettings,
    JudgeSettings,
    ReviseSettings,
    VerifiedSetSettings,
    revise_failures,
    scorer_says_right,
    verify_candidates,
)
from synth_assets.resources import GeneratorResource, SandboxResource, WarehouseResource


class RawCandidatesConfig(CandidatePlan, dg.Config):
    """The core's CandidatePlan: samples per task, more where none was right, temperatures, seed
    and prompt settings."""


@generational_asset(group_name="synth")
def raw_candidates(
    context: dg.AssetExecutionContext,
    config: RawCandidatesConfig,
    task_pool: pl.DataFrame,
    capability_frontier: pl.DataFrame,
    generator: GeneratorResource,
) -> dg.MaterializeResult:
    """Several samples per task from the generator; every row carries its full provenance.
    Of a family with levels, only the tasks at the levels the capability frontier chose. Each
    generation (partition) samples with seeds derived from its number, so re-running one
    reproduces it."""
    generation = generation_of(context)
    plan = config
    task_pool = at_chosen_levels(task_pool, capability_frontier)
    with user_errors():
        gen = generator.get()
        attach_log(gen, context.log.info)
        context.log.info(
            f"generation {generation}: {task_pool.height} tasks x {config.samples_per_task} samples "
            f"with {gen.name} ({gen.model})"
        )
        t0 = time.perf_counter()
        df = run_generation(
            task_pool,
            gen,
            plan,
            generation,
            log=context.log.info,
            log_every_s=plan.progress_every_s,
            is_right=scorer_says_right,
            resample=plan.resample_unsolved,
        )
    wall = time.perf_counter() - t0
    by_gen = generator_accounting(df)
    cost = df["cost_usd"].sum() if df["cost_usd"].null_count() < df.height else None
    for name, acc in by_gen.items():
        context.log.info(
            f"{name}: {acc['samples']} samples ({acc['cached']} from the response cache), "
            f"{acc['prompt_tokens']} prompt + {acc['completion_tokens']} completion tokens"
            + (f", ${acc['cost_usd']:.4f}" if acc["cost_usd"] is not None else "")
        )
    stats = (
        gen.stats()
        if callable(getattr(gen, "stats", None))
        else ({gen.model: gen.stats.as_dict()} if hasattr(gen, "stats") else {})
    )
    return dg.MaterializeResult(
        value=df,
        metadata=table_meta(
            df,
            generation=generation,
            generator=gen.name,
            model=gen.model,
            wall_seconds=round(wall, 2),
            candidates_per_minute=round(60 * df.height / max(wall, 1e-9), 1),
            completion_tokens=int(df["completion_tokens"].sum()),
            prompt_tokens=int(df["prompt_tokens"].sum()),
            cache_hits=int(df["cached"].sum()),
            cost_usd=None if cost is None else round(float(cost), 6),
            by_generator=by_gen,
            endpoint_stats=stats,
            candidates_by_family=counts(df, "family"),
        ),
    )


def generator_accounting(df: pl.DataFrame) -> dict[str, dict]:
    """Samples, cache hits, tokens and cost per generator: what this generation cost, honestly."""
    out = {}
    for (name, model), part in df.group_by("generator", "model", maintain_order=True):
        priced = part["cost_usd"].null_count() < part.height
        out[f"{name} / {model}"] = {
            "samples": part.height,
            "cached": int(part["cached"].sum()),
            "share": round(part.height / df.height, 4),
            "prompt_tokens": int(part["prompt_tokens"].sum()),
            "completion_tokens": int(part["completion_tokens"].sum()),
            "cost_usd": round(float(part["cost_usd"].sum()), 6) if priced else None,
        }
    return out


class JudgeConfig(JudgeSettings, dg.Config):
    """JudgeSettings (the core's) as the asset's run config."""


class ReviseConfig(ReviseSettings, dg.Config):
    """ReviseSettings (the core's) as the asset's run config."""


class CustomCanaryConfig(CustomCanarySettings, dg.Config):
    """CustomCanarySettings (the core's) as the asset's run config."""


class CustomVerifierConfig(CustomVerifierSettings, dg.Config):
    """CustomVerifierSettings (the core's) as the asset's run config, its canaries nested."""

    canaries: list[CustomCanaryConfig] = Field(
        default=[], description="good and bad examples run every generation; none: the verifier is unproven (WARN)"
    )


class VerifiedSetConfig(VerifiedSetSettings, dg.Config):
    """VerifiedSetSettings (the core's) with the judge, revise and custom verifiers nested as
    Dagster config classes (Dagster nests only dg.Config classes)."""

    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    revise: ReviseConfig = Field(default_factory=ReviseConfig)
    custom_verifiers: list[CustomVerifierConfig] = Field(default=[])


@generational_asset(group_name="synth")
def verified_set(
    context: dg.AssetExecutionContext,
    config: VerifiedSetConfig,
    raw_candidates: pl.DataFrame,
    sandbox: SandboxResource,
    generator: GeneratorResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Every candidate with its verdict: reasoning-gym scorers, math-verify, exact match, custom
    verifiers, an optional LLM judge, and code run against its tests in a bubblewrap sandbox.
    Optional constitutional revisions of failed candidates are verified again and added.
    First every verifier used is run on canaries (inputs whose verdict is known), stored in
    ``verifier_canaries``; the blocking check ``verifiers_proven`` reads them."""
    with user_errors():
        box = sandbox.get()
        custom = build_verifiers([c.spec() for c in config.custom_verifiers])
        # the verifiers' canaries first; the one that never ends times out beside the verification below
        proof = start_canaries(
            raw_candidates, box, config.pass_threshold, custom, config.canary_items, log=context.log.info
        )
        uses_judge = config.judge.enabled or (raw_candidates["verifier"] == "judge").any()
        gen = generator.get() if (uses_judge or config.revise.enabled) else None
        judge = (
            Judge(gen, read_text_file(config.judge.rubric_file, DEFAULT_RUBRIC, "verified_set.judge.rubric_file"))
            if uses_judge
            else None
        )
        kwargs = {
            "custom": custom,
            "judge": judge,
            "judge_threshold": config.judge.threshold,
            "judge_all": config.judge.enabled and config.judge.score_all,
        }
        df = verify_candidates(raw_candidates, box, config.pass_threshold, log=context.log.info, **kwargs)
        if config.revise.enabled and config.revise.max_revisions:
            constitution = Constitution(
                gen,
                read_text_file(
                    config.revise.principles_file, DEFAULT_PRINCIPLES, "verified_set.revise.principles_file"
                ),
                max_tokens=config.revise.max_tokens,
            )
            revised = revise_failures(
                df,
                constitution,
                box,
                config.revise.max_revisions,
                log=context.log.info,
                pass_threshold=config.pass_threshold,
                **kwargs,
            )
            context.log.info(f"revisions: {revised.height}, passing {int((revised['verdict'] == 'pass').sum())}")
            df = pl.concat([df, revised])
        canaries = proof.finish()
    if not box.enabled:
        context.log.warning("the code sandbox is OFF: model-written code ran without isolation")
    by_family = (
        df.group_by("family")
        .agg(pl.len().alias("n"), (pl.col("verdict") == "pass").mean().alias("pass_rate"))
        .sort("family")
        if df.height
        else pl.DataFrame({"family": [], "n": [], "pass_rate": []})
    )
    pass_rates = {r["family"]: round(float(r["pass_rate"]), 4) for r in by_family.iter_rows(named=True)}
    revisions = df.filter(pl.col("revision_of").is_not_null())
    context.log.info(f"verdicts {counts(df, 'verdict')}; pass rate by family {pass_rates}")
    generation = generation_of(context)
    # the canaries of this generation, in one transaction (the check verifiers_proven reads them)
    warehouse.get().write_generation(
        CANARY_TABLE, canaries.with_columns(pl.lit(generation, dtype=pl.Int64).alias("generation")), generation
    )
    return dg.MaterializeResult(
        value=df,
        metadata=table_meta(
            df,
            generation=generation,
            pass_rate=round(float((df["verdict"] == "pass").mean()), 4) if df.height else 0.0,
            verdicts=counts(df, "verdict"),
            pass_rate_by_family=pass_rates,
            verifiers=counts(df, "verifier_name"),
            revisions=revisions.height,
            revisions_passing=int((revisions["verdict"] == "pass").sum()) if revisions.height else 0,
            judged=int(df["judge_score"].is_not_null().sum()) if df.height else 0,
            sandbox="bubblewrap" if box.enabled else "OFF (unsafe)",
            canaries_wrong=canaries.filter(pl.col("ok").not_()).height,
            verifier_canaries=dg.MetadataValue.md(markdown_table(canaries, REPORT_COLUMNS, width=60)),
        ),
    )


class PreferencePairsConfig(PreferencePairsSettings, dg.Config):
    """PreferencePairsSettings (the core's) as the asset's run config."""


@generational_asset(group_name="synth")
def preference_pairs(
    context: dg.AssetExecutionContext,
    config: PreferencePairsConfig,
    verified_set: pl.DataFrame,
    judge_calibration: pl.DataFrame,
    generator: GeneratorResource,
) -> dg.MaterializeResult:
    """Chosen/rejected pairs for the same task (verified or higher-scored vs failed or lower),
    for preference training (DPO-style). A pair only the judge's scores ordered is kept when the
    judge prefers it in both orders and its calibration clears; otherwise it stays with a
    drop_reason (position_flip, judge_untrusted) and is not trained on."""
    pairs = build_preference_pairs(verified_set, config.max_pairs_per_task)
    trusted = is_trusted(judge_calibration)
    judged = pairs.filter(pl.col("basis") == "judge_score").height if pairs.height else 0
    with user_errors():
        judge = (
            Judge(generator.get(), read_text_file(None, DEFAULT_RUBRIC, "judge rubric")) if judged and trusted else None
        )
        pairs = check_judge_pairs(pairs, judge, trusted)
    return dg.MaterializeResult(
        value=pairs,
        metadata=table_meta(
            pairs,
            generation=generation_of(context),
            pairs_by_basis=counts(pairs, "basis"),
            dropped=counts(pairs.filter(pl.col("drop_reason").is_not_null()), "drop_reason"),
            tasks_with_pairs=pairs["task_id"].n_unique() if pairs.height else 0,
        ),
    )


class NearDuplicateConfig(NearDupSettings, dg.Config):
    """The core's NearDupSettings."""


class QualityFilterConfig(QualitySettings, dg.Config):
    """The core's QualitySettings."""


class FilteredSetConfig(CurationSettings, dg.Config):
    """The core's CurationSettings plus more evaluation sets to decontaminate against."""

    benchmark_files: list[str] = Field(
        default=[],
        description="more evaluation sets to decontaminate against (JSONL/Parquet/CSV with a prompt or "
        "question column); SYNTH_BENCHMARK_FILES (':'-separated) adds more",
    )
    near_duplicates: NearDuplicateConfig = Field(default_factory=NearDuplicateConfig)
    quality: QualityFilterConfig = Field(default_factory=QualityFilterConfig)

    def benchmark_paths(self) -> list[str]:
        extra = [p for p in os.environ.get("SYNTH_BENCHMARK_FILES", "").split(":") if p.strip()]
        return list(self.benchmark_files) + extra


@dg.multi_asset(
    pool=DUCKDB_POOL,
    outs={
        "filtered_set": dg.AssetOut(
            group_name="synth",
            kinds=KINDS,
            metadata=GENERATIONAL,
            description="Verified candidates that survived every filter.",
        ),
        "filter_drops": dg.AssetOut(
            group_name="synth",
            kinds=KINDS,
            metadata=GENERATIONAL,
            description="Every candidate that did not survive, with its reason code.",
        ),
    },
    partitions_def=GENERATIONS,
    # read and written in DuckDB by curate_generation, not loaded through the IO manager
    deps=["verified_set", "accepted_history"],
)
def filtered_set(
    context: dg.AssetExecutionContext,
    config: FilteredSetConfig,
    heldout_eval: pl.DataFrame,
    warehouse: WarehouseResource,
    sandbox: SandboxResource,
) -> Iterator[dg.Output]:
    """Passing candidates after quality filters, exact and near-duplicate removal (within the
    generation and against every earlier accepted row), decontamination against held-out and
    registered benchmarks, and a per-task diversity cap; the rest go to filter_drops with a reason.

    The generation's rows stay in DuckDB: the decisions read only the columns they need (of
    ``verified_set``, and of ``accepted_history``, a source that observes this asset's own table
    for the generations before this one: Dagster allows an asset to depend on its own earlier
    partitions only for time partitions), and DuckDB writes the kept and dropped rows by joining
    the stored rows with the decisions, both tables in one transaction."""
    gen = generation_of(context)
    wh = warehouse.get()
    with user_errors():
        refs = [heldout_references(heldout_eval)] + [read_benchmark_file(p) for p in config.benchmark_paths()]
        t0 = time.perf_counter()
        # with SYNTH_RAY_ADDRESS (the sandbox resource's ray_address) the per-row decontamination
        # runs on the cluster too; only the settings are read here, no sandbox is built
        cluster = None
        if sandbox.ray_address:
            from synth_assets.core.scaling.ray_fanout import RaySettings, RaySlices

            cluster = RaySlices(
                RaySettings(**sandbox.model_dump(include=set(RaySettings.model_fields))), log=context.log.info
            )
        try:
            cur = curate_generation(
                wh, gen, config, pl.concat(refs), log=context.log.info, map_slices=cluster.map if cluster else None
            )
        finally:
            if cluster:
                cluster.close()
    reasons = cur.drops_by_reason
    wiped = cur.coverage.filter(pl.col("wiped_out"))["family"].to_list()
    kept_by_family = {
        str(f): int(k)
        for f, k in cur.coverage.group_by("family").agg(pl.col("kept").sum()).sort("family").iter_rows()
        if k
    }
    context.log.info(
        f"kept {cur.kept} of {cur.kept + cur.dropped} in {time.perf_counter() - t0:.1f}s; dropped by reason {reasons}"
    )
    if wiped:
        context.log.warning(f"filtering removed every passing row of families {wiped}")

    def stored_meta(table: str, rows: int, **extra: object) -> dict:
        preview = wh.sql(f"select * from {wh.schema}.{table} where generation = ? limit 10", [gen])
        return table_meta(preview, generation=gen, **extra) | {"dagster/row_count": rows}

    yield dg.Output(
        None,
        output_name="filtered_set",
        metadata=stored_meta(
            "filtered_set",
            cur.kept,
            kept_by_family=kept_by_family,
            drops_by_reason=reasons,
            near_duplicate_clusters=cur.clusters,
            coverage=dg.MetadataValue.md(markdown_preview(cur.coverage, rows=100)),
            families_wiped_out=wiped,
            benchmark_files=config.benchmark_paths(),
            **cur.stats,
        ),
    )
    yield dg.Output(
        None, output_name="filter_drops", metadata=stored_meta("filter_drops", cur.dropped, drops_by_reason=reasons)
    )


class ReviewQueueConfig(ReviewQueueSettings, dg.Config):
    """ReviewQueueSettings (the core's) as the asset's run config."""


@generational_asset(group_name="synth")
def review_queue(
    context: dg.AssetExecutionContext,
    config: ReviewQueueConfig,
    filtered_set: pl.DataFrame,
    review_decisions: pl.DataFrame,
    synthesized_tasks: pl.DataFrame,
    judge_calibration: pl.DataFrame,
) -> dg.MaterializeResult:
    """Accepted rows flagged for a person: low judge scores, a row of each synthesized task whose
    reference answer rests on agreement alone, a spot-check sample per family, and every row
    only the judge passed while its calibration does not clear the thresholds.
    Decide with `synth review accept|reject ID...`; the next mix honours the decisions."""
    unverified = (
        set(synthesized_tasks.filter(pl.col("reference_check") == "unverified_reference")["task_id"].to_list())
        if "reference_check" in synthesized_tasks.columns
        else set()
    )
    trusted = is_trusted(judge_calibration)
    queue = flag_rows(
        filtered_set,
        config.spot_checks_per_family,
        config.judge_threshold,
        unverified,
        trusted,
        config.science_reviews_per_family,
    )
    queue = with_status(queue, latest_decisions(review_decisions))
    context.log.info(f"review queue: {queue.height} rows flagged, {counts(queue, 'status')}")
    return dg.MaterializeResult(
        value=queue,
        metadata=table_meta(
            queue,
            generation=generation_of(context),
            by_status=counts(queue, "status"),
            by_reason=counts(queue, "flag_reason"),
            how_to_review=dg.MetadataValue.md(
                "List: `synth review list`. Decide: `synth review accept <candidate_id>...` or "
                "`synth review reject <candidate_id>... --note why`. Rejected rows never enter a mix again."
            ),
        ),
    )


class MixConfig(MixSettings, dg.Config):
    """The core's MixSettings: floor, split, windows and weights, review policy."""


@generational_asset(
    group_name="synth",
    ins={
        "filtered_set": dg.AssetIn(partition_mapping=UP_TO_THIS_GENERATION),
        "review_queue": dg.AssetIn(partition_mapping=UP_TO_THIS_GENERATION),
    },
)
def mixed_training_set(
    context: dg.AssetExecutionContext,
    config: MixConfig,
    filtered_set: pl.DataFrame,
    review_queue: pl.DataFrame,
    review_decisions: pl.DataFrame,
    human_reference: pl.DataFrame,
    heldout_eval: pl.DataFrame,
) -> dg.MaterializeResult:
    """Synthetic rows of every generation so far plus human rows, in chat format, split by task
    into train/validation, with a human share never under the floor (training_export publishes it)."""
    generation = generation_of(context)
    decisions = latest_decisions(review_decisions)
    untrusted = review_queue.filter(pl.col("flag_reason") == JUDGE_UNTRUSTED)["candidate_id"].to_list()
    accepted, n_rejected, n_held = apply_decisions(
        filtered_set,
        decisions,
        set(review_queue["candidate_id"].to_list()),
        config.review_policy == "require_acceptance",
        must_accept=set(untrusted),
    )
    if n_rejected or n_held:
        context.log.info(f"review: left out {n_rejected} rejected rows, held back {n_held} pending rows")
    human, leaked = decontaminate_references(
        human_reference, heldout_texts_of(heldout_eval), config.decontamination_ngram
    )
    if leaked:
        context.log.warning(f"left out {len(leaked)} human rows that overlap held-out items: {leaked[:10]}")
    with user_errors():
        # the floor counts response tokens with the packaged model's tokenizer (vocabulary only)
        counter = packaged_token_counter() if config.floor_by == "tokens" else None
        mix, stats = build_mix(accepted, human, generation, config, counter)
    # the policy the mix was built under travels with it: its checks and the export read it here
    share, _unit = human_share_of(mix)
    mix = mix.with_columns(
        pl.lit(config.human_floor, dtype=pl.Float64).alias("human_floor"),
        pl.lit(share, dtype=pl.Float64).alias("human_share"),  # in the floor's unit (its GX check reads it)
        pl.lit(config.decontamination_ngram, dtype=pl.Int64).alias("decontamination_ngram"),
    )
    context.log.info(f"mix of generation {generation}: {stats}")
    return dg.MaterializeResult(
        value=mix,
        metadata=table_meta(
            mix,
            generation=generation,
            **stats,
            human_rows_left_out_contaminated=len(leaked),
            rejected_by_review=n_rejected,
            held_for_review=n_held,
            human_rows_left_out=leaked[:50],
            rows_by_origin_generation={
                str(k): v for k, v in counts(mix.filter(pl.col("source") == "synthetic"), "origin_generation").items()
            },
        ),
    )
