"""Every model the loop made, its lineage, its scores, and which one is in service, in DuckDB.

Three tables in the warehouse's schema:

* ``model_registry``: one row per model (the packaged base model is the root, ``base``), with
  its parent, the mix generation and a hash of its exact training rows, counts,
  hyperparameters, loss curve, artefacts, scores and status (candidate, promoted, rejected,
  awaiting_approval) with the reason.
* ``model_serving``: an append-only log of which model serves (promotion, approval, pin,
  rollback); the newest row is the model in service. Nothing is ever overwritten, so every
  earlier state can be restored with one command (``synth models serve <id>``).
* ``model_item_scores``: each model's greedy answer on each held-out item, computed once.

Status changes and the serving log are written in one transaction: a failed step leaves the
registry and the model in service as they were.

Every write that changes what a model's card says (registration, scores, a decision, a pin or a
rollback) rewrites its card beside its adapter afterwards (``core/training/model_card.py``); a
card that cannot be written is a warning, never a failed decision (the decision is committed).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.llama_backend import MODEL_ID
from synth_assets.core.settings import Settings
from synth_assets.core.warehouse import Warehouse

if TYPE_CHECKING:
    from synth_assets.core.training.model_card import CardSource, WrittenCard

BASE_ID = "base"
STATUSES = ("candidate", "promoted", "rejected", "awaiting_approval")

REGISTRY_SCHEMA: dict[str, pl.DataType] = {
    "model_id": pl.String,
    "parent_id": pl.String,
    "base_model": pl.String,
    "kind": pl.String,  # base | lora | external_gguf | external_endpoint
    "mix_generation": pl.Int64,
    "train_rows_hash": pl.String,
    "train_rows": pl.Int64,
    "validation_rows": pl.Int64,
    "train_tokens": pl.Int64,
    "target_tokens": pl.Int64,
    "hyperparameters": pl.String,  # JSON, seed included
    "prompt_settings": pl.String,  # JSON: the prompt format it was trained in
    "loss_curve": pl.String,  # JSON list of {epoch, step, train_loss, validation_loss}
    "wall_s": pl.Float64,
    "gguf_path": pl.String,  # base weights llama.cpp loads (null: the packaged model)
    "adapter_path": pl.String,  # LoRA GGUF llama.cpp applies
    "adapter_dir": pl.String,  # the PEFT adapter (what a child continues from)
    "endpoint_base_url": pl.String,
    "endpoint_model": pl.String,
    "scores": pl.String,  # JSON: per family/variant rate and 95% interval
    "status": pl.String,
    "reason": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "decided_at": pl.Datetime("us", "UTC"),
}
SERVING_SCHEMA = {
    "served_from": pl.Datetime("us", "UTC"),
    "model_id": pl.String,
    "action": pl.String,
    "reason": pl.String,
}


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    kind: str
    status: str
    gguf_path: str | None
    adapter_path: str | None
    adapter_dir: str | None
    endpoint_base_url: str | None
    endpoint_model: str | None
    parent_id: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.t = f"{wh.schema}.model_registry"
        self.s = f"{wh.schema}.model_serving"
        self._ready = False  # the tables exist: checked once per instance, not on every read

    def _ensure(self) -> None:
        if self._ready or self.wh.table_exists("model_registry"):
            self._ready = True
            return
        base = dict.fromkeys(REGISTRY_SCHEMA) | {
            "model_id": BASE_ID,
            "base_model": MODEL_ID,
            "kind": "base",
            "status": "promoted",
            "reason": "the packaged model: the root of every lineage",
            "created_at": _now(),
            "decided_at": _now(),
        }
        rows = pl.DataFrame([base], schema=REGISTRY_SCHEMA).to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        serving = pl.DataFrame(  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
            [
                {
                    "served_from": _now(),
                    "model_id": BASE_ID,
                    "action": "initial",
                    "reason": "no model trained yet",
                }
            ],
            schema=SERVING_SCHEMA,
        ).to_arrow()
        with self.wh.transaction() as con:
            con.execute(f"create table if not exists {self.t} as select * from rows limit 0")
            if not con.execute(f"select count(*) from {self.t} where model_id = ?", [BASE_ID]).fetchone()[0]:
                con.execute(f"insert into {self.t} by name select * from rows")
            con.execute(f"create table if not exists {self.s} as select * from serving limit 0")
            if not con.execute(f"select count(*) from {self.s}").fetchone()[0]:
                con.execute(f"insert into {self.s} by name select * from serving")
        self._ready = True

    # ------------------------------------------------------------ reads
    def models(self) -> pl.DataFrame:
        self._ensure()
        return self.wh.sql(f"select * from {self.t} order by created_at")

    def get(self, model_id: str) -> ModelRecord:
        self._ensure()
        df = self.wh.sql(f"select * from {self.t} where model_id = ?", [model_id])
        if df.height == 0:
            known = self.wh.sql(f"select model_id from {self.t} order by created_at")["model_id"].to_list()
            raise SynthConfigError(f"model registry: no model {model_id!r}; known models: {', '.join(known)}")
        r = df.row(0, named=True)
        return ModelRecord(
            r["model_id"],
            r["kind"],
            r["status"],
            r["gguf_path"],
            r["adapter_path"],
            r["adapter_dir"],
            r["endpoint_base_url"],
            r["endpoint_model"],
            r["parent_id"],
        )

    def serving(self) -> str:
        """The model in service: the newest entry of the serving log."""
        self._ensure()
        return str(self.wh.sql(f"select model_id from {self.s} order by served_from desc limit 1")["model_id"][0])

    def serving_log(self) -> pl.DataFrame:
        self._ensure()
        return self.wh.sql(f"select * from {self.s} order by served_from")

    # ------------------------------------------------------------ writes
    def register(self, row: dict) -> None:
        """Add a candidate (replacing an earlier attempt with the same id, e.g. a re-run)."""
        self._ensure()
        full = dict.fromkeys(REGISTRY_SCHEMA) | row | {"status": "candidate", "created_at": _now()}
        for k in ("hyperparameters", "prompt_settings", "loss_curve", "scores"):
            if full[k] is not None and not isinstance(full[k], str):
                full[k] = json.dumps(full[k])
        df = pl.DataFrame([full], schema=REGISTRY_SCHEMA).to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        with self.wh.transaction() as con:
            if con.execute(f"select count(*) from {self.s} where model_id = ?", [row["model_id"]]).fetchone()[0]:
                raise SynthConfigError(f"model registry: {row['model_id']} has served already; it is not replaced")
            con.execute(f"delete from {self.t} where model_id = ?", [row["model_id"]])
            con.execute(f"insert into {self.t} by name select * from df")
        self._refresh_cards([row["model_id"]], redraw=True)

    def set_scores(self, model_id: str, scores: dict) -> None:
        self._ensure()
        with self.wh.transaction() as con:
            con.execute(f"update {self.t} set scores = ? where model_id = ?", [json.dumps(scores), model_id])
        self._refresh_cards([model_id])

    def decide(self, model_id: str, status: str, reason: str) -> None:
        """Set a candidate's status; ``promoted`` also puts it in service, in the same transaction."""
        if status not in STATUSES:
            raise ValueError(status)
        record = self.get(model_id)
        if status == "promoted" and record.status == "rejected":
            raise SynthConfigError(f"model registry: {model_id} was rejected ({reason}); it cannot be promoted")
        before = self.serving()
        with self.wh.transaction() as con:
            con.execute(
                f"update {self.t} set status = ?, reason = ?, decided_at = ? where model_id = ?",
                [status, reason, _now(), model_id],
            )
            if status == "promoted":
                con.execute(f"insert into {self.s} values (?, ?, ?, ?)", [_now(), model_id, "promote", reason])
        self._refresh_cards([model_id] + ([before] if status == "promoted" else []))

    def serve(self, model_id: str, action: str, reason: str) -> None:
        """Put an existing promoted model (or the base) in service: a pin or a rollback."""
        record = self.get(model_id)
        if record.status != "promoted":
            raise SynthConfigError(
                f"model registry: {model_id} is {record.status}, not promoted; only a promoted "
                "model (or 'base') can serve. Approve it first: synth models approve "
                f"{model_id}"
            )
        before = self.serving()
        with self.wh.transaction() as con:
            con.execute(f"insert into {self.s} values (?, ?, ?, ?)", [_now(), model_id, action, reason])
        self._refresh_cards([model_id, before])

    # ------------------------------------------------------------ model cards
    def card_source(self, model_id: str) -> CardSource:
        """What the model's card states from the registry: its row, its parent's, its serving log."""
        from synth_assets.core.training.model_card import CardSource

        self._ensure()
        df = self.wh.sql(f"select * from {self.t} where model_id = ?", [model_id])
        if df.height == 0:
            self.get(model_id)  # raises, naming the known models
        model = df.row(0, named=True)
        parent = None
        if model["parent_id"]:
            p = self.wh.sql(f"select * from {self.t} where model_id = ?", [model["parent_id"]])
            parent = p.row(0, named=True) if p.height else None
        log = self.serving_log()
        return CardSource(model, parent, log.filter(pl.col("model_id") == model_id).to_dicts(), self.serving())

    def write_card(self, model_id: str, out_dir: str | Path | None = None, redraw: bool = False) -> WrittenCard:
        """Write the model's card (MODEL_CARD.md and model_card.json) beside its adapter, or in ``out_dir``."""
        from synth_assets.core.training.model_card import write_card

        return write_card(self.wh, self.card_source(model_id), out_dir, redraw=redraw)

    def _refresh_cards(self, model_ids: list[str], redraw: bool = False) -> None:
        for model_id in dict.fromkeys(model_ids):
            try:
                self.write_card(model_id, redraw=redraw)
            except (OSError, duckdb.Error, SynthConfigError) as exc:
                warnings.warn(
                    f"model registry: the model card of {model_id} was not rewritten ({exc}); the registry "
                    f"change stands. `synth models show {model_id}` writes the card again",
                    stacklevel=3,
                )

    # ------------------------------------------------------------ per-item scores
    def stored_scores(self, model_id: str, item_ids: list[str]) -> pl.DataFrame:
        """The model's stored answers on those of these items it was evaluated on (maybe none)."""
        if not self.wh.table_exists("model_item_scores"):
            return pl.DataFrame()
        df = self.wh.sql(
            f"select * from {self.wh.schema}.model_item_scores where model_id = ? and item_id in (select unnest(?))",
            [model_id, list(dict.fromkeys(item_ids))],
        )
        return df.unique("item_id", keep="last", maintain_order=True)

    def cached_scores(self, model_id: str, item_ids: list[str]) -> pl.DataFrame | None:
        """The model's stored answers on exactly these items, or None if any is missing."""
        df = self.stored_scores(model_id, item_ids)
        return df if df.height == len(set(item_ids)) else None

    def store_scores(self, scores: pl.DataFrame) -> None:
        if scores.height == 0:
            return
        arrow = scores.to_arrow()  # noqa: F841 - DuckDB reads it by this name in the SQL below (a replacement scan)
        t = f"{self.wh.schema}.model_item_scores"
        with self.wh.transaction() as con:
            con.execute(f"create table if not exists {t} as select * from arrow limit 0")
            model = scores["model_id"][0]
            ids = scores["item_id"].to_list()
            con.execute(f"delete from {t} where model_id = ? and item_id in (select unnest(?))", [model, ids])
            con.execute(f"insert into {t} by name select * from arrow")


class PromotionSettings(Settings):
    """Whether a passing candidate waits for a person before it serves."""

    require_approval: bool = Field(default=False, description="wait for 'synth models approve <id>' before serving")
