"""The model card written beside every registered model: what it was trained on and why it serves
(or does not).

Two files in the model's artefact folder (the folder named after its id that holds its adapter;
``models/<id>/`` beside the DuckDB file when it has none, e.g. the base model or an endpoint):

* ``MODEL_CARD.md``: Markdown with YAML front matter in the Hugging Face model-card format
  (``base_model``, ``datasets``, ``library_name: peft``, ``tags``, ``model-index`` with the
  held-out results), so it uploads as a repository's README.md as is;
* ``model_card.json``: the same facts for programs.

Everything comes from the warehouse: the registry row (lineage, rows hash, settings, loss curve,
scores, status and reason), the serving log (who put it in service, when), the training mix of
its generation (rows per source and family, licences, the models that wrote the rows, the
verifiers that admitted them), the filters' drop counts, the verifiers' canaries
(``verifier_canaries``), the drift report of its generation and the capability frontier when
they are stored; what is not stored is said to be not measured. The registry rewrites the card
whenever the model's record changes (registration, scores, a decision, a pin or a rollback), and
``export_model`` writes the adapter, the card and the training mix's dataset card into one folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from synth_assets.core.curate.mixing import human_share_of
from synth_assets.core.curate.publish import drops_by_reason, publish
from synth_assets.core.errors import SynthConfigError
from synth_assets.core.markdown import markdown_table
from synth_assets.core.quality.charts import loss_chart_png
from synth_assets.core.training.gate import MACRO
from synth_assets.core.verify.canaries import CANARY_TABLE, UNPROVEN, verdict_matches
from synth_assets.core.warehouse import Warehouse

CARD_MD = "MODEL_CARD.md"
CARD_JSON = "model_card.json"
LOSS_PNG = "loss.png"
HUB_CARD = "README.md"  # the name the Hugging Face Hub reads a card under (the export's)
CARD_VERSION = 1
# the capability frontier (FRONTIER_SCHEMA rows, keyed by model_id) when a run stores it
FRONTIER_TABLE = "capability_frontier"
DRIFT_TABLE = "drift_report"
MIX_TABLE = "mixed_training_set"
_WORST_DRIFT = ("alert", "fail", "warn")  # the drift report's statuses that flag, worst first

STATUS_TEXT = {
    "candidate": "registered; the promotion gate (model_eval) has not decided yet",
    "awaiting_approval": "the gate passed; it waits for a person (synth models approve|reject {id})",
    "promoted": "it passed the gate (and any sign-off) and may serve",
    "rejected": "it never serves",
}


@dataclass(frozen=True)
class CardSource:
    """What the registry holds about one model (the registry builds it: ``Registry.card_source``)."""

    model: dict  # its model_registry row
    parent: dict | None  # its parent's row
    serving: list[dict]  # the serving-log rows that name it, oldest first
    in_service: str  # the model in service now


@dataclass(frozen=True)
class WrittenCard:
    markdown: Path
    json: Path
    summary: str  # a few lines of Markdown: the asset pages and `synth models show` print it
    facts: dict


# ------------------------------------------------------------------ facts
def card_dir(wh: Warehouse, model: dict) -> Path:
    """The model's artefact folder: the folder named after its id that holds its adapter or
    weights (``<artefact_dir>/<id>/``), else ``models/<id>/`` beside the DuckDB file."""
    mid = model["model_id"]
    for key in ("adapter_path", "adapter_dir", "gguf_path"):
        if model.get(key):
            for folder in Path(model[key]).parents:
                if folder.name == mid:
                    return folder
    return Path(wh.path).parent / "models" / mid


def hub_id(base_model: str | None) -> str | None:
    """The Hub id in the registry's base-model name (``google/gemma-3-270m (GGUF Q4_K_M, ...)``)."""
    first = (base_model or "").split(" ")[0]
    return first or None


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value else value


def _iso(value: Any) -> str | None:
    """A time as ISO 8601 in UTC (DuckDB may hand a timestamptz back in the session's zone)."""
    if not isinstance(value, datetime):
        return value
    return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _when(iso: str | None, missing: str = "not yet") -> str:
    """An ISO time as the card prints it: to the second, in UTC."""
    return f"{iso[:19].replace('T', ' ')} UTC" if iso else missing


def _token_share(mix: dict) -> str:
    share = mix.get("human_token_share")
    return f", **{share:.1%}** of response tokens, the share its floor counts" if share is not None else ""


def _mix_facts(wh: Warehouse, generation: int | None) -> dict:
    if generation is None:
        return {"stored": False, "note": "not trained on a mix (the packaged model)"}
    if not wh.table_exists(MIX_TABLE):
        return {"stored": False, "note": f"no {MIX_TABLE} table in the warehouse"}
    t = f"{wh.schema}.{MIX_TABLE}"
    per_source = wh.sql(
        f"select source, family, count(*) filter (where split = 'train') as train, "
        f"count(*) filter (where split = 'validation') as validation, count(*) as rows "
        f"from {t} where generation = ? group by source, family order by source desc, family",
        [generation],
    )
    if per_source.height == 0:
        return {"stored": False, "note": f"no {MIX_TABLE} rows stored for generation {generation}"}
    origins = wh.sql(
        f"select origin_generation, count(*) as rows from {t} where generation = ? and source = 'synthetic' "
        "group by 1 order by 1",
        [generation],
    )
    licences = wh.sql(
        f"select source, task_source, license, count(*) as rows from {t} where generation = ? "
        "group by 1, 2, 3 order by 1 desc, 2, 3",
        [generation],
    )
    generators = wh.sql(
        f"select generator, model, model_terms, count(*) as rows from {t} where generation = ? "
        "and source = 'synthetic' group by 1, 2, 3 order by rows desc, 1, 2",
        [generation],
    )
    verifiers = wh.sql(
        f"select verifier, count(*) as rows from {t} where generation = ? and source = 'synthetic' "
        "group by 1 order by rows desc, 1",
        [generation],
    )
    share, unit = human_share_of(wh.read(MIX_TABLE, generation=generation))
    token_share = round(share, 4) if unit == "response tokens" else None  # a mix whose floor counted tokens
    synthetic = int(per_source.filter(pl.col("source") == "synthetic")["rows"].sum())
    human = int(per_source.filter(pl.col("source") == "human")["rows"].sum())
    total = int(per_source["rows"].sum())
    return {
        "stored": True,
        "rows": total,
        "synthetic_rows": synthetic,
        "human_rows": human,
        "human_share": round(human / total, 4) if total else 0.0,
        "human_token_share": token_share,
        "origin_generations": origins.to_dicts(),
        "per_source": per_source.to_dicts(),
        "licences": licences.to_dicts(),
        "generators": generators.to_dicts(),
        "verifiers": verifiers.to_dicts(),
    }


def _canary_facts(wh: Warehouse, generations: list[int]) -> dict:
    """Per generation whose rows are in the mix, and per verifier: its canaries' verdicts."""
    if not generations:
        return {"measured": False, "note": "no synthetic rows in the mix: no verifier admitted any", "verifiers": []}
    if not wh.table_exists(CANARY_TABLE):
        return {
            "measured": False,
            "note": f"not measured: no {CANARY_TABLE} table (verified_set stores the canaries it runs)",
            "verifiers": [],
        }
    df = wh.read(CANARY_TABLE, generations=generations)
    if df.height == 0:
        return {
            "measured": False,
            "note": f"not measured: no canaries stored for generation(s) {', '.join(map(str, generations))}",
            "verifiers": [],
        }
    rows = []
    keys = ["generation", "verifier", "verifier_version"]
    for key, part in df.sort(keys).group_by(keys, maintain_order=True):
        unproven = part.filter(pl.col("actual") == UNPROVEN)
        ran = part.filter(pl.col("actual") != UNPROVEN)
        right = sum(verdict_matches(e or "", a or "") for e, a in ran.select("expected", "actual").rows())
        wrong = ran.height - right  # recomputed from the verdicts, never the stored flag
        result = "WRONG" if wrong else "unproven" if not ran.height else "proven"
        rows.append(
            dict(zip(keys, key))
            | {"canaries": part.height, "right": right, "wrong": wrong, "unproven": unproven.height, "result": result}
        )
    return {"measured": True, "note": "", "verifiers": rows}


def _drift_facts(wh: Warehouse, generation: int | None) -> dict:
    if generation is None:
        return {"measured": False, "note": "not trained on a mix (the packaged model)"}
    if not wh.table_exists(DRIFT_TABLE):
        return {"measured": False, "note": f"not measured: no {DRIFT_TABLE} table"}
    df = wh.sql(
        f"select corpus, metric, status, note from {wh.schema}.{DRIFT_TABLE} where generation = ? "
        "order by corpus, metric",
        [generation],
    )
    if df.height == 0:
        return {"measured": False, "note": f"not measured: no drift report for generation {generation}"}
    statuses = set(df["status"].to_list())
    worst = next((s for s in _WORST_DRIFT if s in statuses), "ok")
    flagged = df.filter(pl.col("status").is_in(_WORST_DRIFT))
    counts = df.group_by("status").len().sort("status")
    return {
        "measured": True,
        "note": "",
        "generation": generation,
        "status": worst,
        "status_counts": {s: int(n) for s, n in counts.iter_rows()},
        "flagged": flagged.to_dicts(),
    }


def _frontier_facts(wh: Warehouse, model: dict) -> dict:
    keys = [model["model_id"]] + ([model["base_model"]] if model.get("kind") == "base" and model["base_model"] else [])
    if not wh.table_exists(FRONTIER_TABLE):
        return {"measured": False, "note": "not measured for this model (bench/frontier.py measures one)", "rows": []}
    df = wh.sql(
        f"select * from {wh.schema}.{FRONTIER_TABLE} where model_id in (select unnest(?)) order by family", [keys]
    )
    if df.height == 0:
        return {"measured": False, "note": "not measured for this model", "rows": []}
    cols = ("family", "items", "greedy_rate", "greedy_low", "greedy_high", "pass_at_k", "status")
    return {"measured": True, "note": "", "rows": df.select([c for c in cols if c in df.columns]).to_dicts()}


def _score_rows(scores: dict | None) -> list[dict]:
    rows = []
    for key, value in (scores or {}).items():
        family, _, variant = key.rpartition("/")
        rows.append({"family": family, "variant": variant} | value)
    return rows


def card_facts(wh: Warehouse, source: CardSource) -> dict:
    """Every fact the card states, JSON-ready (``model_card.json`` is exactly this)."""
    m = source.model
    generation = m.get("mix_generation")
    hyper = _loads(m.get("hyperparameters")) or {}
    mix = _mix_facts(wh, generation)
    origins = [r["origin_generation"] for r in mix.get("origin_generations", []) if r["origin_generation"] is not None]
    scores = _score_rows(_loads(m.get("scores")))
    reason = m.get("reason") or ""
    parent = source.parent
    return {
        "card_version": CARD_VERSION,
        "model_id": m["model_id"],
        "kind": m.get("kind"),
        "created_at": _iso(m.get("created_at")),
        "base_model": {"name": m.get("base_model"), "hub_id": hub_id(m.get("base_model"))},
        "parent": (
            {
                "model_id": parent["model_id"],
                "kind": parent.get("kind"),
                "status": parent.get("status"),
                "mix_generation": parent.get("mix_generation"),
                "train_rows_hash": parent.get("train_rows_hash"),
            }
            if parent
            else ({"model_id": m.get("parent_id")} if m.get("parent_id") else None)
        ),
        "training_data": {
            "mix_generation": generation,
            "origin_generations": origins,
            "train_rows_hash": m.get("train_rows_hash"),
            "objective": hyper.get("objective", "sft"),
            "train_rows": m.get("train_rows"),
            "validation_rows": m.get("validation_rows"),
            "train_tokens": m.get("train_tokens"),
            "target_tokens": m.get("target_tokens"),
            "mix": mix,
        },
        "verification": {
            "verifiers": mix.get("verifiers", []),
            "canaries": (
                _canary_facts(wh, origins)
                if generation is not None
                else {"measured": False, "note": mix["note"], "verifiers": []}
            ),
            "filter_drops": (
                [{"reason": r, "rows": n} for r, n in drops_by_reason(wh, generation).items()]
                if generation is not None
                else []
            ),
        },
        "training": {
            "hyperparameters": hyper,
            "prompt_settings": _loads(m.get("prompt_settings")) or {},
            "loss_curve": _loads(m.get("loss_curve")) or [],
            "wall_s": m.get("wall_s"),
        },
        "evaluation": {
            "scores": [r for r in scores if r["family"] != MACRO],
            "macro": next((r for r in scores if r["family"] == MACRO), None),
        },
        "frontier": _frontier_facts(wh, m),
        "drift": _drift_facts(wh, generation),
        "decision": {
            "status": m.get("status"),
            "reason": reason,
            "reasons": [r for r in reason.split("; ") if r],
            "decided_at": _iso(m.get("decided_at")),
            "in_service": source.in_service == m["model_id"],
            "model_in_service": source.in_service,
            "serving_log": [
                {"served_from": _iso(r["served_from"]), "action": r["action"], "reason": r["reason"]}
                for r in source.serving
            ],
        },
        "artefacts": {
            "adapter_dir": m.get("adapter_dir"),
            "adapter_gguf": m.get("adapter_path"),
            "gguf": m.get("gguf_path"),
            "endpoint_base_url": m.get("endpoint_base_url"),
            "endpoint_model": m.get("endpoint_model"),
        },
    }


# ------------------------------------------------------------------ rendering
def _rate(x: Any) -> str:
    return "" if x is None else f"{x:.3f}"


def _interval(low: Any, high: Any) -> str:
    return "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _table(rows: list[dict], cols: list[str], empty: str = "_none_") -> str:
    if not rows:
        return empty
    return markdown_table(pl.DataFrame(rows, infer_schema_length=None), cols, empty=empty, width=80)


def model_index(facts: dict) -> list[dict]:
    """The Hub's ``model-index``: one result per held-out family and variant (greedy pass rate,
    its 95% interval and item count as the metric's args)."""
    results = []
    for r in facts["evaluation"]["scores"]:
        if r.get("rate") is None:
            continue
        args = {k: r[k] for k in ("low", "high", "n", "parent_rate") if r.get(k) is not None}
        results.append(
            {
                "task": {"type": "text-generation", "name": f"held-out reasoning ({r['variant']})"},
                "dataset": {
                    "type": "reasoning_gym",
                    "name": f"held-out {r['family']} ({r['variant']})",
                    "config": r["family"],
                    "split": r["variant"],
                },
                "metrics": [
                    {"type": "accuracy", "value": round(float(r["rate"]), 4), "name": "greedy pass rate", "args": args}
                ],
            }
        )
    return [{"name": facts["model_id"], "results": results}]


def front_matter(facts: dict) -> dict:
    """The YAML front matter, in the Hugging Face model-card metadata keys."""
    kind = facts["kind"]
    base = facts["base_model"]["hub_id"]
    g = facts["training_data"]["mix_generation"]
    families = sorted({r["family"].split("@")[0] for r in facts["training_data"]["mix"].get("per_source", [])})
    out: dict[str, Any] = {"base_model": base}
    if kind == "base":
        out["base_model_relation"] = "quantized"  # the packaged GGUF of the Hub model
    elif facts["artefacts"]["adapter_gguf"] or facts["artefacts"]["adapter_dir"]:
        out["base_model_relation"] = "adapter"
    out |= {
        "library_name": "gguf" if kind == "base" else "peft",
        "license": "gemma" if base and "gemma" in base.lower() else "other",
        "language": ["en"],
        "pipeline_tag": "text-generation",
        "datasets": [f"synth-platform-mix-g{g}"] if g is not None else [],
        "tags": list(
            dict.fromkeys(
                ["synth-platform"]
                + ([] if kind == "base" else ["synthetic-data", "verified-data"])
                + [kind or "model", facts["decision"]["status"]]
                + (["gguf"] if facts["artefacts"]["adapter_gguf"] or facts["artefacts"]["gguf"] else [])
                + families
            )
        ),
        "model-index": model_index(facts),
    }
    return out


def _parent_line(parent: dict | None) -> str:
    if not parent:
        return "- parent: none (the root of every lineage)"
    g = parent.get("mix_generation")
    about = [x for x in (parent.get("status"), f"trained on generation {g}'s mix" if g is not None else None) if x]
    return f"- parent: `{parent['model_id']}`" + (f" ({', '.join(about)})" if about else "")


def _lineage(facts: dict) -> str:
    td, parent = facts["training_data"], facts["parent"]
    lines = [
        f"- base model: `{facts['base_model']['name']}`",
        _parent_line(parent),
        f"- kind: {facts['kind']}; registered {_when(facts['created_at'], 'at an unknown time')}",
    ]
    if td["mix_generation"] is not None:
        origins = ", ".join(map(str, td["origin_generations"])) or "none"
        what = "preference pairs" if td["objective"] == "dpo" else "mix"
        lines += [
            f"- trained on the {what} of generation **{td['mix_generation']}** (its mix holds synthetic rows from "
            f"generations {origins}), objective `{td['objective']}`",
            f"- rows hash (SHA-256 of the exact training rows): `{td['train_rows_hash']}`",
            f"- rows trained on: {td['train_rows']} train, {td['validation_rows']} validation"
            + (f"; {td['train_tokens']} tokens" if td["train_tokens"] else ""),
        ]
    return "\n".join(lines)


def _data(facts: dict) -> str:
    mix = facts["training_data"]["mix"]
    if not mix["stored"]:
        return f"_{mix['note']}_\n"
    g = facts["training_data"]["mix_generation"]
    return f"""The mix of generation {g} (`synth-platform-mix-g{g}` above; `synth models export` writes it with its \
dataset card under `dataset/`) holds {mix["rows"]} rows: {mix["synthetic_rows"]} synthetic, {mix["human_rows"]} human \
(human share **{mix["human_share"]:.1%}** of rows{_token_share(mix)}). Training used its train split \
(validation for early stopping); the rows hash above names the exact rows.

### Rows per source

{_table(mix["per_source"], ["source", "family", "train", "validation", "rows"])}

Synthetic rows by the generation that made them:

{_table(mix["origin_generations"], ["origin_generation", "rows"])}

### Licences

Every row keeps the licence of its source; use of the model must honour all of them.

{_table(mix["licences"], ["source", "task_source", "license", "rows"])}

### Models that wrote the synthetic rows

Their terms of use apply to the outputs and to a model trained on them.

{_table(mix["generators"], ["generator", "model", "model_terms", "rows"])}
"""


def _verification(facts: dict) -> str:
    v = facts["verification"]
    canaries = v["canaries"]
    canary_text = (
        _table(
            canaries["verifiers"],
            ["generation", "verifier", "verifier_version", "canaries", "right", "wrong", "unproven", "result"],
        )
        if canaries["measured"]
        else f"_{canaries['note']}_"
    )
    return f"""Every synthetic row passed an automatic check before it was kept.

### Verifiers that admitted the rows

{_table(v["verifiers"], ["verifier", "rows"])}

### Canaries

Inputs whose verdict is known, run through each verifier in the generation its rows come from
(a verifier with a wrong canary stops its generation):

{canary_text}

### Filters

Candidates removed in the generations of this mix, by reason:

{_table(v["filter_drops"], ["reason", "rows"])}
"""


def _settings(values: dict) -> list[dict]:
    """Settings as table rows, every value as text (a settings dict mixes numbers, text and lists)."""
    return [
        {"setting": k, "value": json.dumps(v) if isinstance(v, (dict, list)) else "" if v is None else str(v)}
        for k, v in values.items()
    ]


def _training(facts: dict, chart: str | None) -> str:
    t = facts["training"]
    curve = t["loss_curve"]
    curve_cols = [c for c in ("epoch", "step", "train_loss", "validation_loss") if curve and c in curve[0]]
    wall = f"Wall time: {t['wall_s']:.0f} s.\n\n" if t["wall_s"] is not None else ""
    image = f"![loss curve]({chart})\n\n" if chart else ""
    return f"""{wall}{_table(_settings(t["hyperparameters"]), ["setting", "value"], empty="_not recorded_")}

Prompt format (the one the model is prompted with when it generates):

{_table(_settings(t["prompt_settings"]), ["setting", "value"], empty="_not recorded_")}

### Loss curve

{image}{_table(curve, curve_cols, empty="_none reported_")}
"""


def _evaluation(facts: dict) -> str:
    e = facts["evaluation"]
    rows = [
        {
            "family": r["family"],
            "variant": r["variant"],
            "n": r.get("n"),
            "pass rate": _rate(r.get("rate")),
            "95% interval": _interval(r.get("low"), r.get("high")),
            "parent": _rate(r.get("parent_rate")),
            "parent 95%": _interval(r.get("parent_low"), r.get("parent_high")),
            "most common answer": _rate(r.get("most_common_rate")),
            "last shot's answer": _rate(r.get("last_shot_rate")),
            "p vs parent": "" if r.get("p_vs_parent") is None else f"{r['p_vs_parent']:.4f}",
            "flag": r.get("flag") or "",
        }
        for r in e["scores"]
    ]
    macro = e["macro"]
    macro_text = (
        f"Macro-average over families (held-out variant): **{_rate(macro.get('rate'))}** against the parent's "
        f"{_rate(macro.get('parent_rate'))}" + (f" ({macro['flag']})" if macro.get("flag") else "") + ".\n\n"
        if macro
        else ""
    )
    frontier, drift = facts["frontier"], facts["drift"]
    frontier_text = (
        _table(frontier["rows"], list(frontier["rows"][0])) if frontier["measured"] else f"_{frontier['note']}_"
    )
    if drift["measured"]:
        counts = ", ".join(f"{s} {n}" for s, n in drift["status_counts"].items())
        drift_text = f"Generation {drift['generation']}'s drift report: **{drift['status']}** ({counts}).\n\n" + (
            _table(drift["flagged"], ["corpus", "metric", "status", "note"]) if drift["flagged"] else ""
        )
    else:
        drift_text = f"_{drift['note']}_"
    return f"""Greedy pass rates on held-out reasoning-gym items (seeds no training stage uses; decontaminated
against the mix), as trained, harder and rephrased, paired with the parent on the same items,
beside two trivial baselines (always the most common answer, always the last few-shot example's
answer); 95% Wilson intervals, exact McNemar p-values.

{_table(rows, list(rows[0]) if rows else [], empty="_not evaluated yet_")}

{macro_text}### Capability frontier

{frontier_text}

### Drift

{drift_text}
"""


def _decision(facts: dict) -> str:
    d = facts["decision"]
    status = d["status"]
    text = STATUS_TEXT.get(status, status).format(id=facts["model_id"])
    reasons = "\n".join(f"  - {r}" for r in d["reasons"]) or "  - (none recorded)"
    log = [r | {"served_from": _when(r["served_from"])} for r in d["serving_log"]]
    served = _table(log, ["served_from", "action", "reason"], empty="_it has never served_")
    return f"""- status: **{status}** ({text})
- decided: {_when(d["decided_at"])}
- reasons (the gate's, or the person's who approved or rejected it):
{reasons}
- in service now: {"**yes**" if d["in_service"] else f"no (the model in service is `{d['model_in_service']}`)"}

When it served (the serving log):

{served}
"""


def _files(facts: dict, files: list[str] | None) -> str:
    a = facts["artefacts"]
    lines = [
        f"- {label}: `{a[key]}`"
        for key, label in (
            ("adapter_dir", "PEFT adapter"),
            ("adapter_gguf", "GGUF adapter (llama.cpp)"),
            ("gguf", "GGUF weights"),
            ("endpoint_base_url", "OpenAI-compatible endpoint"),
            ("endpoint_model", "endpoint model"),
        )
        if a.get(key)
    ]
    registered = "\n".join(lines) or "- none (the packaged model)"
    here = (
        "\n\nIn this folder: " + ", ".join(f"`{f}`" for f in files) + ". The PEFT files load with "
        "`peft.PeftModel.from_pretrained` on the base model; the `.gguf` adapter with llama.cpp's `--lora`; "
        "`dataset/` holds the training mix and its dataset card."
        if files
        else ""
    )
    return f"Where the registry keeps it:\n\n{registered}{here}\n"


def render_card(facts: dict, chart: str | None = None, files: list[str] | None = None) -> str:
    """The card: YAML front matter, then the sections a reviewer, an auditor or the Hub reads."""
    front = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"""---
{front}---

# {facts["model_id"]}

{card_summary(facts)}

## Lineage

{_lineage(facts)}

## Training data

{_data(facts)}
## Verification and filters

{_verification(facts)}
## Training

{_training(facts, chart)}
## Evaluation

{_evaluation(facts)}
## Decision

{_decision(facts)}
## Files

{_files(facts, files)}"""


def card_summary(facts: dict) -> str:
    """A few lines: the asset pages' metadata and ``synth models show``."""
    td, d = facts["training_data"], facts["decision"]
    mix = td["mix"]
    lines = [
        f"**{facts['model_id']}** ({facts['kind']}, {d['status']}{', in service' if d['in_service'] else ''}); "
        f"parent `{(facts['parent'] or {}).get('model_id') or '-'}`, base `{facts['base_model']['hub_id']}`",
    ]
    if td["mix_generation"] is not None:
        lines.append(
            f"- trained on generation {td['mix_generation']}'s mix: {td['train_rows']} train / "
            f"{td['validation_rows']} validation rows, rows hash `{(td['train_rows_hash'] or '')[:16]}`"
        )
    if mix.get("stored"):
        synth = ", ".join(f"{r['family']} {r['rows']}" for r in mix["per_source"] if r["source"] == "synthetic")
        licences = ", ".join(sorted({str(r["license"]) for r in mix["licences"]}))
        lines.append(
            f"- mix: {mix['synthetic_rows']} synthetic ({synth or 'none'}), {mix['human_rows']} human; "
            f"licences: {licences}"
        )
    canaries = facts["verification"]["canaries"]
    if canaries["measured"]:
        results = [r["result"] for r in canaries["verifiers"]]
        lines.append(
            f"- canaries: {results.count('proven')} verifier(s) proven, {results.count('WRONG')} wrong, "
            f"{results.count('unproven')} unproven"
        )
    else:
        lines.append(f"- canaries: {canaries['note']}")
    macro = facts["evaluation"]["macro"]
    lines.append(
        f"- held-out macro pass rate {_rate(macro.get('rate'))} (parent {_rate(macro.get('parent_rate'))})"
        if macro
        else "- held-out: not evaluated yet"
    )
    drift = facts["drift"]
    lines.append(f"- drift: {drift['status'] if drift['measured'] else drift['note']}")
    lines.append(
        f"- decision: {d['status']}" + (f" ({d['reason']})" if d["reason"] else "") + f", {_when(d['decided_at'])}"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------ files
def _write(path: Path, data: bytes) -> None:
    """Under a temporary name, then renamed: a reader never sees half a card."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_card(
    wh: Warehouse,
    source: CardSource,
    out_dir: str | Path | None = None,
    redraw: bool = False,
    name: str = CARD_MD,
    files: list[str] | None = None,
) -> WrittenCard:
    """The card (``name``), its JSON and the loss chart in ``out_dir`` (default: the model's
    artefact folder). The chart is drawn when missing, or again with ``redraw``."""
    folder = Path(out_dir) if out_dir is not None else card_dir(wh, source.model)
    folder.mkdir(parents=True, exist_ok=True)
    facts = card_facts(wh, source)
    png = folder / LOSS_PNG
    curve = facts["training"]["loss_curve"]
    if curve and (redraw or not png.exists()):
        drawn = loss_chart_png(curve)
        if drawn:
            _write(png, drawn)
    chart = LOSS_PNG if curve and png.exists() else None
    if files is not None and chart:
        files = [*files, LOSS_PNG]
    md, js = folder / name, folder / CARD_JSON
    _write(md, render_card(facts, chart, files).encode("utf-8"))
    _write(js, (json.dumps(facts, indent=2, default=str) + "\n").encode("utf-8"))
    return WrittenCard(md, js, card_summary(facts), facts)


def export_model(wh: Warehouse, source: CardSource, out_dir: str | Path) -> dict[str, str]:
    """One folder a user uploads or hands on: the PEFT adapter's files and the GGUF adapter (or
    weights) at its top, the card as ``README.md`` (the name the Hub reads) with its JSON and
    chart, and the training mix with its dataset card under ``dataset/``."""
    m = source.model
    mid = m["model_id"]
    if m.get("kind") == "base":
        raise SynthConfigError(
            f"synth models export: {mid} is the packaged model, nothing was trained; export a trained model "
            "(see `synth models list`)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copied: list[str] = []
    if m.get("adapter_dir"):
        src = Path(m["adapter_dir"])
        if not src.is_dir():
            raise SynthConfigError(f"synth models export: {mid}'s PEFT adapter folder {src} does not exist")
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name != HUB_CARD:  # PEFT's generated README: the model card replaces it
                shutil.copy2(f, out / f.name)
                copied.append(f.name)
    for key in ("adapter_path", "gguf_path"):
        if m.get(key):
            src = Path(m[key])
            if not src.is_file():
                raise SynthConfigError(f"synth models export: {mid}'s {key.replace('_', ' ')} {src} does not exist")
            shutil.copy2(src, out / src.name)
            copied.append(src.name)
    paths = {"folder": str(out), "files": ", ".join(copied)}
    generation = m.get("mix_generation")
    mix = wh.read(MIX_TABLE, generation=generation) if generation is not None and wh.table_exists(MIX_TABLE) else None
    if mix is not None and mix.height:
        data = publish(wh, mix, generation, out / "dataset")
        paths["dataset_card"] = data["card"]
        copied.append("dataset/")
    card = write_card(wh, source, out, name=HUB_CARD, files=[*copied, HUB_CARD, CARD_JSON])
    paths |= {"card": str(card.markdown), "card_json": str(card.json)}
    return paths
