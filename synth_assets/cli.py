"""Headless entry point: everything a nightly job or a terminal user needs, without the UI.

synth run [--select SEL] [-c run.yaml] [--profile smoke] [--generation N | --new]
                                         complete the newest generation if a killed run left it
                                         unfinished, else materialize a new one; or re-run N
synth summary                            tables, counts, pass rates, exports, drift flags of the newest generation;
                                         the served model's gain over the base and its parent; distinct yield
synth drift [--generation N]             the drift report as a markdown table
synth export --out DIR [--generation N]  write a generation's mix as chat-format JSONL
synth review list [--all]                the review queue (pending rows unless --all)
synth review accept|reject ID... [--note TEXT]
synth models [list|log]                  the model registry (lineage, scores, status) / the serving log
synth models show ID                     one model: lineage, training, scores, status and reason; its model card
synth models approve|reject ID [--note]  decide a candidate awaiting approval
synth models serve ID [--note]           put a promoted model (or 'base') in service: pin or roll back
synth models export ID DIR               the adapter (PEFT and GGUF), its model card and its mix's dataset card
"""

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.quality.drift import report_markdown
from synth_assets.core.warehouse import Warehouse, default_duckdb_path

if TYPE_CHECKING:
    from synth_assets.core.training.registry import Registry

TABLES = [
    "task_pool",
    "human_reference",
    "heldout_eval",
    "raw_candidates",
    "verified_set",
    "judge_calibration",
    "preference_pairs",
    "filtered_set",
    "filter_drops",
    "mixed_training_set",
    "generator_eval",
    "drift_report",
    "alerts",
]


def summary(wh: Warehouse) -> str:
    g = wh.current_generation()
    s = wh.schema
    out = [
        f"DuckDB warehouse: {wh.path}",
        f"newest generation: {g}",
        "",
        "table                 rows (this generation / all)",
    ]
    for t in TABLES:
        if not wh.table_exists(t):
            out.append(f"{t:<22}missing")
            continue
        cols = wh.sql(f"select * from {s}.{t} limit 0").columns
        total = wh.sql(f"select count(*) n from {s}.{t}")["n"][0]
        if "generation" in cols and t not in ("human_reference", "heldout_eval", "alerts"):
            cur = wh.sql(f"select count(*) n from {s}.{t} where generation = ?", [g])["n"][0]
            out.append(f"{t:<22}{cur} / {total}")
        else:
            out.append(f"{t:<22}{total}")
    if wh.table_exists("raw_candidates") and "cost_usd" in wh.sql(f"select * from {s}.raw_candidates limit 0").columns:
        acc = wh.sql(
            f"select generator, model, count(*) n, sum(cached::int) cached, sum(prompt_tokens) pt, "
            f"sum(completion_tokens) ct, sum(cost_usd) cost from {s}.raw_candidates where generation = ? "
            "group by 1, 2 order by 1, 2",
            [g],
        )
        out += ["", "generators (this generation): samples, from the response cache, tokens, cost"]
        out += [
            f"  {r['generator']} / {r['model']}: {r['n']} samples, {r['cached'] or 0} cached, "
            f"{r['pt']} prompt + {r['ct']} completion tokens, "
            + (f"${r['cost']:.4f}" if r["cost"] is not None else "unpriced")
            for r in acc.iter_rows(named=True)
        ]
    if wh.table_exists("verified_set"):
        rates = wh.sql(
            f"select family, count(*) n, round(avg((verdict = 'pass')::int), 3) pass_rate "
            f"from {s}.verified_set where generation = ? group by family order by family",
            [g],
        )
        out += ["", "pass rate by family (this generation):"]
        out += [f"  {r['family']:<20}{r['pass_rate']:.3f}  ({r['n']} candidates)" for r in rates.iter_rows(named=True)]
    out += frontier_lines(wh, g)
    if wh.table_exists("filter_drops"):
        reasons = wh.sql(
            f"select drop_reason, count(*) n from {s}.filter_drops where generation = ? group by 1 order by 2 desc", [g]
        )
        out += ["", "drop reasons (this generation): " + json.dumps(dict(reasons.iter_rows()))]
    if wh.table_exists("mixed_training_set"):
        mix = wh.sql(
            f"select source, split, count(*) n from {s}.mixed_training_set where generation = ? "
            "group by 1, 2 order by 1, 2",
            [g],
        )
        out += ["", "training set (this generation): " + ", ".join(f"{a}/{b}: {n}" for a, b, n in mix.iter_rows())]
    if wh.table_exists("model_registry"):
        from synth_assets.core.training.registry import Registry

        reg = Registry(wh)
        row = reg.models().filter(pl.col("mix_generation") == g)
        trained = (
            (
                f"; generation {g}'s candidate {row['model_id'][-1]}: {row['status'][-1]}"
                + (f" ({row['reason'][-1][:120]})" if row["status"][-1] == "rejected" else "")
            )
            if row.height
            else ""
        )
        out += ["", f"model in service: {reg.serving()}{trained}  (synth models)"]
        out += improvement_lines(reg)
    else:
        out += ["", NO_PROMOTION]
    out += yield_lines(wh, g)
    paths = wh.export_paths(g)
    out += [
        f"exported to: {paths['train']} and {paths['validation']}"
        if paths
        else "not exported: training_export did not run for this generation (the mix failed or its blocking "
        "checks did, or it was not selected)"
    ]
    if wh.table_exists("drift_report"):
        flags = wh.sql(
            f"select corpus, metric, status, note from {s}.drift_report where generation = ? "
            "and (metric in ('DIVERSITY_LOSS', 'FIDELITY_GAP', 'heldout_pass_rate') "
            "or (metric = 'ANSWER_COLLAPSE' and status in ('warn', 'fail')))",
            [g],
        )
        out += [""] + [
            f"{r['metric']} ({r['corpus']}): {r['status']}  {r['note']}" for r in flags.iter_rows(named=True)
        ]
        out += [
            "",
            f"drift report (generation {g}; query: select * from {s}.drift_report where generation = {g}):",
            drift(wh),
        ]
    return "\n".join(out)


def frontier_lines(wh: Warehouse, g: int) -> list[str]:
    """Where this generation worked on each family's ladder: per family@level the model in
    service's greedy rate, pass@k and guesser's pass@k with the status, ``*`` on the levels it
    generated at (capability_frontier; nothing when the table holds no rows for ``g``)."""
    if not wh.table_exists("capability_frontier"):
        return []
    df = wh.sql(f"select * from {wh.schema}.capability_frontier where generation = ? order by base_family, level", [g])
    if df.height == 0:
        return []
    out = ["", f"capability frontier of {df['model_id'][0]} (this generation; * = generated at):"]
    for r in df.iter_rows(named=True):
        mark = "*" if r["chosen"] else " "
        if r["status"] == "configured":
            out.append(f"  {mark} {r['family']:<20}as written (frontier steering off)")
            continue
        out.append(
            f"  {mark} {r['family']:<20}greedy {r['greedy_rate']:.2f}, pass@k {r['pass_at_k']:.2f} "
            f"(guesser {r['guess_pass_at_k']:.2f}): {r['status']}"
        )
    return out


NO_PROMOTION = "improvement: no model promoted yet; the base model serves"
VARIANT_ORDER = {"heldout": 0, "harder": 1, "rephrased": 2}
MIN_SAMPLING_S = 1.0  # a shorter sampling span was no model's work: no per-CPU-minute figure


def _scores(raw: str | None) -> dict[str, dict]:
    return json.loads(raw) if raw else {}


def _lineage(models: dict[str, dict], model_id: str) -> list[str]:
    """The model, its parent, ... up to the root of its lineage (the base model)."""
    chain = [model_id]
    while (parent := models.get(chain[-1], {}).get("parent_id")) and parent in models and parent not in chain:
        chain.append(parent)
    return chain


def improvement_table(then: dict[str, float | None], now: dict[str, float]) -> list[str]:
    """Per family@level and variant: pass rate then -> now and the change in points, then the
    families whose held-out pass rate did not rise (any variant's, for a family without one)."""
    from synth_assets.core.training.gate import MACRO

    def order(key: str) -> tuple:
        family, _, variant = key.rpartition("/")
        return (family == MACRO, family, VARIANT_ORDER.get(variant, 9), variant)

    keys = sorted(now, key=order)
    width = max(len(k.replace(MACRO, "macro-average")) for k in keys) + 2 if keys else 0
    lines, change = [], {}
    for key in keys:
        label = key.replace(MACRO, "macro-average")
        before, after = then.get(key), now[key]
        if before is None or after is None:
            lines.append(f"    {label:<{width}}{_rate(before)} -> {_rate(after)}  (not measured on both)")
            continue
        change[key] = 100 * (after - before)
        lines.append(f"    {label:<{width}}{before:.3f} -> {after:.3f}  {change[key]:+.1f} points")
    by_family: dict[str, dict[str, float]] = {}
    for key, points in change.items():
        family, _, variant = key.rpartition("/")
        if family != MACRO:
            by_family.setdefault(family, {})[variant] = points
    stale = [
        f"{family} ({points['heldout']:+.1f})" if "heldout" in points else f"{family} ({max(points.values()):+.1f})"
        for family, points in sorted(by_family.items())
        if points.get("heldout", max(points.values())) <= 0
    ]
    return lines + [f"    families that did not improve (held-out): {', '.join(stale) if stale else 'none'}"]


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def improvement_lines(reg: "Registry") -> list[str]:
    """By how much the model in service improved on the held-out items: against the base model
    (the root of its lineage: its rates as measured when the lineage's first model was gated) and
    against its parent (the rates the gate compared). The registry's ``scores`` hold, per
    family/variant, the model's ``rate`` and the ``parent_rate`` it was gated against."""
    from synth_assets.core.training.registry import BASE_ID

    models = {r["model_id"]: r for r in reg.models().iter_rows(named=True)}
    serving = reg.serving()
    if not any(r["status"] == "promoted" and m != BASE_ID for m, r in models.items()):
        return [NO_PROMOTION]
    chain = _lineage(models, serving)
    if len(chain) < 2:
        return [f"improvement: {serving} serves, the root of its lineage; nothing to compare (synth models log)"]
    scores = _scores(models[serving]["scores"])
    if not scores:
        return [f"improvement: {serving} has no held-out scores in the registry; nothing to compare"]
    now = {k: v.get("rate") for k, v in scores.items()}
    root, first = chain[-1], chain[-2]
    parent = chain[1]
    out = [f"improvement of {serving}, the model in service (held-out pass rate then -> now, change in points):"]
    first_scores = _scores(models[first]["scores"])
    base_then = {k: v.get("parent_rate") for k, v in first_scores.items()}
    if parent == root:
        out.append(f"  against the base model {root}, its parent (on the items {serving} was gated on):")
        return out + improvement_table(base_then, now)
    out.append(f"  against the base model {root} (its rates when {first}, the lineage's first model, was gated):")
    out += improvement_table(base_then, now)
    out.append(f"  against its parent {parent} (on the items {serving} was gated on):")
    return out + improvement_table({k: v.get("parent_rate") for k, v in scores.items()}, now)


def yield_lines(wh: Warehouse, g: int) -> list[str]:
    """Distinct verified rows and distinct solved tasks per CPU-minute of the newest generation,
    guessers' expected passes subtracted (core/quality/yield_metrics.py), from raw_candidates and
    verified_set; CPU time is the sampling's wall span x this machine's cores."""
    import os

    from synth_assets.core.quality.yield_metrics import OVERALL, distinct_yield, generation_wall_seconds

    if not (wh.table_exists("raw_candidates") and wh.table_exists("verified_set")):
        return []
    s = wh.schema
    raw = wh.sql(f"select created_at, latency_s from {s}.raw_candidates where generation = ?", [g])
    verified = wh.sql(
        f"select task_id, family, answer, completion, extracted_answer, verifier, verdict "
        f"from {s}.verified_set where generation = ?",
        [g],
    )
    if raw.height == 0 or verified.height == 0:
        return []
    cores = os.cpu_count() or 1
    wall = generation_wall_seconds(raw)
    y = distinct_yield(verified, wall * cores)
    total = y.filter(pl.col("family") == OVERALL).row(0, named=True)
    measured = wall >= MIN_SAMPLING_S

    def per_min(value: float) -> str:
        return f"{value:.2f}" if measured else "n/a"

    out = [
        "",
        f"distinct verified rows per CPU-minute (generation {g}, guessers' expected passes subtracted): "
        f"{per_min(total['distinct_rows_per_cpu_min'])}; distinct solved tasks per CPU-minute: "
        f"{per_min(total['solved_tasks_per_cpu_min'])} (every passing row, repeats included: "
        f"{per_min(total['passing_rows_per_cpu_min'])})",
        f"  CPU: {total['cpu_minutes']:.2f} min = sampling wall span {wall:.0f} s x {cores} cores"
        if measured
        else f"  CPU: not measured: the sampling took {wall:.2f} s (a test double or the response cache answered)",
    ]
    out += [
        f"  {r['family']:<20}{r['distinct_passing_rows']} distinct passing rows of {r['passing_rows']} passes, "
        f"{r['distinct_solved_tasks']}/{r['tasks']} tasks solved, guessers expect {r['guesser_expected_passes']:.1f}: "
        f"{per_min(r['distinct_rows_per_cpu_min'])} rows, {per_min(r['solved_tasks_per_cpu_min'])} tasks per CPU-minute"
        for r in y.filter(pl.col("family") != OVERALL).iter_rows(named=True)
    ]
    return out


def drift(wh: Warehouse, generation: int | None = None) -> str:
    g = generation or wh.current_generation()
    rep = wh.sql(f"select * from {wh.schema}.drift_report where generation = ? order by corpus", [g])
    if rep.height == 0:
        return f"no drift report for generation {g}: materialize drift_report"
    return report_markdown(rep)


def run(
    select: str,
    config_file: str | None,
    generation: int | None = None,
    traceback: bool = False,
    profile: str = "full",
    new: bool = False,
) -> int:
    """A generation through Dagster, recorded in the instance at $DAGSTER_HOME (the UI shows it):
    the newest one when a killed run left it unfinished (what it is missing), else the next one
    (``new`` skips the completion), or ``generation`` again (a re-run rewrites only its rows)."""
    import dagster as dg
    import yaml

    from synth_assets.assets._common import add_generation, step_failures
    from synth_assets.definitions import defs, generator_not_ready
    from synth_assets.profiles import PROFILES, merge
    from synth_assets.recovery import newest_generation, process_tags, settle_runs
    from synth_assets.run_config import check as check_run_config
    from synth_assets.run_config import disagreements

    try:
        run_config = yaml.safe_load(Path(config_file).read_text()) if config_file else {}
    except (OSError, yaml.YAMLError) as exc:
        raise SynthConfigError(f"run config {config_file}: {exc}") from None
    user_config = run_config or {}
    graph = defs.resolve_asset_graph()
    try:  # a,b,c (as `dagster asset materialize --select` takes it) is the union of its parts
        with warnings.catch_warnings():  # "*" resolves through a beta parameter; nothing for the user to act on
            warnings.simplefilter("ignore", dg.BetaWarning)
            keys = {
                k
                for part in select.split(",")
                if part.strip()
                for k in dg.AssetSelection.from_string(part.strip()).resolve(graph)
                if graph.get(k).is_materializable
            }
    except Exception as exc:  # noqa: BLE001 - Dagster's own message names the problem
        raise SynthConfigError(f"--select {select!r}: {exc}") from None
    # the whole config, checked before a generation is added or any step runs: the user's file
    # against every selected asset's settings, then the merged config by Dagster
    source = config_file or "run config"
    wrong = check_run_config(user_config, source, graph, keys)
    if wrong:
        raise SynthConfigError("\n".join(wrong))
    run_config = merge(PROFILES[profile], user_config)
    if profile != "full":  # the profile's settings with the user's over them must fit together too
        wrong = disagreements(run_config, f"{source} with --profile {profile}", graph, keys)
        if wrong:
            raise SynthConfigError("\n".join(wrong))
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)
    partitioned = any(graph.get(k).partitions_def is not None for k in keys)
    console = run_config.setdefault("loggers", {}).setdefault("console", {}).setdefault("config", {})
    console["traceback"] = traceback
    try:
        dg.validate_run_config(job, run_config)
    except dg.DagsterInvalidConfigError as exc:
        raise SynthConfigError("\n".join(f"{source}: {e.message}" for e in exc.errors)) from None
    if any("generator" in defs.resolve_assets_def(k).required_resource_keys for k in keys):
        # before a generation is added: a model in service behind an endpoint must answer
        why = generator_not_ready()
        if why:
            raise SynthConfigError(why)
    with dg.DagsterInstance.get() as instance:
        settled = settle_runs(instance)  # runs a killed process left STARTED: failed, with why
        for line in settled.marked_failed:
            print(line)
        if settled.running:
            raise SynthConfigError(
                f"{settled.running[0]} is still running; wait for it to end (DuckDB has one writer per file)"
            )
        key = None
        if partitioned:
            newest = newest_generation(instance, graph, keys) if generation is None and not new else None
            if newest is not None and newest.state == "unfinished" and newest.missing:
                generation = int(newest.generation)
                job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=newest.missing)
                run_config = _only_ops_of(job, run_config)
                print(
                    f"generation {generation} did not finish (its runs were killed): completing it, "
                    f"{len(newest.missing)} of {len(keys)} assets to materialize "
                    f"({', '.join(sorted(k.to_user_string() for k in newest.missing))}); "
                    "`synth run --new` starts a new generation instead"
                )
            key = add_generation(instance, generation or None)
            print(f"generation {key}")
        result = job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, partition_key=key, tags=process_tags()
        )
    failures = step_failures(result)
    code, status = run_outcome(result.success, {f.step for f in failures})
    for f in failures:
        print(f"{'refused' if code == 0 else 'error'}: {f.step}: {f.message}", file=sys.stderr)
    print(f"run {result.run_id}: {status}")
    return code


def _only_ops_of(job: object, run_config: dict) -> dict:
    """The run config without the ``ops`` entries of assets the (sub)job does not run: a profile
    sizes every asset, a completion runs only the missing ones."""
    names = set(job.graph.node_dict)
    ops = {k: v for k, v in (run_config.get("ops") or {}).items() if k in names}
    return {**run_config, "ops": ops} if "ops" in run_config else run_config


GATE_STEP = "model_eval_promotion_gate"


def run_outcome(success: bool, failed_steps: set[str]) -> tuple[int, str]:
    """(exit code, status). A candidate the promotion gate refused is the loop working, not a
    failed run: the model in service stays, and the run's other results stand."""
    if success:
        return 0, "SUCCESS"
    if failed_steps == {GATE_STEP}:
        return 0, "SUCCESS (the promotion gate refused the candidate; the model in service is unchanged: synth models)"
    return 1, "FAILURE"


def export(wh: Warehouse, out: str, generation: int | None) -> str:
    from synth_assets.core.curate.publish import publish

    g = generation or wh.current_generation()
    mix = wh.read("mixed_training_set", generation=g)
    if mix.height == 0:
        raise SynthConfigError(f"no mixed_training_set rows for generation {g}: materialize it first")
    paths = publish(wh, mix, g, out, human_floor=None)
    return (
        f"generation {g}: {mix.height} rows -> {paths['train']}, {paths['validation']}, "
        f"{paths['train_parquet']}, {paths['validation_parquet']}, card {paths['card']}"
    )


def review(wh: Warehouse, action: str, ids: list[str], note: str, show_all: bool) -> str:
    from synth_assets.core.curate.review import decision_rows, latest_decisions, with_status

    if not wh.table_exists("review_queue"):
        raise SynthConfigError("no review queue yet: materialize the asset 'review_queue'")
    queue = wh.read("review_queue")
    decisions = latest_decisions(wh.read("review_decisions") if wh.table_exists("review_decisions") else None)
    queue = with_status(queue, decisions)
    if action == "list":
        shown = queue if show_all else queue.filter(pl.col("status") == "pending")
        lines = [
            f"{r['candidate_id']:<30} {r['status']:<9} {r['flag_reason']:<16} {r['family']:<18} "
            f"{(r['training_text'] or '')[:60]!r}"
            for r in shown.iter_rows(named=True)
        ]
        return "\n".join(lines) or "nothing to review"
    unknown = sorted(set(ids) - set(queue["candidate_id"].to_list()))
    if unknown:
        raise SynthConfigError(f"not in the review queue: {', '.join(unknown)} (see `synth review list --all`)")
    wh.append("review_decisions", decision_rows(ids, action, note))
    _observe_decisions(wh)
    return f"{action}ed {len(ids)} rows; the next mixed_training_set honours it"


def _person() -> str:
    """Who decides at this terminal (the model card says who approved, rejected or served a model)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "a person"


def models(wh: Warehouse, action: str, model_id: str | None, note: str, out: str | None = None) -> str:
    from synth_assets.core.training.registry import Registry

    reg = Registry(wh)
    if action == "list":
        df = reg.models()
        in_service = reg.serving()
        lines = [f"{'model':<16} {'parent':<16} {'gen':>3} {'rows':>5} {'status':<18} reason"]
        for r in df.iter_rows(named=True):
            mark = "*" if r["model_id"] == in_service else " "
            gen = r["mix_generation"] if r["mix_generation"] is not None else "-"
            lines.append(
                f"{mark}{r['model_id']:<15} {r['parent_id'] or '-':<16} {gen:>3} {r['train_rows'] or 0:>5} "
                f"{r['status']:<18} {(r['reason'] or '')[:90]}"
            )
        return "\n".join(lines + ["", f"* in service: {in_service}"])
    if action == "log":
        return "\n".join(
            f"{r['served_from']:%Y-%m-%d %H:%M:%S}  {r['model_id']:<16} {r['action']:<9} {r['reason']}"
            for r in reg.serving_log().iter_rows(named=True)
        )
    if not model_id:
        raise SynthConfigError(f"synth models {action}: give a model id (see `synth models list`)")
    if action == "show":
        r = reg.models().filter(pl.col("model_id") == model_id)
        if r.height == 0:
            reg.get(model_id)  # raises with the known ids
        card = reg.write_card(model_id)  # written again from the warehouse: it says what the registry says now
        row = "\n".join(f"{k:<18} {v}" for k, v in r.row(0, named=True).items())
        return f"{row}\n\nmodel card: {card.markdown} (and {card.json.name})\n{card.summary}"
    if action == "export":
        from synth_assets.core.training.model_card import export_model

        if not out:
            raise SynthConfigError(f"synth models export {model_id} DIR: give the folder to write")
        paths = export_model(wh, reg.card_source(model_id), out)
        return "\n".join(
            [
                f"{model_id} -> {paths['folder']}",
                f"adapter files: {paths['files'] or 'none (it is served by an endpoint)'}",
                f"model card: {paths['card']} ({paths['card_json']})",
                f"dataset card: {paths.get('dataset_card') or 'none: its training mix is no longer stored'}",
            ]
        )
    record = reg.get(model_id)
    if action in ("approve", "reject"):
        if record.status != "awaiting_approval":
            raise SynthConfigError(f"{model_id} is {record.status}, not awaiting approval")
        status = "promoted" if action == "approve" else "rejected"
        reg.decide(
            model_id, status, f"{action}d by {_person()} (synth models {action})" + (f": {note}" if note else "")
        )
        return f"{model_id}: {status}" + (" and in service" if status == "promoted" else "")
    reg.serve(
        model_id,
        "pin" if model_id != "base" else "rollback",
        f"served by {_person()} (synth models serve)" + (f": {note}" if note else ""),
    )
    return f"{model_id} is in service; the next run's generator uses it"


def _observe_decisions(wh: Warehouse) -> None:
    """Tell the Dagster instance (when there is one) that review_decisions has a new data
    version, so the UI marks the mix that read the old decisions as stale."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return
    import dagster as dg

    from synth_assets.assets.feedback import table_version

    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key="review_decisions", tags={"dagster/data_version": table_version(wh, "review_decisions")}
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="synth", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db", default=None, help="DuckDB file (default: $SYNTH_DUCKDB_PATH or $DAGSTER_HOME/warehouse.duckdb)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="materialize a new generation")
    p_run.add_argument("--select", default="*", help="asset selection, e.g. '*' or 'raw_candidates*'")
    p_run.add_argument("-c", "--config", default=None, help="run config YAML (ops: {asset: {config: ...}})")
    p_run.add_argument(
        "--generation", type=int, default=None, help="re-run this existing generation (default: a new one)"
    )
    p_run.add_argument(
        "--new",
        action="store_true",
        help="start a new generation even when the newest one was left unfinished by a killed run",
    )
    p_run.add_argument("--traceback", action="store_true", help="show stack traces of failed steps")
    p_run.add_argument(
        "--profile",
        choices=["full", "smoke"],
        default="full",
        help="sizes: full (the defaults) or smoke (about a minute); -c overrides either",
    )
    sub.add_parser("summary")
    p_drift = sub.add_parser("drift")
    p_drift.add_argument("--generation", type=int, default=None)
    p_exp = sub.add_parser("export")
    p_exp.add_argument("--out", required=True)
    p_exp.add_argument("--generation", type=int, default=None)
    p_rev = sub.add_parser("review")
    p_rev.add_argument("action", choices=["list", "accept", "reject"])
    p_rev.add_argument("ids", nargs="*")
    p_rev.add_argument("--note", default="")
    p_rev.add_argument("--all", action="store_true")
    p_mod = sub.add_parser("models", help="the model registry: list, show, approve, reject, serve, export")
    p_mod.add_argument(
        "action", nargs="?", default="list", choices=["list", "log", "show", "approve", "reject", "serve", "export"]
    )
    p_mod.add_argument("model_id", nargs="?")
    p_mod.add_argument("out", nargs="?", help="export: the folder to write")
    p_mod.add_argument("--note", default="")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            if args.new and args.generation is not None:
                raise SynthConfigError("synth run: --new and --generation N contradict each other; give one")
            return run(args.select, args.config, args.generation, args.traceback, args.profile, args.new)
        wh = Warehouse(args.db or default_duckdb_path())
        if not Path(wh.path).exists():
            raise SynthConfigError(
                f"no DuckDB file at {wh.path}: run a generation first (synth run, or the UI), or point "
                "--db / SYNTH_DUCKDB_PATH at an existing warehouse"
            )
        if args.command == "summary":
            print(summary(wh))
        elif args.command == "drift":
            print(drift(wh, args.generation))
        elif args.command == "export":
            print(export(wh, args.out, args.generation))
        elif args.command == "review":
            if args.action != "list" and not args.ids:
                raise SynthConfigError(f"synth review {args.action}: give at least one candidate id")
            print(review(wh, args.action, args.ids, args.note, args.all))
        elif args.command == "models":
            print(models(wh, args.action, args.model_id, args.note, args.out))
    except SynthConfigError as exc:
        for line in str(exc).splitlines():  # one problem a line (a run config's problems come together)
            print(f"error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
