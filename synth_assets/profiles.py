"""Run-config presets: the same pipeline at other sizes, chosen at launch, never at import.

``smoke`` makes a whole generation take about a minute (2 tasks per family, 1 HumanEval task,
2 samples, short code completions, 1 held-out task, one synthesized proposal per method, the
capability frontier not measured: the levels as written): for demos and the browser test.
Everything stays real. Use it with ``synth run --profile smoke``, or launch the
``smoke_generation`` job in the UI (its Launchpad shows this config).
"""

from synth_assets.core.training.heldout import DEFAULT_HELDOUT_FAMILIES

SMOKE_RUN_CONFIG: dict = {
    "ops": {
        "synthesized_tasks": {"config": {"proposals_per_method": 1, "seeds_per_family": 3}},
        "task_pool": {"config": {"tasks_per_family": 2, "humaneval_tasks": 1}},
        "capability_frontier": {"config": {"steer": False}},
        "raw_candidates": {"config": {"samples_per_task": 2, "code_max_tokens": 48}},
        "generator_eval": {"config": {"max_tasks": 1, "code_max_tokens": 48}},
        # the task pool's families at their levels as written (the frontier is not measured here)
        "heldout_reasoning": {
            "config": {"families": list(DEFAULT_HELDOUT_FAMILIES), "items_per_family": 10, "levels_above": 0}
        },
        "judge_calibration": {"config": {"rows_per_cell": 3, "human_rows": 3, "pairs": 3}},
    }
}

# the loop at smoke size: a few dozen rows, one epoch (held-out items: ten a family, above)
SMOKE_TRAINING_CONFIG: dict = {
    "ops": {
        "candidate_model": {"config": {"max_train_rows": 24, "epochs": 1, "min_train_rows": 4}},
    }
}

PROFILES: dict[str, dict] = {"full": {}, "smoke": {"ops": {**SMOKE_RUN_CONFIG["ops"], **SMOKE_TRAINING_CONFIG["ops"]}}}


def merge(base: dict, extra: dict) -> dict:
    """``extra`` over ``base``, recursively (a user's -c file over a profile)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
