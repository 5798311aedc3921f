"""Configurable resources: the DuckDB warehouse, generators, the code sandbox, task sources.

Defaults can be overridden by environment variables (read when the definitions load), by the
Launchpad's resource config, or by passing other instances to ``materialize()`` in tests.
"""

import os
from abc import ABC, abstractmethod
from typing import Any, Literal, get_args

import dagster as dg
import polars as pl
from pydantic import Field, PrivateAttr

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import TextGenerator
from synth_assets.core.generators.llama_backend import BatchedWeights, LlamaSettings
from synth_assets.core.generators.openai_backend import EndpointSettings
from synth_assets.core.sandbox.sandbox import Sandbox, SandboxLimits
from synth_assets.core.scaling.ray_fanout import RaySettings
from synth_assets.core.training.registry import ModelRecord, Registry
from synth_assets.core.warehouse import Warehouse, default_duckdb_path


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file (default ``$SYNTH_DUCKDB_PATH`` or ``$DAGSTER_HOME/warehouse.duckdb``)."""

    path: str | None = Field(default=None, description="DuckDB file; default from SYNTH_DUCKDB_PATH")
    db_schema: str = Field(default="synth", description="schema holding the tables")

    def get(self) -> Warehouse:
        path = self.path.get_value() if isinstance(self.path, dg.EnvVar) else self.path  # outside a run
        return Warehouse(path or default_duckdb_path(), self.db_schema)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Name the run's process in its tags (when the run worker is this process: the
        in-process executor), so a run the daemon launched and a killer ended is found and
        marked failed (synth_assets/recovery.py): Dagster's default launcher cannot tell."""
        run = context.dagster_run
        if context.instance is None or run is None or os.environ.get("SYNTH_EXECUTOR") == "multiprocess":
            return
        from synth_assets.recovery import PID_TAG, process_tags

        if PID_TAG not in run.tags:
            context.instance.add_run_tags(run.run_id, process_tags())


class GenerationalIOManager(dg.ConfigurableIOManager):
    """Stores each asset in its own DuckDB table, keeping history by generation.

    Unpartitioned assets are snapshots: the table is replaced. Assets partitioned by generation
    write their partition's rows only (atomically), and inputs read the partitions the graph
    maps to them, never one later than the reading step's own generation. An input from a
    snapshot table that was never written (an optional source) loads as an empty frame.
    A source asset may name the table it observes in its metadata (``table``).
    """

    warehouse: WarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        table = context.asset_key.path[-1]
        wh = self.warehouse.get()
        if not context.has_asset_partitions:
            wh.replace_table(table, obj)
            return
        generation = int(context.asset_partition_key)
        if "generation" not in obj.columns:
            obj = obj.with_columns(pl.lit(generation, dtype=pl.Int64).alias("generation"))
        wh.write_generation(table, obj, generation)

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        table = (upstream.definition_metadata or {}).get("table") or upstream.asset_key.path[-1]
        wh = self.warehouse.get()
        if not context.has_asset_partitions:
            if not wh.table_exists(table):
                context.log.info(f"{table} has not been written yet: reading it as empty")
                return pl.DataFrame()
            return wh.read(table)
        keys = sorted(int(k) for k in context.asset_partition_keys)
        if context.has_partition_key:
            keys = [k for k in keys if k <= int(context.partition_key)]
        return wh.read(table, generations=keys)


class BuiltOnce(dg.ConfigurableResource):
    """A resource whose ``build()`` is heavy (a model, a sandbox with its cgroups): ``get()``
    builds it once per run process, on first use, and shares it with every later step;
    teardown closes it when the run's process is done."""

    _built: dict = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._built = {}

    def build(self) -> Any:
        raise NotImplementedError

    def get(self) -> Any:
        """What ``build()`` makes, built on first use in this run process and shared after."""
        if "built" not in self._built:
            self._built["built"] = self.build()
        return self._built["built"]

    def release(self) -> bool:
        """Close what ``build()`` made, if anything, so its memory goes back before a step that
        needs it more (training); a later ``get()`` builds it again. True when something was freed."""
        thing = self._built.pop("built", None)
        close = getattr(thing, "close", None)
        if callable(close):
            close()
        return thing is not None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.release()


class GeneratorResource(BuiltOnce, ABC):
    """A source of completions. Backends implement ``build``; assets call ``get``, which builds
    (loads the model) once per run process, on first use, and shares it with every later step;
    teardown releases it when the run's process is done."""

    @abstractmethod
    def build(self) -> TextGenerator: ...

    def get(self) -> TextGenerator:
        return super().get()

    def preflight(self) -> None:
        """What must hold before a run adds a generation and generates (``synth run`` calls it
        first): nothing by default; a model in service behind an endpoint must answer."""


class LlamaCppGeneratorResource(LlamaSettings, GeneratorResource):
    """The embedded default: Gemma 3 270M on llama.cpp, on the CPU, no network (the core's
    LlamaSettings), or the model the loop promoted.

    With a ``registry`` (the warehouse), the model is resolved when the run builds it: the
    model in service (the newest entry of the registry's serving log), or ``model_version``
    when set (a pin: a model id, or ``base``). The asset graph has no edge from the loop back
    to generation, so there is no cycle: a run uses what serves when it starts."""

    registry: WarehouseResource | None = Field(
        default=None, description="the warehouse holding the model registry; unset: always the base model"
    )
    model_version: str | None = Field(
        default=None, description="pin a registered model id (or 'base'); default: the model in service"
    )
    cache: bool = Field(
        default=True,
        description="keep samples in the DuckDB response cache, so a killed run's generation completes "
        "without sampling them again",
    )
    cache_path: str | None = Field(
        default=None, description="default SYNTH_RESPONSE_CACHE or response_cache.duckdb beside the warehouse"
    )

    def build(self) -> TextGenerator:
        gen = self._model()
        if not self.cache:
            return gen
        from synth_assets.core.generators.response_cache import CachedGenerator, default_cache_path

        return CachedGenerator(gen, self.cache_path or default_cache_path(), log=_resource_log)

    def served_record(self) -> ModelRecord | None:
        """The registry's record of the model this resource generates with: the model in service
        (or the pinned ``model_version``); None for the base model or an explicit ``model_path``."""
        if self.registry is None or self.model_path:
            return None
        wh = self.registry.get()
        if not self.model_version and not wh.table_exists("model_registry"):
            return None  # nothing trained yet: the base model
        reg = Registry(wh)
        model_id = self.model_version or reg.serving()
        if model_id == "base":
            return None
        record = reg.get(model_id)
        if record.status != "promoted" and not self.model_version:
            raise SynthConfigError(f"generator: {model_id} is in service but {record.status}")
        return record

    def preflight(self) -> None:
        """The model in service, when an endpoint serves it, answers (resolving it reads the registry)."""
        from synth_assets.core.training.loop import check_endpoint

        record = self.served_record()
        if record is not None:
            check_endpoint(record)

    def _model(self) -> TextGenerator:
        from synth_assets.core.generators.llama_backend import LlamaCppGenerator

        record = self.served_record()
        if record is not None:
            from synth_assets.core.training.loop import load_generator

            _resource_log(f"generator: serving {record.model_id} from the model registry")
            return load_generator(
                record,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                parallel=self.parallel,
                batched_weights=self.batched_weights,
                log=_resource_log,
            )
        return LlamaCppGenerator(
            model_path=self.model_path,
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            terms=self.model_terms,
            parallel=self.parallel,
            batched_weights=self.batched_weights,
            log=_resource_log,
        )


class OpenAIGeneratorResource(EndpointSettings, GeneratorResource):
    """Any OpenAI-compatible endpoint: vLLM, SGLang, Ollama, llama.cpp's server, hosted APIs
    (the core's EndpointSettings).

    Responses go to a DuckDB response cache as they arrive, so a killed run resumes without
    requesting completed samples again. The key is read from the variable ``api_key_env``
    names, at request time; it is never stored, logged or put in metadata."""

    cache: bool = Field(default=True, description="keep responses in the DuckDB response cache (resumable runs)")
    cache_path: str | None = Field(
        default=None, description="default SYNTH_RESPONSE_CACHE or response_cache.duckdb beside the warehouse"
    )
    ray_address: str | None = Field(
        default=None,
        description="send the requests from Ray tasks on this cluster "
        "(SYNTH_RAY_ADDRESS), for server fleets one client cannot keep busy",
    )
    ray_batch_requests: int = Field(
        default=64, ge=1, description="requests per Ray task (a task's samples stay together)"
    )

    def settings(self, where: str = "generator") -> EndpointSettings:
        s = EndpointSettings(**self.model_dump(include=set(EndpointSettings.model_fields)))
        s.validate(where)
        return s

    def build(self) -> TextGenerator:
        from synth_assets.core.generators.openai_backend import OpenAICompatibleGenerator
        from synth_assets.core.generators.response_cache import default_cache_path

        cache = (self.cache_path or default_cache_path()) if self.cache else None
        if self.ray_address:
            from synth_assets.core.scaling.ray_fanout import RayEndpointGenerator, RaySettings

            return RayEndpointGenerator(
                self.settings(),
                RaySettings(ray_address=self.ray_address),
                cache_path=cache,
                batch_requests=self.ray_batch_requests,
                log=_resource_log,
            )
        return OpenAICompatibleGenerator(self.settings(), cache_path=cache, log=_resource_log)


class ImportGeneratorResource(GeneratorResource):
    """Candidates produced elsewhere, read from JSONL/Parquet/CSV files (schema in the README)."""

    import_files: list[str] = Field(description="files with task_id, completion[, sample_index, model, ...]")
    model_terms: str | None = Field(default=None, description="licence/terms of the model that wrote them")

    def build(self) -> TextGenerator:
        from synth_assets.core.generators.import_backend import ImportedGenerator

        return ImportedGenerator(self.import_files, terms=self.model_terms)


class GeneratorMember(EndpointSettings, LlamaSettings, dg.Config):
    """One source in a mixture: a backend, its share of the samples, and what makes it distinct.
    Every setting of the member's backend (EndpointSettings or LlamaSettings) is available."""

    name: str = Field(description="recorded on every row as <backend>:<name>")
    share: float = Field(gt=0, description="relative share of the samples")
    backend: Literal["openai", "llama_cpp", "import", "in_service"] = Field(
        default="openai",
        description="'openai', 'llama_cpp', 'import', or 'in_service': the model the registry has in service "
        "(the embedded model with its adapter, or the endpoint that serves it), as the default generator",
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="overrides the plan's temperatures")
    prompt_template: str | None = Field(default=None, description="wraps each prompt; must contain {prompt}")
    base_url: str | None = Field(default=None, description="openai: e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(default=None, description="openai: the model name the endpoint serves")
    import_files: list[str] = Field(default=[], description="import: files with task_id, completion, ...")


class MixtureGeneratorResource(GeneratorResource):
    """Several generators in one run, each with a share (models, personas, temperatures)."""

    members: list[GeneratorMember] = Field(description="the generators and their shares")
    cache: bool = True
    cache_path: str | None = None
    registry: WarehouseResource | None = Field(
        default=None, description="the warehouse holding the model registry ('in_service' members resolve it)"
    )

    def _in_service(self, m: GeneratorMember) -> LlamaCppGeneratorResource:
        if self.registry is None:
            raise SynthConfigError(f"generator.members ({m.name}): an 'in_service' member needs the model registry")
        return LlamaCppGeneratorResource(
            **m.model_dump(include=set(LlamaSettings.model_fields)),
            registry=self.registry,
            cache=self.cache,
            cache_path=self.cache_path,
        )

    def preflight(self) -> None:
        for m in self.members:
            if m.backend == "in_service":
                self._in_service(m).preflight()

    def build(self) -> TextGenerator:
        from synth_assets.core.generators.mixture import Member, MixtureGenerator

        members = []
        for i, m in enumerate(self.members):
            where = f"generator.members[{i}] ({m.name})"
            if m.backend == "openai":
                if not m.base_url or not m.model:
                    raise SynthConfigError(f"{where}: an openai member needs base_url and model")
                gen = OpenAIGeneratorResource(
                    **m.model_dump(include=set(EndpointSettings.model_fields)),
                    cache=self.cache,
                    cache_path=self.cache_path,
                )
                gen.settings(where)
                built = gen.build()
            elif m.backend == "in_service":
                built = self._in_service(m).build()
            elif m.backend == "llama_cpp":
                built = LlamaCppGeneratorResource(
                    **m.model_dump(include=set(LlamaSettings.model_fields)),
                    cache=self.cache,
                    cache_path=self.cache_path,
                ).build()
            else:
                built = ImportGeneratorResource(import_files=m.import_files, model_terms=m.model_terms).build()
            varies = m.system_prompt or m.temperature is not None or m.prompt_template is not None
            members.append(Member(m.name, built, m.share, m.temperature, m.name if varies else "", m.prompt_template))
        return MixtureGenerator(members)


def _resource_log(message: str) -> None:
    import logging

    logging.getLogger("synth_assets").info(message)


class SandboxResource(RaySettings, BuiltOnce):
    """Bubblewrap isolation for model-written code. Turning it off is explicit and logged.
    With ``ray_address`` the sandboxes run on a Ray cluster's nodes (core/scaling/ray_fanout.py)."""

    enabled: bool = Field(default=True, description="False runs model code unsandboxed (unsafe)")
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    max_processes: int = 32
    max_file_mb: int = 16
    tmpfs_mb: int = Field(default=64, description="size cap of each program's writable /tmp (counted in memory_mb)")
    workers: int | None = Field(default=None, description="parallel sandboxes; default all cores")
    python_executable: str | None = Field(default=None, description="interpreter under /usr to run code")
    require_cgroups: bool = Field(
        default=False,
        description="refuse to start where one memory and process cap per program cannot be enforced (cgroups)",
    )

    def get(self) -> Sandbox:
        """One sandbox (its cgroups, its start-up checks) per run process, built on first use."""
        return super().get()

    def build(self) -> Sandbox:
        limits = SandboxLimits(
            self.timeout_s, self.cpu_s, self.memory_mb, self.max_processes, self.max_file_mb, tmpfs_mb=self.tmpfs_mb
        )
        if self.ray_address:
            from synth_assets.core.scaling.ray_fanout import RaySandbox

            return RaySandbox(
                RaySettings(**self.model_dump(include=set(RaySettings.model_fields))),
                limits,
                enabled=self.enabled,
                python_executable=self.python_executable,
                require_cgroups=self.require_cgroups,
                log=_resource_log,
            )
        return Sandbox(
            limits,
            enabled=self.enabled,
            python_executable=self.python_executable,
            workers=self.workers,
            require_cgroups=self.require_cgroups,
        )


class HumanEvalSplitResource(dg.ConfigurableResource):
    """One deterministic split of HumanEval (by task id) shared by the three root assets."""

    human_fraction: float = Field(default=0.3, description="share of tasks whose solutions are human data")
    heldout_fraction: float = Field(default=0.2, description="share of tasks held out for evaluation")

    def validate_split(self) -> None:
        from synth_assets.core.tasks.sources import humaneval_split

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


def generator_from_env(warehouse: WarehouseResource | None = None) -> GeneratorResource:
    """``SYNTH_GENERATOR`` picks the backend: ``llama_cpp`` (the embedded default;
    ``SYNTH_LLAMA_PARALLEL``: sequences decoded together, 1 = one request at a time;
    ``SYNTH_LLAMA_BATCHED_WEIGHTS``: auto, f16 or stored), ``openai``
    (``SYNTH_OPENAI_BASE_URL``, ``SYNTH_OPENAI_MODEL``, ``SYNTH_OPENAI_API``, ``SYNTH_OPENAI_API_KEY_ENV``,
    ``SYNTH_OPENAI_CONCURRENCY``, ``SYNTH_OPENAI_SAMPLES_PER_REQUEST``), ``import`` (``SYNTH_IMPORT_FILES``,
    comma-separated) or ``mixture`` (members in the YAML/JSON file ``SYNTH_GENERATORS_FILE``)."""
    kind = (os.environ.get("SYNTH_GENERATOR") or "llama_cpp").lower()
    env = os.environ.get
    if kind == "llama_cpp":
        optional = {
            k: v
            for k, v in {
                "parallel": _int_from_env("SYNTH_LLAMA_PARALLEL", 1, 64),
                "batched_weights": _choice_from_env("SYNTH_LLAMA_BATCHED_WEIGHTS", get_args(BatchedWeights)),
            }.items()
            if v is not None
        }
        return LlamaCppGeneratorResource(
            model_path=_from_env("SYNTH_MODEL_PATH"),
            registry=warehouse,
            model_version=_from_env("SYNTH_MODEL_VERSION"),
            **optional,
        )
    if kind == "openai":
        missing = [v for v in ("SYNTH_OPENAI_BASE_URL", "SYNTH_OPENAI_MODEL") if not env(v)]
        if missing:
            raise SynthConfigError(
                f"SYNTH_GENERATOR=openai needs {' and '.join(missing)} (e.g. "
                "SYNTH_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 SYNTH_OPENAI_MODEL=<served model>)"
            )
        optional = {
            k: v
            for k, v in {
                "api": _from_env("SYNTH_OPENAI_API"),
                "api_key_env": _from_env("SYNTH_OPENAI_API_KEY_ENV"),
                "concurrency": _int_from_env("SYNTH_OPENAI_CONCURRENCY", 1, 100_000),
                "samples_per_request": _int_from_env("SYNTH_OPENAI_SAMPLES_PER_REQUEST", 1, 128),
                "ray_address": _from_env("SYNTH_RAY_ADDRESS"),
            }.items()
            if v is not None
        }
        return OpenAIGeneratorResource(
            base_url=dg.EnvVar("SYNTH_OPENAI_BASE_URL"), model=dg.EnvVar("SYNTH_OPENAI_MODEL"), **optional
        )
    if kind == "import":
        files = [f.strip() for f in (env("SYNTH_IMPORT_FILES") or "").split(",") if f.strip()]
        if not files:
            raise SynthConfigError("SYNTH_GENERATOR=import needs SYNTH_IMPORT_FILES=<file.jsonl>[,<file.parquet>...]")
        return ImportGeneratorResource(import_files=files)
    if kind == "mixture":
        return mixture_from_file(env("SYNTH_GENERATORS_FILE") or "", warehouse)
    raise SynthConfigError(f"SYNTH_GENERATOR={kind!r}: use llama_cpp, openai, import or mixture")


def mixture_from_file(path: str, registry: WarehouseResource | None = None) -> MixtureGeneratorResource:
    """A mixture from a YAML/JSON file: ``members: [{name, share, backend, ...}]``; ``registry``
    resolves its 'in_service' members."""
    from pathlib import Path

    import yaml

    p = Path(path)
    if not path or not p.exists():
        raise SynthConfigError(
            f"SYNTH_GENERATORS_FILE={path!r}: the file does not exist; it lists "
            "'members: [{name, share, backend, base_url, model, ...}]'"
        )
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SynthConfigError(f"{p}: not valid YAML/JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("members"), list):
        raise SynthConfigError(f"{p}: expected a mapping with a 'members' list")
    from pydantic import ValidationError

    members = []
    for i, m in enumerate(data["members"]):
        try:
            members.append(GeneratorMember(**(m if isinstance(m, dict) else {})))
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
            )
            raise SynthConfigError(f"{p}: members[{i}] {detail}") from None
    try:
        return MixtureGeneratorResource(
            members=members, registry=registry, **{k: v for k, v in data.items() if k != "members"}
        )
    except ValidationError as exc:
        raise SynthConfigError(f"{p}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def _int_from_env(name: str, lo: int, hi: int) -> int | None:
    """A bounded whole number from the environment, parsed here with an error that names the
    variable: dg.EnvVar.int stands in as 0 until launch, which fails the setting's own bound at
    definition time (and is falsy, so it was silently dropped)."""
    raw = os.environ.get(name)
    if not raw:
        return None
    if not (raw.strip().isdigit() and lo <= int(raw) <= hi):
        raise SynthConfigError(f"environment variable {name}={raw!r}: a whole number from {lo} to {hi}")
    return int(raw)


def _choice_from_env(name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices`` from the environment, checked here (as ``_int_from_env``) so a typo
    is named at definition time rather than failing a launched run."""
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw not in choices:
        raise SynthConfigError(f"environment variable {name}={raw!r}: one of {', '.join(choices)}")
    return raw


def _from_env(name: str) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when the variable is set (the UI then shows the value's source and
    reads it at launch), else None. Numbers are parsed by ``_int_from_env`` instead."""
    if not os.environ.get(name):
        return None
    return dg.EnvVar(name)


def default_resources() -> dict:
    """The production resources, with environment overrides applied."""
    warehouse = WarehouseResource(path=_from_env("SYNTH_DUCKDB_PATH"))
    return {
        "warehouse": warehouse,
        "io_manager": GenerationalIOManager(warehouse=warehouse),
        "generator": generator_from_env(warehouse),
        "sandbox": SandboxResource(
            enabled=_env_bool("SYNTH_SANDBOX", True), ray_address=_from_env("SYNTH_RAY_ADDRESS")
        ),
        "humaneval_split": HumanEvalSplitResource(
            human_fraction=float(os.environ.get("SYNTH_HUMANEVAL_HUMAN_FRACTION", 0.3)),
            heldout_fraction=float(os.environ.get("SYNTH_HUMANEVAL_HELDOUT_FRACTION", 0.2)),
        ),
    }
