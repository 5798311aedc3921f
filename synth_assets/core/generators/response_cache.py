"""Completed responses in DuckDB, keyed by the request's identity (model, prompt, sampling
settings, sample index: ``SampleRequest.key``), so a run that crashed or was killed resumes
without asking an endpoint for a completed sample again.

The cache lives in its own DuckDB file beside the warehouse (``response_cache.duckdb``), not in
the warehouse: a generation holds it open for hours, and DuckDB allows one writing process per
file, so sharing the warehouse file would lock every other step out for that long. A writer
thread commits responses as they arrive (one transaction per batch of whatever is queued,
whatever arrived in the last 20 ms): a response is durable about 20 ms after it arrives, and
SIGKILL loses at most the responses of those last milliseconds and those still in flight.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from synth_assets.core.generators.generation import Sample, SampleRequest, TextGenerator
from synth_assets.core.warehouse import open_duckdb

CACHE_PATH_ENV = "SYNTH_RESPONSE_CACHE"
_TABLE = "response_cache"
_COLUMNS = ("key", "model", "text", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s", "created_at")


def default_cache_path() -> str:
    """``$SYNTH_RESPONSE_CACHE``, else ``response_cache.duckdb`` beside the warehouse file."""
    if os.environ.get(CACHE_PATH_ENV):
        return os.environ[CACHE_PATH_ENV]
    from synth_assets.core.warehouse import default_duckdb_path

    return str(Path(default_duckdb_path()).parent / "response_cache.duckdb")


class CacheUnavailable(RuntimeError):
    """Another process holds the cache file; the caller decides whether to run without it."""


_SHARED: dict[str, tuple[ResponseCache, int]] = {}
_SHARED_LOCK = threading.Lock()


def open_shared(path: str) -> ResponseCache:
    """One open cache per file per process, reference-counted: the members of a mixture run side
    by side in threads, and two DuckDB connections creating one table race each other."""
    key = str(Path(path).resolve())
    with _SHARED_LOCK:
        cache, n = _SHARED.get(key, (None, 0))
        if cache is None:
            cache = ResponseCache(path).__enter__()
        _SHARED[key] = (cache, n + 1)
        return cache


def release_shared(cache: ResponseCache) -> None:
    key = str(Path(cache.path).resolve())
    with _SHARED_LOCK:
        _c, n = _SHARED[key]
        if n > 1:
            _SHARED[key] = (cache, n - 1)
            return
        del _SHARED[key]
    cache.close()


class ResponseCache:
    """Open for the length of one batch of requests (``with ResponseCache(path) as cache``, or
    ``open_shared``/``release_shared`` where several generators in one process use one file)."""

    def __init__(self, path: str, wait_s: float = 10.0, linger_s: float = 0.02) -> None:
        # linger: how long the writer waits for more rows before a commit. Each commit syncs the
        # WAL (about 1.5 ms); committing every row alone cost a third of the client's throughput
        # at 130 responses/s (bench/generation_throughput.py), 20 ms batches cost nothing visible.
        self.path, self.wait_s, self.linger_s = str(path), wait_s, linger_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self.written = 0

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> ResponseCache:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = open_duckdb(self.path, wait_s=self.wait_s, max_delay_s=0.2)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise CacheUnavailable(f"response cache {self.path} is in use by another process: {exc}") from None
        self._con.execute(
            f"""create table if not exists {_TABLE} (
                  key varchar primary key, model varchar, text varchar, finish_reason varchar,
                  prompt_tokens bigint, completion_tokens bigint, latency_s double,
                  created_at timestamptz)"""
        )
        self._writer = threading.Thread(target=self._write_loop, name="response-cache-writer", daemon=True)
        self._writer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._error is not None:
            raise RuntimeError(f"response cache {self.path}: a write failed: {self._error}") from self._error

    # ---------------------------------------------------------------- reads and writes
    def get_many(self, keys: list[str]) -> dict[str, Sample]:
        assert self._con is not None, "open the cache with 'with ResponseCache(path) as cache'"
        if not keys:
            return {}
        cur = self._con.cursor()  # a cursor of its own: the writer thread uses the connection
        try:
            rows = cur.execute(
                f"select key, text, finish_reason, prompt_tokens, completion_tokens, latency_s from {_TABLE} "
                "where key in (select unnest(?))",
                [keys],
            ).fetchall()
        finally:
            cur.close()
        return {k: Sample(t, f, p or 0, c or 0, lat or 0.0, cached=True) for k, t, f, p, c, lat in rows}

    def put(self, key: str, model: str, sample: Sample) -> None:
        """Queue one response; the writer commits it within milliseconds."""
        if self._error is not None:
            raise RuntimeError(f"response cache {self.path}: a write failed: {self._error}")
        self._queue.put(
            (
                key,
                model,
                sample.text,
                sample.finish_reason,
                sample.prompt_tokens,
                sample.completion_tokens,
                sample.latency_s,
                datetime.now(UTC),
            )
        )

    def _write_loop(self) -> None:
        assert self._con is not None
        cur = self._con.cursor()
        done = False
        while not done:
            batch = [self._queue.get()]
            if batch[0] is not None and self.linger_s:
                time.sleep(self.linger_s)
            while True:  # whatever else is already waiting goes in the same transaction
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            rows = [r for r in batch if r is not None]
            if not rows or self._error is not None:
                continue
            try:
                # one columnar insert: executemany costs about 2 ms per row in DuckDB
                batch_tbl = pa.Table.from_pylist([dict(zip(_COLUMNS, r)) for r in rows])  # noqa: F841 - DuckDB reads it by this name in the insert below (a replacement scan)
                cur.execute("begin")
                cur.execute(f"insert into {_TABLE} by name select * from batch_tbl on conflict (key) do nothing")
                cur.execute("commit")
                self.written += len(rows)
            except Exception as exc:  # noqa: BLE001 - reported by close() and put()
                self._error = exc
                try:
                    cur.execute("rollback")
                except Exception:  # noqa: BLE001 - the first error (kept above) is the one reported; a failed rollback adds nothing
                    pass
        cur.close()


class CachedGenerator:
    """Any generator behind the response cache: samples already in the cache are handed back,
    the rest are generated (in one batch, in order) and cached as they arrive.

    The OpenAI-compatible client caches on its own (it must, to resume a paid batch); this is
    for the embedded llama.cpp model, whose killed run would otherwise sample everything again
    when ``synth run`` completes the generation. Every other attribute is the inner generator's."""

    def __init__(self, inner: TextGenerator, path: str, log: Callable[[str], None] = lambda _m: None) -> None:
        self.__dict__["inner"] = inner
        self.__dict__["path"] = path
        self.__dict__["log"] = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["inner"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "log":  # attach_log: the wrapper's messages and the inner generator's go to the run's log
            self.__dict__["log"] = value
        setattr(self.__dict__["inner"], name, value)

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        inner: TextGenerator = self.__dict__["inner"]
        log: Callable[[str], None] = self.__dict__["log"]
        try:
            cache = open_shared(self.__dict__["path"])
        except CacheUnavailable as exc:
            log(f"WARNING: {exc}; this batch runs without the cache and will not resume")
            yield from inner.generate(requests)
            return
        try:
            keys = [r.key(f"{inner.name}|{inner.model}") for r in requests]
            hits = cache.get_many(keys)
            todo = [r for k, r in zip(keys, requests) if k not in hits]
            if hits:
                log(
                    f"{inner.model}: {len(hits)} of {len(requests)} samples from the response cache; "
                    f"generating {len(todo)}"
                )
            fresh = iter(inner.generate(todo)) if todo else iter(())
            for key in keys:
                if key in hits:
                    yield hits[key]
                    continue
                sample = next(fresh)
                cache.put(key, inner.model, sample)
                yield sample
        finally:
            release_shared(cache)
