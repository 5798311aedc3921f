"""A wrong run config fails before anything runs: one line a problem, naming the file, the path
and the fix; no generation is added and no table is written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from synth_assets.definitions import defs
from synth_assets.run_config import check


def _synth_run(tmp_path: Path, config: dict) -> tuple[subprocess.CompletedProcess, Path]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "SYNTH_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    synth = [str(Path(sys.executable).parent / "synth"), "run", "-c", str(cfg)]
    return subprocess.run(synth, env=env, capture_output=True, text=True, timeout=300), home


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            {"candidate_model": {"config": {"epochs": -3}}},
            "candidate_model: an asset's settings go under ops: write ops.candidate_model.config",
        ),
        (
            {"ops": {"candidate_model": {"config": {"epochs": -3}}}},
            "ops.candidate_model.config.epochs: Input should be greater than or equal to 1 (got -3)",
        ),
    ],
)
def test_a_wrong_run_config_stops_synth_run_before_any_step_with_one_line(tmp_path, config, line):
    out, home = _synth_run(tmp_path, config)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        generations = instance.get_dynamic_partitions("generation")
    assert (out.returncode, out.stderr.strip(), generations, (tmp_path / "w.duckdb").exists()) == (
        2,
        f"error: {tmp_path / 'run.yaml'}: {line}",
        [],
        False,
    )


def test_every_problem_gets_its_own_line():
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]
    wrong = check(
        {"ops": {"task_pool": {"config": {"tasks_per_family": -1, "familes": ["gcd"]}}, "nope": {}}, "opz": {}},
        "run.yaml",
        graph,
        keys,
    )
    assert wrong == [
        "run.yaml: opz: not a run config section; use one of ops, resources, loggers, execution",
        "run.yaml: ops.task_pool.config.tasks_per_family: Input should be greater than or equal to 0 (got -1)",
        "run.yaml: ops.task_pool.config.familes: not a setting of task_pool; its settings: reasoning_gym_families, "
        "levels_above, tasks_per_family, seed, fresh_seeds, humaneval_tasks, user_task_files, include_synthesized, "
        "source_shares",
        "run.yaml: ops.nope: no asset is called 'nope'",
    ]


def test_a_sound_run_config_has_no_problems():
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]
    assert check({"ops": {"candidate_model": {"config": {"epochs": 1}}}}, "run.yaml", graph, keys) == []


PROMPT_TAKERS = ("candidate_model", "capability_frontier", "generator_eval", "heldout_reasoning", "raw_candidates")


def test_a_prompt_form_set_on_some_assets_only_is_one_line_naming_the_rest():
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]
    config = {"ops": {"raw_candidates": {"config": {"form": "rationale"}}}}
    assert check(config, "run.yaml", graph, keys) == [
        "run.yaml: ops.raw_candidates.config.form is 'rationale' but candidate_model, capability_frontier, "
        "generator_eval, heldout_reasoning use 'answer': the model is asked, measured and trained in one prompt "
        f"format; set form: rationale on every one of {', '.join(PROMPT_TAKERS)} (or on none)"
    ]
    everywhere = {"ops": {name: {"config": {"form": "rationale"}} for name in PROMPT_TAKERS}}
    assert check(everywhere, "run.yaml", graph, keys) == []


def _all_keys():
    graph = defs.resolve_asset_graph()
    return graph, [k for k in graph.get_all_asset_keys() if graph.get(k).is_executable]


def test_a_level_the_pool_trains_at_without_held_out_items_is_one_line_before_anything_runs():
    graph, keys = _all_keys()
    config = {"ops": {"heldout_reasoning": {"config": {"families": ["chain_sum@1"], "levels_above": 1}}}}
    assert check(config, "run.yaml", graph, keys) == [
        "run.yaml: ops.heldout_reasoning.config.families: no held-out items at chain_sum@3, basic_arithmetic@1, "
        "basic_arithmetic@2, basic_arithmetic@3, products@1, products@2, products@3, where task_pool "
        "(reasoning_gym_families ['chain_sum@1', 'basic_arithmetic@1', 'products@1', 'projectile_design'], "
        "levels_above 2) can train; held-out families are ['chain_sum@1'] with levels_above 1: give "
        "heldout_reasoning the task pool's families and levels_above"
    ]


def test_an_unsteered_frontier_trains_only_at_the_levels_as_written():
    graph, keys = _all_keys()
    heldout = {"families": ["chain_sum@1", "basic_arithmetic@1", "products@1"], "levels_above": 0}
    unsteered = {"heldout_reasoning": {"config": heldout}, "capability_frontier": {"config": {"steer": False}}}
    steered = {"heldout_reasoning": {"config": heldout}}
    assert (len(check({"ops": unsteered}, "r", graph, keys)), len(check({"ops": steered}, "r", graph, keys))) == (0, 1)


def test_the_smoke_profile_judges_every_level_its_task_pool_trains_at():
    from synth_assets.profiles import PROFILES
    from synth_assets.run_config import disagreements

    graph, keys = _all_keys()
    assert disagreements(PROFILES["smoke"], "smoke", graph, keys) == []
