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


def check(run_config: dict, source: str, graph: dg.AssetGraph, keys: Iterable[dg.AssetKey]) -> list[str]:
    """The problems of a run config for the selected assets of ``graph``."""
    every = {graph.get(k).assets_def.op.name for k in graph.get_all_asset_keys() if graph.get(k).is_executable}
    classes = config_classes(graph, keys)
    found = problems(run_config, source, classes, every)
    return found or (prompt_disagreements(run_config, source, classes) if isinstance(run_config, dict) else [])
