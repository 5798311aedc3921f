"""Code verification fanned out over a Ray cluster.

``RaySandbox`` offers the ``Sandbox`` interface the verifier calls (``check_functions``,
``run_many``), but sends each batch of programs to a Ray task that runs it in a bubblewrap
sandbox on whichever node has a free CPU. Workers only compute: verdicts come back to the
asset, which writes DuckDB once. A batch whose worker or node dies is retried by Ray on another
(``task_retries``); each batch's results are placed by their indices, so a retry can neither
lose a candidate nor add one. Ray is chosen because the field's curation engines (NeMo Curator,
Data-Juicer) run on it; a plain Ray client inside the verifier is all this needs (dagster-ray
would add a cluster-launching resource the user already has).

Before any work: the cluster must answer (a TCP check of its address, then ``ray.init``), and
every node with CPUs must be able to build the sandbox (bubblewrap installed, user namespaces
allowed); a node that cannot is named in the error.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.sandbox.sandbox import FunctionCheck, RunResult, Sandbox, SandboxLimits
from synth_assets.core.settings import Settings

_FIX = "start it (`ray start --head --port 6379`), or unset SYNTH_RAY_ADDRESS to verify on this machine"


class RaySettings(Settings):
    """Where the cluster is and how work is cut for it."""

    ray_address: str | None = Field(
        default=None,
        description="the Ray cluster's address host:port (SYNTH_RAY_ADDRESS); unset = verify on this machine",
    )
    ray_batch_size: int = Field(default=16, ge=1, description="programs per Ray task (one sandbox each)")
    ray_task_retries: int = Field(default=3, ge=0, description="times a batch is retried after its worker or node died")
    ray_connect_timeout_s: float = Field(default=5.0, gt=0, description="how long the address may take to answer")


def _host_port(address: str) -> tuple[str, int]:
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise SynthConfigError(
            f"SYNTH_RAY_ADDRESS={address!r}: give host:port of the cluster's head, e.g. 10.0.0.5:6379"
        )
    return host, int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any work, when nothing listens at the address (ray.init would keep
    retrying for a minute and then print a traceback)."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SynthConfigError(f"Ray cluster at {address} is unreachable ({why}); nothing was run. {_FIX}") from None


def connect(settings: RaySettings) -> bool:
    """Check the address, then join the cluster unless this process already has; True when this
    call opened the connection (so only its opener ends it)."""
    import ray

    check_reachable(settings.ray_address, settings.ray_connect_timeout_s)
    if ray.is_initialized():
        return False
    ray.init(address=settings.ray_address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    return True


def disconnect(owns: bool) -> None:
    """The cluster belongs to the user; only a connection this process's caller opened ends."""
    import ray

    if owns and ray.is_initialized():
        ray.shutdown()


# --------------------------------------------------------------------- on the workers
_SANDBOXES: dict[tuple, Sandbox] = {}


def _node_sandbox(limits: SandboxLimits, enabled: bool, python: str | None, require_cgroups: bool) -> Sandbox:
    """One sandbox per worker process and configuration (its start-up checks run once)."""
    key = (limits, enabled, python, require_cgroups)
    if key not in _SANDBOXES:
        _SANDBOXES[key] = Sandbox(
            limits,
            enabled=enabled,
            python_executable=python,
            workers=1,
            require_cgroups=require_cgroups,
            batch_size=1 << 30,
        )
    return _SANDBOXES[key]


def _run_batch(
    mode: str, jobs: list, limits: SandboxLimits, enabled: bool, python: str | None, require_cgroups: bool
) -> list[RunResult]:
    return _node_sandbox(limits, enabled, python, require_cgroups)._map(mode, jobs)


def _probe(limits: SandboxLimits, enabled: bool, python: str | None, require_cgroups: bool) -> str | None:
    """None when this node can build the sandbox, else why not."""
    try:
        _node_sandbox(limits, enabled, python, require_cgroups)
        return None
    except SynthConfigError as exc:
        return str(exc)


# --------------------------------------------------------------------- on the driver
class RaySandbox:
    """The verifier's sandbox, one Ray task per batch of programs."""

    def __init__(
        self,
        settings: RaySettings,
        limits: SandboxLimits | None = None,
        enabled: bool = True,
        python_executable: str | None = None,
        require_cgroups: bool = False,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        import ray

        if not settings.ray_address:
            raise SynthConfigError("RaySandbox needs a cluster address (SYNTH_RAY_ADDRESS)")
        self.settings, self.log = settings, log
        self.limits = limits or SandboxLimits()
        self.enabled, self.require_cgroups = enabled, require_cgroups
        # the interpreter a node's sandbox runs (the local default, so verifier_version reads the same)
        self.python = python_executable or "/usr/bin/python3"
        self._python_arg = python_executable
        self.warnings: list[str] = []
        self._owns = connect(settings)
        self._ray = ray
        # SPREAD: batches go to every node evenly (the default packs a node first; measured
        # +32% against the local path at 2 workers, bench/scale.py)
        remote = ray.remote(
            num_cpus=1, max_retries=settings.ray_task_retries, retry_exceptions=False, scheduling_strategy="SPREAD"
        )
        self._batch = remote(_run_batch)
        self._probe = ray.remote(num_cpus=1, max_retries=0)(_probe)
        self.nodes = self._check_nodes()
        self.workers = int(sum(n["Resources"].get("CPU", 0) for n in self.nodes))
        log(f"verifying on the Ray cluster at {settings.ray_address}: {len(self.nodes)} nodes, {self.workers} CPUs")

    def _args(self) -> tuple:
        return (self.limits, self.enabled, self._python_arg, self.require_cgroups)

    def _check_nodes(self) -> list[dict]:
        """Every live node with CPUs builds the sandbox once, pinned there; one that cannot is named."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in self._ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        if not nodes:
            raise SynthConfigError(
                f"Ray cluster at {self.settings.ray_address} has no node with CPUs to verify on; "
                "add a worker (`ray start --address <head>`)"
            )
        refs = [
            self._probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                *self._args()
            )
            for n in nodes
        ]
        for node, why in zip(nodes, self._ray.get(refs)):
            if why is not None:
                raise SynthConfigError(
                    f"Ray node {node['NodeManagerAddress']} (node id {node['NodeID']}) cannot "
                    f"verify: {why}. Install bubblewrap on every node of the cluster "
                    "(`apt-get install -y bubblewrap`)"
                )
        return nodes

    def close(self) -> None:
        disconnect(self._owns)

    def run_many(self, programs: list[str]) -> list[RunResult]:
        """Trusted scripts' exit status (see ``Sandbox.run_many``), on the cluster."""
        return self._map("script", programs)

    def check_functions(self, checks: list[FunctionCheck]) -> list[RunResult]:
        return self._map("function", checks)

    def _map(self, mode: str, jobs: list[Any]) -> list[RunResult]:
        """One task per batch; results land at their batch's indices as batches finish."""
        if not jobs:
            return []
        size = self.settings.ray_batch_size
        starts = list(range(0, len(jobs), size))
        pending = {self._batch.remote(mode, jobs[s : s + size], *self._args()): s for s in starts}
        results: list[RunResult | None] = [None] * len(jobs)
        done, t0, last = 0, time.monotonic(), time.monotonic()
        while pending:
            ready, _ = self._ray.wait(list(pending), num_returns=1)
            for ref in ready:
                s = pending.pop(ref)
                try:
                    batch = self._ray.get(ref)
                except self._ray.exceptions.RayError as exc:
                    raise RuntimeError(
                        f"ray: the batch of programs {s}..{min(s + size, len(jobs)) - 1} failed on the cluster "
                        f"after {self.settings.ray_task_retries} retries ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:300]}); nothing was written"
                    ) from None
                results[s : s + len(batch)] = batch
                done += len(batch)
            if time.monotonic() - last > 10:
                last = time.monotonic()
                self.log(f"ray: {done}/{len(jobs)} programs verified ({done / (last - t0):.1f}/s)")
        missing = sum(r is None for r in results)
        if missing:  # a batch came back short: never let a candidate go without a verdict
            raise RuntimeError(f"ray: {missing} of {len(jobs)} programs came back without a result")
        return results  # type: ignore[return-value]


# --------------------------------------------------------------------- per-row data work
class RaySlices:
    """Per-row curation work on the cluster: ``fn(slice, *shared)`` as one Ray task per slice of
    rows (``shared`` is put in the object store once), results in slice order. The functions
    are pure, so a task retried after its worker died gives the same answer; the driver
    assembles the answers and writes DuckDB, never the workers."""

    def __init__(self, settings: RaySettings, log: Callable[[str], None] = lambda _m: None) -> None:
        import ray

        if not settings.ray_address:
            raise SynthConfigError("RaySlices needs a cluster address (SYNTH_RAY_ADDRESS)")
        self._owns = connect(settings)  # a RaySandbox of this process may hold the connection
        self._ray, self.settings, self.log = ray, settings, log
        self.cpus = int(ray.cluster_resources().get("CPU", 0))
        if self.cpus == 0:
            raise SynthConfigError(
                f"Ray cluster at {settings.ray_address} has no node with CPUs; "
                "add a worker (`ray start --address <head>`)"
            )

    def map(self, fn: Callable[..., Any], slices: Any, *shared: Any) -> list:
        remote = self._ray.remote(
            num_cpus=1, max_retries=self.settings.ray_task_retries, retry_exceptions=False, scheduling_strategy="SPREAD"
        )(fn)
        refs = [self._ray.put(x) for x in shared]
        tasks = [remote.remote(s, *refs) for s in slices]
        self.log(
            f"{fn.__name__}: {len(tasks)} slices on the Ray cluster at {self.settings.ray_address} ({self.cpus} CPUs)"
        )
        try:
            return self._ray.get(tasks)
        except self._ray.exceptions.RayError as exc:
            raise RuntimeError(
                f"ray: {fn.__name__} failed on the cluster after {self.settings.ray_task_retries} "
                f"retries ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); nothing was "
                "written"
            ) from None

    def close(self) -> None:
        disconnect(self._owns)


# --------------------------------------------------------------------- endpoint generation
def _generate_batch(settings: Any, requests: list) -> tuple[list, dict]:
    """On a worker: one batch of requests against the endpoint, without a cache (the driver
    keeps the one cache); the samples and the batch's request counts."""
    from synth_assets.core.generators.openai_backend import OpenAICompatibleGenerator

    gen = OpenAICompatibleGenerator(settings, cache_path=None)
    return list(gen.generate(requests)), gen.stats.as_dict()


def request_batches(task_ids: list[str], size: int) -> list[list[int]]:
    """Contiguous batches of about ``size`` requests that never split a task's samples (they
    share one request with ``n`` where the server supports it)."""
    batches: list[list[int]] = []
    for i, task in enumerate(task_ids):
        if batches and (len(batches[-1]) < size or task_ids[batches[-1][-1]] == task):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class RayEndpointGenerator:
    """An OpenAI-compatible endpoint's requests fanned out over Ray tasks, for fleets of inference
    servers that one client process cannot keep busy. The driver reads and writes the response
    cache (a worker's samples are cached as its batch returns, so a killed run resumes), each
    task runs the ordinary client with the endpoint's settings (concurrency, retries, ``n``),
    and samples are handed on in request order, as ``OpenAICompatibleGenerator.generate``."""

    name = "openai_compatible"

    def __init__(
        self,
        settings: Any,
        ray_settings: RaySettings,
        cache_path: str | None = None,
        batch_requests: int = 64,
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        import ray

        from synth_assets.core.generators.openai_backend import OpenAICompatibleGenerator

        if not ray_settings.ray_address:
            raise SynthConfigError("RayEndpointGenerator needs a cluster address (SYNTH_RAY_ADDRESS)")
        self.local = OpenAICompatibleGenerator(settings, cache_path=cache_path, log=log)
        self.settings, self.ray_settings, self.batch_requests, self.log = settings, ray_settings, batch_requests, log
        self.model, self.terms, self.prices, self.stats = (
            self.local.model,
            self.local.terms,
            self.local.prices,
            self.local.stats,
        )
        self._owns = connect(ray_settings)
        self._ray = ray
        self._remote = ray.remote(
            num_cpus=1, max_retries=ray_settings.ray_task_retries, retry_exceptions=False, scheduling_strategy="SPREAD"
        )(_generate_batch)

    @property
    def identity(self) -> str:
        return self.local.identity

    def generate(self, requests: Any) -> Any:
        keys = [r.key(self.identity) for r in requests]
        cache = self.local._open_cache()
        pending: dict = {}
        try:
            hits = cache.get_many(keys) if cache is not None else {}
            self.stats.cache_hits += sum(1 for k in keys if k in hits)
            todo = [i for i, k in enumerate(keys) if k not in hits]
            batches = [
                [todo[j] for j in b] for b in request_batches([requests[i].task_id for i in todo], self.batch_requests)
            ]
            pending = {self._remote.remote(self.settings, [requests[i] for i in b]): b for b in batches}
            if todo:
                self.log(
                    f"{self.model}: {len(todo)} requests in {len(batches)} Ray tasks on "
                    f"{self.ray_settings.ray_address} ({len(hits)} from the response cache)"
                )
            ready: dict[int, Any] = {}
            for i, k in enumerate(keys):
                if k in hits:
                    yield hits[k]
                    continue
                while i not in ready:
                    done, _ = self._ray.wait(list(pending), num_returns=1)
                    b = pending.pop(done[0])
                    try:
                        samples, stats = self._ray.get(done[0])
                    except self._ray.exceptions.RayError as exc:
                        raise SynthConfigError(
                            f"generator {self.model}: a batch of {len(b)} requests (task {requests[b[0]].task_id} "
                            f"onwards) failed on the Ray cluster ({str(exc).strip().splitlines()[-1][:400]}); "
                            f"{self.stats.completed} samples completed this run"
                            + (" and are cached; run again to resume" if cache is not None else "")
                        ) from None
                    for j, s in zip(b, samples):
                        if cache is not None:
                            cache.put(keys[j], self.model, s)
                        ready[j] = s
                    for name, value in stats.items():
                        if name == "errors_by_kind":
                            for kind, count in value.items():
                                self.stats.errors_by_kind[kind] = self.stats.errors_by_kind.get(kind, 0) + count
                        elif name != "cache_hits":
                            setattr(self.stats, name, getattr(self.stats, name) + value)
                yield ready.pop(i)
        finally:
            for ref in pending:  # a caller that stopped early, or a failed batch: the rest is not waited for
                self._ray.cancel(ref, force=True)
            if cache is not None:
                from synth_assets.core.generators.response_cache import release_shared

                release_shared(cache)

    def close(self) -> None:
        disconnect(self._owns)
