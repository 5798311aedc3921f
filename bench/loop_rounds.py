"""The loop on the platform's own assets: `synth run` R times in one fresh Dagster home on the
embedded defaults (each run a generation: the frontier, generation, verification, the mix, a
candidate trained from the base model, the gate), then a report per round read back from the
warehouse and the Dagster instance:

* the model that generated and the capability frontier's chosen levels;
* distinct verified rows per CPU-minute (guessers' expected passes subtracted);
* the mix: synthetic and human rows, the human share of response tokens (the floor's unit);
* the candidate and the gate's decision, with its table: per family@level and variant the items,
  parent and candidate pass rates (95% Wilson intervals), the most common answer's rate and the
  Holm-adjusted gain p (held-out rows and shifted rows corrected as two families);
* the run's wall time and the training step's.

    .venv/bin/python bench/loop_rounds.py --rounds 3 --home /tmp/loop      # about 25-45 min a round on 2 cores
    .venv/bin/python bench/loop_rounds.py --home /tmp/loop --report-only   # the report of runs made already
    .venv/bin/python bench/loop_rounds.py --rationale --home /tmp/loop_r   # every prompt asks for a worked rationale

Rounds already in the home are kept (a later call adds rounds). This is the default arm of the
self-improvement benchmark run through the assets, with the drift report's ANSWER_COLLAPSE per
round. The naive arm (unverified samples, no human data, each round replacing the last) cannot be
configured through the assets by design (the mix refuses synthetic data alone), so
``--naive-rounds N`` runs it with the platform's core functions on the default rounds' own
tasks and held-out items: round g's naive model is sampled on the reasoning-gym tasks the default
run generated on in generation g (the same prompts and sampling settings), trained on every
sample's first line (as many rows as the default candidate of g trained on, so both get the same
steps), gated against its parent on the held-out items the default gate used, and its held-out
answers read by the drift report's ANSWER_COLLAPSE rule. Its registry and models live in
``<home>/naive``; rounds done there are kept.

    .venv/bin/python bench/loop_rounds.py --home /tmp/loop --report-only --naive-rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synth_assets.core.curate.mixing import human_share_of  # noqa: E402
from synth_assets.core.quality.yield_metrics import OVERALL, distinct_yield, generation_wall_seconds  # noqa: E402
from synth_assets.core.warehouse import Warehouse  # noqa: E402

PROMPT_ASSETS = ("raw_candidates", "capability_frontier", "heldout_reasoning", "generator_eval", "candidate_model")


def run_rounds(home: Path, rounds: int, rationale: bool = False) -> None:
    home.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if rationale:  # form: rationale on every asset that asks the model (synth run checks they agree)
        import json

        cfg = home / "rationale.yaml"
        cfg.write_text(json.dumps({"ops": {a: {"config": {"form": "rationale"}} for a in PROMPT_ASSETS}}))
        extra = ["-c", str(cfg)]
    (home / "dagster.yaml").touch()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env.pop("SYNTH_DUCKDB_PATH", None)  # the warehouse beside the instance
    for r in range(rounds):
        t0 = time.monotonic()
        log = home / f"run_{int(time.time())}.log"
        with log.open("w") as out:
            code = subprocess.call(
                [str(Path(sys.executable).parent / "synth"), "run", *extra],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        print(f"round {r + 1}/{rounds}: synth run exit {code} in {time.monotonic() - t0:.0f} s (log {log})", flush=True)
        if code != 0:
            raise SystemExit(f"synth run failed: see {log}")


def _run_times(home: Path) -> dict[int, dict[str, float]]:
    """Per generation: the wall time of its runs and of its training step (Dagster's step stats)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    out: dict[int, dict[str, float]] = {}
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            g = run.tags.get("dagster/partition")
            stats = instance.get_run_stats(run.run_id)
            if not g or not g.isdigit() or not stats.end_time or not stats.start_time:
                continue
            steps = {
                s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(run.run_id)
            }
            entry = out.setdefault(int(g), {"run_s": 0.0, "training_s": 0.0})
            entry["run_s"] += stats.end_time - stats.start_time
            entry["training_s"] += steps.get("candidate_model", 0.0)
    return out


def _fmt_rate(rate: float | None, low: float | None, high: float | None) -> str:
    return "" if rate is None else f"{rate:.2f} [{low:.2f}, {high:.2f}]"


def report(home: Path) -> str:
    wh = Warehouse(str(home / "warehouse.duckdb"))
    s = wh.schema
    times = _run_times(home)
    gens = wh.sql(f"select distinct generation from {s}.raw_candidates order by 1")["generation"].to_list()
    models = wh.sql(f"select model_id, mix_generation, status, reason, train_rows from {s}.model_registry")
    lines = ["# The loop, round by round (bench/loop_rounds.py)", ""]
    summary = [
        "| round | generated by | chosen levels | distinct verified rows / CPU-min | synthetic + human rows "
        "(human share) | candidate | decision | run | training | drift report: ANSWER_COLLAPSE of the model "
        "that generated |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tables = []
    for g in gens:
        raw = wh.read("raw_candidates", generation=g)
        verified = wh.read("verified_set", generation=g)
        frontier = wh.sql(
            f"select family from {s}.capability_frontier where generation = ? and chosen order by family", [g]
        )["family"].to_list()
        cores = os.cpu_count() or 1
        y = distinct_yield(verified, generation_wall_seconds(raw) * cores)
        overall = y.filter(pl.col("family") == OVERALL).row(0, named=True) if y.height else {}
        mix = wh.read("mixed_training_set", generation=g)
        synth_rows = int((mix["source"] == "synthetic").sum())
        human_rows = int((mix["source"] == "human").sum())
        share, unit = human_share_of(mix)
        share = f" ({share:.0%} of {unit})" if mix.height else ""
        cand = models.filter(pl.col("mix_generation") == g).tail(1)
        cid = status = reason = None
        if cand.height:
            cid, _mix_generation, status, reason, _rows = cand.row(0)
        t = times.get(g, {})
        summary.append(
            f"| {g} | {raw['model'][0] if raw.height else ''} | {', '.join(frontier) or 'as written'} | "
            f"{overall.get('distinct_rows_per_cpu_min', float('nan')):.2f} | {synth_rows} + {human_rows}{share} | "
            f"{cid or ''} | {status or 'not trained'}{': ' + reason if status not in ('promoted', None) else ''} | "
            f"{t.get('run_s', 0) / 60:.1f} min | {t.get('training_s', 0) / 60:.1f} min | {_answer_collapse(wh, g)} |"
        )
        gate = wh.sql(f"select * from {s}.model_eval where generation = ? and family <> '_macro_' order by 1, 2", [g])
        if gate.height:
            tables += [
                f"## Round {g}: {cid} against its parent {gate['parent_id'][0]}",
                "",
                "| family@level | variant | items | parent | candidate | stronger trivial predictor (most common "
                "answer, or the words as given) | gain p (Holm) | flag |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in gate.iter_rows(named=True):
                tables.append(
                    f"| {r['family']} | {r['variant']} | {r['n']} | "
                    f"{_fmt_rate(r['parent_rate'], r['parent_low'], r['parent_high'])} | "
                    f"{_fmt_rate(r['candidate_rate'], r['candidate_low'], r['candidate_high'])} | "
                    f"{max(r['most_common_rate'], r.get('as_given_rate') or 0):.2f} | {r['p_gain_adj']:.2g}"
                    f"{' (gain)' if r['significant_gain'] else ''} | "
                    f"{r['flag'] or ''} |"
                )
            tables.append("")
    return "\n".join(lines + summary + [""] + tables + naive_report(home))


NAIVE_DIR = "naive"
NAIVE_RESULTS = "rounds.json"


def naive_rounds(home: Path, rounds: int, tasks_per_family: int = 0, log: Callable[[str], None] = print) -> list[dict]:
    """The naive arm over the default rounds 1..``rounds`` of ``home`` (see the module's doc);
    returns every naive round's result, also kept in ``<home>/naive/rounds.json``."""
    from bench.self_improvement import answer_drift, answer_frame, mix_rows
    from synth_assets.core.generators.generation import SamplingPlan, run_generation
    from synth_assets.core.training.gate import GateSettings
    from synth_assets.core.training.loop import (
        CandidateSettings,
        evaluate_candidate,
        load_generator,
        scores_for,
        train_candidate,
    )
    from synth_assets.core.training.registry import BASE_ID, Registry

    os.environ["DAGSTER_HOME"] = str(home)
    wh = Warehouse(str(home / "warehouse.duckdb"))
    work = home / NAIVE_DIR
    work.mkdir(exist_ok=True)
    results_path = work / NAIVE_RESULTS
    results: list[dict] = json.loads(results_path.read_text()) if results_path.exists() else []
    reg = Registry(Warehouse(str(work / "warehouse.duckdb")))
    heldout = wh.read("heldout_reasoning")
    default_models = wh.read("model_registry")
    answers = pl.DataFrame()
    for g in range(1, rounds + 1):
        items = round_items(wh, heldout, g, tasks_per_family)
        if g == 1:  # round 0 of the answer series: the base model, on round 1's items
            answers = answer_frame(scores_for(reg.get(BASE_ID), items, reg, log), items, 0)
        done = next((r for r in results if r["round"] == g), None)
        if done:
            answers = pl.concat([answers, answer_frame(scores_for(reg.get(done["model"]), items, reg, log), items, g)])
            log(f"[naive] round {g}: kept from {results_path}")
            continue
        t0 = time.monotonic()
        generated = wh.read("raw_candidates", generation=g).select("task_id").unique()
        tasks = (
            wh.read("task_pool", generation=g)
            .join(generated, on="task_id")
            .filter(pl.col("source") == "reasoning_gym")
            .sort("task_id")
        )
        if tasks_per_family:
            tasks = tasks.group_by("family", maintain_order=True).head(tasks_per_family)
        serving = reg.get(reg.serving())
        gen = load_generator(serving)
        try:
            samples = run_generation(tasks, gen, SamplingPlan(), g, log=log)
        finally:
            gen.close()
        gen_s = time.monotonic() - t0
        naive = samples.with_columns(
            pl.col("candidate_id").alias("row_id"),
            pl.col("source").alias("task_source"),
            pl.col("completion").fill_null("").str.strip_chars().str.split("\n").list.first().alias("response"),
        ).filter(pl.col("response") != "")
        mix = mix_rows(naive, "synthetic", g)
        matched = default_models.filter(pl.col("mix_generation") == g)["train_rows"].to_list()
        rows = int(matched[-1]) if matched and matched[-1] else 2000
        t1 = time.monotonic()
        row = train_candidate(mix, g, CandidateSettings(max_train_rows=rows, seed=g), reg, work / "models", log=log)
        train_s = time.monotonic() - t1
        comparison, ok, reasons, dropped = evaluate_candidate(row["model_id"], items, mix, reg, GateSettings(), log)
        reg.decide(row["model_id"], "promoted" if ok else "rejected", "the gate passed" if ok else "; ".join(reasons))
        cand = scores_for(reg.get(row["model_id"]), items, reg, log)
        answers = pl.concat([answers, answer_frame(cand, items, g)])
        families, worst = answer_drift(answers, g)
        results.append(
            {
                "round": g,
                "model": row["model_id"],
                "parent": serving.model_id,
                "tasks": tasks.height,
                "samples": samples.height,
                "mix_rows": mix.height,
                "train_rows": row["train_rows"],
                "promoted": ok,
                "reasons": reasons,
                "contaminated_dropped": dropped,
                "answer_drift": families,
                "answer_collapse": worst,
                "comparison": comparison.select(
                    "family", "variant", "n", "candidate_rate", "parent_rate", "p_gain_adj", "significant_gain", "flag"
                ).to_dicts(),
                "gen_s": gen_s,
                "train_s": train_s,
                "round_s": time.monotonic() - t0,
            }
        )
        results_path.write_text(json.dumps(results, indent=1, default=str))
        log(
            f"[naive] round {g}: {'PROMOTED' if ok else 'rejected'} {row['model_id']} "
            f"({'; '.join(reasons) or 'gate passed'}); ANSWER_COLLAPSE {worst} "
            f"({', '.join(f['family'] + ' ' + f['status'] for f in families)})"
        )
    default_candidate_drift(wh, heldout, results, tasks_per_family, log)
    results_path.write_text(json.dumps(results, indent=1, default=str))
    return results


def round_items(wh: Warehouse, heldout: pl.DataFrame, g: int, tasks_per_family: int) -> pl.DataFrame:
    """The held-out items default round ``g``'s gate used (those at its frontier's chosen levels),
    or for a smoke run (``tasks_per_family``) as few a family and variant as tasks."""
    from synth_assets.core.training.frontier import heldout_at_chosen_levels

    items = heldout_at_chosen_levels(heldout, wh.read("capability_frontier", generation=g))
    if tasks_per_family:
        items = items.sort("item_id").group_by("family", "variant", maintain_order=True).head(tasks_per_family)
    return items


def default_candidate_drift(
    wh: Warehouse, heldout: pl.DataFrame, results: list[dict], tasks_per_family: int, log: Callable[[str], None]
) -> None:
    """The same ANSWER_COLLAPSE rule on the default arm's candidates, so both arms are judged alike:
    the series is the base model on round 1's items, then the default candidate of each round on
    that round's items (its answers were stored when its gate evaluated it). Adds
    ``default_model`` and ``default_answer_drift`` to each naive round's result."""
    from bench.self_improvement import answer_drift, answer_frame
    from synth_assets.core.training.loop import scores_for
    from synth_assets.core.training.registry import BASE_ID, Registry

    reg = Registry(wh)
    models = wh.read("model_registry")
    answers = pl.DataFrame()
    for r in sorted(results, key=lambda r: r["round"]):
        g = r["round"]
        items = round_items(wh, heldout, g, tasks_per_family)
        if answers.is_empty():
            answers = answer_frame(scores_for(reg.get(BASE_ID), items, reg, log), items, 0)
        made = models.filter(pl.col("mix_generation") == g)["model_id"].to_list()
        if not made:
            continue
        answers = pl.concat([answers, answer_frame(scores_for(reg.get(made[-1]), items, reg, log), items, g)])
        r["default_model"] = made[-1]
        r["default_answer_drift"], _ = answer_drift(answers, g)


def _status(status: str) -> str:
    """An ANSWER_COLLAPSE status as the report shows it: warn and fail stand out."""
    return f"**{status.upper()}**" if status in ("warn", "fail") else status


def _answer_collapse(wh: Warehouse, g: int) -> str:
    """The drift report's ANSWER_COLLAPSE per family for generation ``g`` (it judges the model that
    generated g, i.e. the model in service), flagged ones with their evidence."""
    if not wh.table_exists("drift_report"):
        return ""
    rows = wh.sql(
        f"select corpus, status, note from {wh.schema}.drift_report where generation = ? "
        "and metric = 'ANSWER_COLLAPSE' order by corpus",
        [g],
    )
    return "; ".join(
        f"{r['corpus'].removeprefix('answers:')} {_status(r['status'])}"
        + (f" ({r['note']})" if r["status"] in ("warn", "fail") else "")
        for r in rows.iter_rows(named=True)
    )


def naive_report(home: Path) -> list[str]:
    """The naive arm's rounds beside the default's: decision, rows, and ANSWER_COLLAPSE."""
    path = home / NAIVE_DIR / NAIVE_RESULTS
    if not path.exists():
        return []
    lines = [
        "## The naive arm on the same tasks (unverified samples, no human data, replacing)",
        "",
        "| round | generated by | tasks, samples | trained rows | candidate | decision | gate rows with a "
        "significant gain / a flag | ANSWER_COLLAPSE of the candidate's held-out answers | the default "
        "arm's candidate, same items and rule | round |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    results = json.loads(path.read_text())
    for r in results:
        rows = [c for c in r["comparison"] if c["family"] != "_macro_"]
        gains = [f"{c['family']} {c['variant']}" for c in rows if c["significant_gain"]]
        flags = [f"{c['family']} {c['variant']} {c['flag']}" for c in rows if c["flag"]]
        collapse = "; ".join(f"{f['family']} {_status(f['status'])}" for f in r["answer_drift"])
        default = "; ".join(f"{f['family']} {_status(f['status'])}" for f in r.get("default_answer_drift", []))
        lines.append(
            f"| {r['round']} | {r['parent']} | {r['tasks']}, {r['samples']} | {r['train_rows']} | {r['model']} | "
            f"{'promoted' if r['promoted'] else 'rejected: ' + '; '.join(r['reasons'])} | "
            f"{', '.join(gains) or 'none'} / {', '.join(flags) or 'none'} | {collapse} | "
            f"{r.get('default_model', '')} {default or 'not measured'} | {r['round_s'] / 60:.1f} min |"
        )
    notes = [
        f"- round {r['round']}, {f['family']}: {f['status']}: {f['note']}"
        for r in results
        for f in r["answer_drift"]
        if f["status"] in ("warn", "fail")
    ]
    return lines + ([""] + ["ANSWER_COLLAPSE evidence (the drift report's note):"] + notes if notes else []) + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--home", type=Path, default=Path("/tmp/synth_loop_rounds"))
    ap.add_argument("--report-only", action="store_true", help="print the report of the rounds in --home")
    ap.add_argument("--rationale", action="store_true", help="form: rationale (a checked worked rationale first)")
    ap.add_argument(
        "--naive-rounds", type=int, default=0, help="run the naive arm on the first N default rounds' tasks"
    )
    ap.add_argument(
        "--naive-tasks-per-family", type=int, default=0, help="at most this many tasks a family (0: all; smoke runs)"
    )
    args = ap.parse_args()
    if not args.report_only:
        run_rounds(args.home, args.rounds, args.rationale)
    if args.naive_rounds:
        naive_rounds(args.home, args.naive_rounds, args.naive_tasks_per_family)
    print(report(args.home))


if __name__ == "__main__":
    main()
