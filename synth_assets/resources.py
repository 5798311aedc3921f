"""Configurable resources: the DuckDB warehouse, generators, the code sandbox, task sources.

Defaults can be overridden by environment variables (read when the definitions load), by the
Launchpad's resource config, or by passing other instances to ``materialize()`` in tests.
"""


import os
from abc import ABC, abstractmethod
from typing import Optional

import dagster as dg
import polars as pl
from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generation import TextGenerator
from synth_assets.core.sandbox import Sandbox, SandboxLimits
from synth_assets.core.warehouse import Warehouse, default_duckdb_path


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file (default ``$SYNTH_DUCKDB_PATH`` or ``$DAGSTER_HOME/warehouse.duckdb``)."""

    path: Optional[str] = Field(default=None, description="DuckDB file; default from SYNTH_DUCKDB_PATH")
    db_schema: str = Field(default="synth", description="schema holding the tables")

    def get(self) -> Warehouse:
        return Warehouse(self.path or default_duckdb_path(), self.db_schema)


class GenerationalIOManager(dg.ConfigurableIOManager):
    """Stores each asset in its own DuckDB table, keeping history by generation.

    Asset metadata ``storage`` picks the mode: ``snapshot`` replaces the table, ``generational``
    replaces only the current generation's rows. Inputs load the current generation, or all
    generations up to it when the input's metadata says ``generations: all``.
    """

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        table = context.asset_key.path[-1]
        wh = self.warehouse.get()
        if (context.definition_metadata or {}).get("storage", "generational") == "snapshot":
            wh.replace_table(table, obj)
        else:
            gens = obj["generation"].unique().to_list() if obj.height else []
            generation = int(gens[0]) if gens else wh.current_generation()
            wh.write_generation(table, obj, generation)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        table = context.upstream_output.asset_key.path[-1]
        wh = self.warehouse.get()
        upstream_meta = context.upstream_output.definition_metadata or {}
        if upstream_meta.get("storage", "generational") == "snapshot":
            return wh.read(table)
        current = wh.current_generation()
        if (context.definition_metadata or {}).get("generations") == "all":
            return wh.read(table, upto=current)
        return wh.read(table, generation=current)


class GeneratorResource(dg.ConfigurableResource, ABC):
    """A source of completions. Backends implement ``build``; assets never care which one."""

    @abstractmethod
    def build(self) -> TextGenerator: ...


class LlamaCppGeneratorResource(GeneratorResource):
    """The embedded default: Gemma 3 270M on llama.cpp, on the CPU, no network."""

    model_path: Optional[str] = Field(
        default=None, description="a GGUF file; default: the packaged Gemma 3 270M (SHA256-checked)"
    )
    n_ctx: int = Field(default=2048, description="context window in tokens")
    n_threads: Optional[int] = Field(default=None, description="CPU threads; default all cores")
    model_terms: Optional[str] = Field(
        default=None, description="licence/terms of the model, written on every row and the dataset card; "
        "default: Gemma Terms of Use for the packaged model")

    def build(self) -> TextGenerator:
        from synth_assets.core.llama_backend import LlamaCppGenerator

        return LlamaCppGenerator(model_path=self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                 terms=self.model_terms)


class SandboxResource(dg.ConfigurableResource):
    """Bubblewrap isolation for model-written code. Turning it off is explicit and logged."""

    enabled: bool = Field(default=True, description="False runs model code unsandboxed (unsafe)")
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 16
    workers: Optional[int] = Field(default=None, description="parallel sandboxes; default all cores")
    python_executable: Optional[str] = Field(default=None, description="interpreter under /usr to run code")

    def build(self) -> Sandbox:
        limits = SandboxLimits(self.timeout_s, self.cpu_s, self.memory_mb, self.max_processes, self.max_file_mb)
        return Sandbox(limits, enabled=self.enabled, python_executable=self.python_executable, workers=self.workers)


class HumanEvalSplitResource(dg.ConfigurableResource):
    """One deterministic split of HumanEval (by task id) shared by the three root assets."""

    human_fraction: float = Field(default=0.3, description="share of tasks whose solutions are human data")
    heldout_fraction: float = Field(default=0.2, description="share of tasks held out for evaluation")

    def validate_split(self) -> None:
        from synth_assets.core.tasks import humaneval_split

        humaneval_split("probe", self.human_fraction, self.heldout_fraction)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "on", "yes"):
        return True
    if raw.lower() in ("0", "false", "off", "no"):
        return False
    raise SynthConfigError(f"environment variable {name}={raw!r}: use on or off")


def default_resources() -> dict:
    """The production resources, with environment overrides applied."""
    warehouse = WarehouseResource(path=os.environ.get("SYNTH_DUCKDB_PATH") or None)
    return {
        "warehouse": warehouse,
        "io_manager": GenerationalIOManager(warehouse=warehouse),
        "generator": LlamaCppGeneratorResource(model_path=os.environ.get("SYNTH_MODEL_PATH") or None),
        "sandbox": SandboxResource(enabled=_env_bool("SYNTH_SANDBOX", True)),
        "humaneval_split": HumanEvalSplitResource(
            human_fraction=float(os.environ.get("SYNTH_HUMANEVAL_HUMAN_FRACTION", 0.3)),
            heldout_fraction=float(os.environ.get("SYNTH_HUMANEVAL_HELDOUT_FRACTION", 0.2)),
        ),
    }
