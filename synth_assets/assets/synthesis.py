"""synthesized_tasks: new tasks, harder rewrites, paraphrases and edge cases grown from seed
tasks, each admitted to the task pool only after its gates (see core/synthesis/task_synthesis.py)."""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from synth_assets.assets._common import DUCKDB_POOL, KINDS, SNAPSHOT, counts, markdown_preview, table_meta, user_errors
from synth_assets.core.curate.curation import heldout_texts_of
from synth_assets.core.generators.generation import PromptSettings
from synth_assets.core.synthesis.task_synthesis import PROPOSAL_SCHEMA, SynthesisSettings, synthesize_tasks
from synth_assets.core.tasks.sources import TASK_SCHEMA, conform, few_shot_examples, reasoning_gym_tasks, user_tasks
from synth_assets.resources import GeneratorResource, SandboxResource

DEFAULT_SEED_FAMILIES = ["letter_counting", "gcd", "basic_arithmetic", "chain_sum", "word_sorting", "leg_counting"]


class SynthesizedTasksConfig(SynthesisSettings, dg.Config):
    """The core's SynthesisSettings (proposals, gates) plus where the seed tasks come from."""

    seed_families: list[str] = Field(default=DEFAULT_SEED_FAMILIES, description="reasoning-gym families used as seeds")
    seeds_per_family: int = Field(default=20, ge=0)
    seed_task_files: list[str] = Field(default=[], description="your own seed tasks (the task-file format)")
    use_human_reference: bool = Field(
        default=True, description="HumanEval functions of human_reference seed code tasks"
    )


def _thin_families(history: pl.DataFrame, families: list[str]) -> list[str]:
    """The third of seed families with the fewest accepted rows in the newest stored generation."""
    if history.height == 0:
        return []
    newest = history.filter(pl.col("generation") == history["generation"].max())
    kept = dict(newest.group_by("family").len().iter_rows())
    ranked = sorted(families, key=lambda f: (kept.get(f, 0), f))
    return ranked[: max(1, len(ranked) // 3)]


@dg.multi_asset(
    pool=DUCKDB_POOL,
    outs={
        "synthesized_tasks": dg.AssetOut(
            group_name="sources",
            kinds=KINDS,
            metadata=SNAPSHOT,
            description="Synthesized tasks that passed every gate, accumulated across runs.",
        ),
        "task_proposals": dg.AssetOut(
            group_name="sources",
            kinds=KINDS,
            metadata=SNAPSHOT,
            description="Every proposed task, accepted or not, with its seed, method and gates.",
        ),
    },
)
def synthesized_tasks(
    context: dg.AssetExecutionContext,
    config: SynthesizedTasksConfig,
    human_reference: pl.DataFrame,
    heldout_eval: pl.DataFrame,
    accepted_history: pl.DataFrame,
    proposal_history: pl.DataFrame,
    generator: GeneratorResource,
    sandbox: SandboxResource,
) -> Iterator[dg.Output]:
    """Self-Instruct / Evol-Instruct style growth of the task pool from seed tasks; a task is
    kept only when self-consistency (answers) or tests agreeing with sampled solutions (code),
    novelty and decontamination all pass."""
    previous = conform(proposal_history if proposal_history.height else [], PROPOSAL_SCHEMA)
    with user_errors():
        config.validate()
        settings = config.model_copy(update={"seed": config.seed + previous.height})  # new proposals every run
        seeds = [reasoning_gym_tasks(config.seed_families, config.seeds_per_family, 42)]
        seeds += [user_tasks(p) for p in config.seed_task_files]
        if config.use_human_reference:
            code = human_reference.filter(pl.col("domain") == "code")
            seeds.append(
                conform(
                    code.select(
                        pl.col("ref_id").alias("task_id"), "source", "family", "domain", "prompt", "license"
                    ).with_columns(verifier=pl.lit("python_tests")),
                    TASK_SCHEMA,
                )
            )
        seed_df = pl.concat(seeds)
        new = conform([], PROPOSAL_SCHEMA)
        thin = _thin_families(accepted_history, config.seed_families)
        if config.enabled and config.proposals_per_method:
            existing = pl.concat(
                [seed_df.select("prompt"), previous.filter(pl.col("status") == "accepted").select("prompt")]
            )
            context.log.info(f"synthesizing from {seed_df.height} seeds; thin families {thin}")
            new = synthesize_tasks(
                seed_df,
                existing,
                heldout_texts_of(heldout_eval),
                generator.get(),
                sandbox.get(),
                settings,
                thin_families=thin,
                few_shot=lambda fam: (
                    few_shot_examples(fam, PromptSettings().few_shot, PromptSettings().few_shot_seed)
                    if fam in config.seed_families
                    else []
                ),
                log=context.log.info,
            )
    proposals = pl.concat([previous, new]).unique("task_id", keep="first", maintain_order=True)
    accepted = proposals.filter(pl.col("status") == "accepted")
    funnel = {
        m: {
            "proposed": int((new["method"] == m).sum()),
            "accepted": int(((new["method"] == m) & (new["status"] == "accepted")).sum()),
        }
        for m in config.methods
    }
    context.log.info(
        f"proposals this run: {new.height}, accepted {int((new['status'] == 'accepted').sum())}; "
        f"rejected by {counts(new.filter(pl.col('status') == 'rejected'), 'reject_reason')}"
    )
    yield dg.Output(
        accepted,
        output_name="synthesized_tasks",
        metadata=table_meta(
            accepted,
            accepted_this_run=int((new["status"] == "accepted").sum()),
            by_method=counts(accepted, "method"),
            by_family=counts(accepted, "family"),
            thin_families=thin,
        ),
    )
    yield dg.Output(
        proposals,
        output_name="task_proposals",
        metadata=table_meta(
            proposals,
            proposed_this_run=new.height,
            funnel_this_run=funnel,
            rejected_by_reason_this_run=counts(new.filter(pl.col("status") == "rejected"), "reject_reason"),
            newest=dg.MetadataValue.md(
                markdown_preview(
                    new.select("method", "status", "reject_reason", "prompt", "answer", "agreement"), rows=20
                )
            ),
        ),
    )
