"""A run config checked whole before anything runs: one line per problem, naming the file, the
path and the fix.

Dagster checks a run config's shape at launch, but answers a misplaced key with a traceback that
prints the whole config schema on one line, and the bounds of a setting (pydantic's ``ge=1``) only
when the step builds its config: in a full run, an ``epochs: -3`` for the trainer failed after
generation, verification and the held-out evaluation, twenty minutes in. Here every selected
asset's config is validated by its own pydantic model, and keys that belong elsewhere are named
with where they belong.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import dagster as dg
from pydantic import BaseModel, ValidationError

TOP_LEVEL = ("ops", "resources", "loggers", "execution")


def config_classes(graph: dg.AssetGraph, keys: Iterable[dg.AssetKey]) -> dict[str, type[BaseModel] | None]:
    """Each selected asset's op name -> the config class its function takes (None: no config)."""
    out: dict[str, type[BaseModel] | None] = {}
    for key in keys:
        assets_def = graph.get(key).assets_def
        if not assets_def.is_executable:
            continue
        fn = assets_def.op.compute_fn.decorated_fn
        param = inspect.signature(fn).parameters.get("config")
        cls = param.annotation if param is not None else None
        out[assets_def.op.name] = cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None
    return out


def _path(prefix: str, loc: tuple) -> str:
    return ".".join([prefix, *(str(p) for p in loc)])


def problems(run_config: dict, source: str, classes: dict[str, type[BaseModel] | None], all_ops: set[str]) -> list[str]:
    """One line per problem in ``run_config`` (read from ``source``), or [] when it is sound."""
    out = []
    if not isinstance(run_config, dict):
        return [f"{source}: the run config must be a mapping (ops:, resources:), not {type(run_config).__name__}"]
    for key in run_config:
        if key in TOP_LEVEL:
            continue
        if key in all_ops:
            out.append(f"{source}: {key}: an asset's settings go under ops: write ops.{key}.config")
        else:
            out.append(f"{source}: {key}: not a run config section; use one of {', '.join(TOP_LEVEL)}")
    ops = run_config.get("ops") or {}
    if not isinstance(ops, dict):
        return [*out, f"{source}: ops: must map asset names to {{config: ...}}"]
    for name, body in ops.items():
        if name not in all_ops:
            out.append(f"{source}: ops.{name}: no asset is called {name!r}")
            continue
        if name not in classes:
            out.append(f"{source}: ops.{name}: {name} is not selected in this run (--select), so its config is unused")
            continue
        if not isinstance(body, dict) or set(body) - {"config"}:
            extra = sorted(set(body) - {"config"}) if isinstance(body, dict) else []
            out.append(f"{source}: ops.{name}: {', '.join(extra) or 'its value'}: settings go under ops.{name}.config")
            continue
        cls = classes[name]
        if cls is None:
            out.append(f"{source}: ops.{name}.config: {name} takes no settings")
            continue
        try:
            cls.model_validate(body.get("config") or {})
        except ValidationError as exc:
            for err in exc.errors():
                fix = (
                    f"not a setting of {name}; its settings: {', '.join(cls.model_fields)}"
                    if err["type"] == "extra_forbidden"
                    else f"{err['msg']} (got {err.get('input')!r})"
                )
                out.append(f"{source}: {_path(f'ops.{name}.config', err['loc'])}: {fix}")
    return out


# the prompt settings every asset that asks the model a question must share: a model generated
# for, measured and evaluated in one prompt format and trained in another learns a skill no step asks for
SHARED_PROMPT_FIELDS = ("form", "few_shot", "few_shot_pool", "few_shot_seed")


def prompt_disagreements(run_config: dict, source: str, classes: dict[str, type[BaseModel] | None]) -> list[str]:
    """One line per shared prompt setting whose value (set, else the default) differs between
    the selected assets that take prompt settings."""
    from synth_assets.core.generators.generation import PromptSettings

    takers = sorted(n for n, c in classes.items() if c is not None and issubclass(c, PromptSettings))
    ops = run_config.get("ops") or {}
    out = []
    for field in SHARED_PROMPT_FIELDS:
        values: dict[str, list[str]] = {}
        for name in takers:
            body = ops.get(name)
            config = (body.get("config") or {}) if isinstance(body, dict) else {}
            value = config.get(field, PromptSettings.model_fields[field].default)
            values.setdefault(repr(value), []).append(name)
        if len(values) > 1:
            (common, _), *others = sorted(values.items(), key=lambda kv: -len(kv[1]))
            for value, names in others:
                out.append(
                    f"{source}: {', '.join(f'ops.{n}.config.{field}' for n in names)} is {value} but "
                    f"{', '.join(values[common])} use {common}: the model is asked, measured and trained in one "
                    f"prompt format; set {field}: {value.strip(chr(39))} on every one of "
                    f"{', '.join(takers)} (or on none)"
                )
    return out


def _config_of(run_config: dict, name: str) -> dict:
    body = (run_config.get("ops") or {}).get(name)
    return (body.get("config") or {}) if isinstance(body, dict) else {}


def heldout_gaps(run_config: dict, source: str, classes: dict[str, type[BaseModel] | None]) -> list[str]:
    """A level the task pool can train at without held-out items there, as one line naming both
    fields. generator_eval refuses such a generation (it cannot judge what it trained on), but only
    after generation, verification and training: a run whose families were edited in one place
    and not the other failed twenty minutes in (the smoke profile, when products@1 joined the
    task pool's defaults and not its held-out families). Checked when both assets are selected."""
    if not {"task_pool", "heldout_reasoning"} <= classes.keys():
        return []
    from synth_assets.core.tasks.sources import ladder, split_level
    from synth_assets.core.training.frontier import FrontierSettings

    # each asset's own config class (its core settings with the prompt's where it asks the model)
    pool = classes["task_pool"].model_validate(_config_of(run_config, "task_pool"))
    heldout = classes["heldout_reasoning"].model_validate(_config_of(run_config, "heldout_reasoning"))
    steer = (
        (classes.get("capability_frontier") or FrontierSettings)
        .model_validate(_config_of(run_config, "capability_frontier"))
        .steer
    )
    # unsteered, a generation trains at the levels as written; steered, anywhere on the pool's ladder
    trains = ladder(pool.reasoning_gym_families, pool.levels_above if steer else 0)
    judged = set(ladder(heldout.families, heldout.levels_above))
    missing = [f for f in trains if split_level(f)[1] is not None and f not in judged]
    if not missing:
        return []
    return [
        f"{source}: ops.heldout_reasoning.config.families: no held-out items at {', '.join(missing)}, where "
        f"task_pool (reasoning_gym_families {pool.reasoning_gym_families}, levels_above "
        f"{pool.levels_above if steer else '0: the frontier does not steer'}) can train; held-out families are "
        f"{heldout.families} with levels_above {heldout.levels_above}: give heldout_reasoning the task pool's "
        "families and levels_above"
    ]


def _disagreements(run_config: dict, source: str, classes: dict[str, type[BaseModel] | None]) -> list[str]:
    return prompt_disagreements(run_config, source, classes) + heldout_gaps(run_config, source, classes)


def disagreements(run_config: dict, source: str, graph: dg.AssetGraph, keys: Iterable[dg.AssetKey]) -> list[str]:
    """Settings of the selected assets that are each sound but do not fit together (prompt formats,
    held-out levels): checked on the config a run gets, a profile's included."""
    return _disagreements(run_config, source, config_classes(graph, keys))


def check(run_config: dict, source: str, graph: dg.AssetGraph, keys: Iterable[dg.AssetKey]) -> list[str]:
    """The problems of a run config for the selected assets of ``graph``."""
    every = {graph.get(k).assets_def.op.name for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    classes = config_classes(graph, keys)
    found = problems(run_config, source, classes, every)
    if found or not isinstance(run_config, dict):
        return found
    return _disagreements(run_config, source, classes)
