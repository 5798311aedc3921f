"""OpenAI-compatible endpoints (vLLM, SGLang, Ollama, llama.cpp's server, hosted APIs).

Built for runs that last hours: bounded async concurrency, request and token rate limits,
retries with exponential backoff on timeouts, dropped connections, 429 and 5xx (a server's
Retry-After wins), validation of every response, and a DuckDB response cache that commits
responses within about 20 ms of their arrival, so a killed run resumes without asking for a
completed sample again. The API key is read from an environment variable at request time and is never stored,
logged or put in metadata.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx
import tenacity
from pydantic import Field, field_validator

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import Sample, SampleRequest
from synth_assets.core.generators.response_cache import CacheUnavailable, ResponseCache, open_shared, release_shared
from synth_assets.core.settings import Settings


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    pass


class EndpointSettings(Settings):
    """One OpenAI-compatible endpoint: where, which model, how hard to push it, what it costs."""

    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="the model name the endpoint serves")
    api: Literal["completions", "chat"] = Field(
        default="completions", description="'completions' (base models) or 'chat'"
    )
    api_key_env: str | None = Field(default=None, description="NAME of the environment variable holding the key")
    concurrency: int = Field(default=8, ge=1, description="requests in flight at once")
    samples_per_request: int = Field(
        default=8,
        ge=1,
        le=128,
        description="n: samples of one prompt (same temperature, top_p, max_tokens, stop) asked for in one "
        "request, so the server evaluates the prompt once (vLLM, SGLang, hosted OpenAI); a "
        "server that answers with one choice or rejects n is asked one sample a request, with "
        "a log line. 1 = never group",
    )
    requests_per_minute: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0, description="prompt (estimated) + max tokens")
    timeout_s: float = Field(default=120.0, gt=0, description="one request's timeout")
    max_retries: int = Field(default=8, ge=0, description="retries on timeouts, dropped connections, 429 and 5xx")
    backoff_s: float = Field(default=0.5, gt=0, description="first backoff; doubles per retry, with jitter")
    max_backoff_s: float = Field(default=30.0, gt=0)
    system_prompt: str | None = Field(default=None, description="a persona: system message (chat) or preamble")
    max_stop_sequences: int | None = Field(
        default=None, ge=1, description="4 for hosted OpenAI; the rest apply client-side"
    )
    model_terms: str | None = Field(default=None, description="licence/terms of the model, on every row and the card")
    price_per_million: list[float] | None = Field(
        default=None, description="USD per 1M [prompt, completion] tokens: the price table of this model"
    )

    @field_validator("price_per_million")
    @classmethod
    def _two_prices(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 2 or min(v) < 0):
            raise ValueError(f"give [prompt, completion] USD per 1M tokens, got {v}")
        return v

    @property
    def terms(self) -> str:
        return self.model_terms or "undeclared (set generator.model_terms)"

    @property
    def prices(self) -> dict[str, tuple[float, float]]:
        return {self.model: tuple(self.price_per_million)} if self.price_per_million else {}

    def validate(self, where: str = "generator") -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise SynthConfigError(f"{where}.base_url must start with http:// or https:// (got {self.base_url!r})")
        if not self.model:
            raise SynthConfigError(f"{where}.model is empty: name the model the endpoint serves")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise SynthConfigError(
                f"{where}.api_key_env names {self.api_key_env}, which is not set: export {self.api_key_env}=<key> "
                "(keys are only ever read from the environment)"
            )


class TokenBucket:
    """``per_minute`` units a minute, refilled continuously, with a burst of ten seconds' worth.

    A take larger than the burst (a long prompt against a small token budget) waits for a full
    bucket and leaves it in debt, so the long-run rate holds for any mix of sizes."""

    def __init__(self, per_minute: float, burst_s: float = 10.0) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.t = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        need = min(amount, self.capacity)
        async with self.lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
                self.t = now
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)


@dataclass
class EndpointStats:
    requests: int = 0  # HTTP attempts
    completed: int = 0  # samples received this run
    cache_hits: int = 0
    retries: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def parse_response(body: bytes, api: str) -> tuple[list[tuple[str, str]], int | None, int | None]:
    """([(text, finish_reason) per choice, in choice index order], prompt_tokens,
    completion_tokens summed over the choices), or RetryableError for a malformed body."""
    try:
        data = json.loads(body)
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        if not choices:
            raise IndexError("no choices")
        out = []
        for choice in choices:
            text = choice["message"]["content"] if api == "chat" else choice["text"]
            if text is None and api == "chat":
                text = ""  # a chat reply with no content (e.g. only a refusal or a tool call) is an empty answer
            if not isinstance(text, str):
                raise TypeError("text is not a string")
            out.append((text, str(choice.get("finish_reason") or "stop")))
        usage = data.get("usage") or {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        for v in (pt, ct):
            if v is not None and (not isinstance(v, int) or v < 0):
                raise TypeError(f"usage token count {v!r} is not a non-negative integer")
        return out, pt, ct
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RetryableError(f"malformed response ({type(exc).__name__}: {str(exc)[:80]})") from None


def split_tokens(total: int, texts: Sequence[str]) -> list[int]:
    """A request's completion tokens shared among its choices in proportion to their length
    (servers report one sum for all n), summing exactly to ``total``."""
    weights = [len(t) + 1 for t in texts]
    shares = [total * w // sum(weights) for w in weights]
    shares[-1] += total - sum(shares)
    return shares


def group_requests(requests: Sequence[SampleRequest], n: int) -> list[list[int]]:
    """Indices of requests that can share one request with ``n`` choices: same prompt and
    sampling (temperature, top_p, max_tokens, stop), in first-seen order, at most ``n`` each.
    A group is deterministic in the batch, so its seed (its first sample's) is too."""
    groups: dict[tuple, list[list[int]]] = {}
    order: list[list[int]] = []
    for i, r in enumerate(requests):
        key = (r.prompt, r.prompt_template, r.temperature, r.top_p, r.max_tokens, r.stop)
        chunks = groups.setdefault(key, [])
        if not chunks or len(chunks[-1]) >= n:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(i)
    return order


def unreachable(base_url: str, timeout_s: float = 5.0) -> str | None:
    """Why the server at ``base_url`` does not answer, or None when it does. Any HTTP status is an
    answer (a 401 is a server asking for a key); only a connection that fails or times out is not."""
    try:
        httpx.get(base_url.rstrip("/") + "/models", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


class OpenAICompatibleGenerator:
    """A ``TextGenerator`` over an OpenAI-compatible HTTP API.

    ``cache_path`` names the DuckDB response cache; ``None`` runs without one (nothing resumes).
    """

    name = "openai_compatible"

    def __init__(
        self, settings: EndpointSettings, cache_path: str | None = None, log: Callable[[str], None] = lambda _m: None
    ) -> None:
        settings.validate()
        self.settings, self.cache_path, self.log = settings, cache_path, log
        self.model, self.terms, self.prices = settings.model, settings.terms, settings.prices
        self.stats = EndpointStats()
        self.n_supported = settings.samples_per_request > 1  # False once the server shows it ignores n

    @property
    def identity(self) -> str:
        """What, besides the request, decides a response: the cache key's model part. The
        endpoint's address is not in it, so moving a server keeps the cache."""
        s = self.settings
        return s.model if not s.system_prompt else f"{s.model}|{s.api}|{s.system_prompt}"

    # ---------------------------------------------------------------- one request
    def _payload(self, req: SampleRequest, n: int = 1) -> dict:
        s = self.settings
        body = {
            "model": s.model,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
        }
        if n > 1:  # the first sample's seed seeds all n (vLLM draws the n choices from one seeded request)
            body["n"] = n
        if req.stop:
            body["stop"] = list(req.stop)[: s.max_stop_sequences] if s.max_stop_sequences else list(req.stop)
        if s.api == "chat":
            messages = [{"role": "system", "content": s.system_prompt}] if s.system_prompt else []
            body["messages"] = messages + [{"role": "user", "content": req.prompt}]
        else:
            body["prompt"] = (s.system_prompt + "\n\n" if s.system_prompt else "") + req.prompt
        return body

    def _headers(self) -> dict[str, str]:
        key_env = self.settings.api_key_env
        return {"Authorization": f"Bearer {os.environ[key_env]}"} if key_env else {}

    def _count(self, kind: str) -> None:
        self.stats.errors_by_kind[kind] = self.stats.errors_by_kind.get(kind, 0) + 1

    async def _once(self, client: httpx.AsyncClient, req: SampleRequest, n: int = 1) -> list[Sample]:
        """One HTTP request for ``n`` samples of ``req``'s prompt; the server may return fewer."""
        s = self.settings
        path = "/chat/completions" if s.api == "chat" else "/completions"
        self.stats.requests += 1
        t0 = time.perf_counter()
        try:
            resp = await client.post(s.base_url.rstrip("/") + path, json=self._payload(req, n), headers=self._headers())
        except httpx.TimeoutException:
            raise RetryableError("timeout") from None
        except httpx.TransportError as exc:  # refused, reset, dropped mid-response
            raise RetryableError(f"connection: {type(exc).__name__}") from None
        if resp.status_code in (408, 409, 425, 429) or resp.status_code >= 500:
            raise RetryableError(f"HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code in (401, 403):
            hint = (
                f"check the key in ${s.api_key_env}"
                if s.api_key_env
                else "set generator.api_key_env to the name of the variable holding the key"
            )
            raise PermanentError(f"HTTP {resp.status_code} (not authorised): {hint}")
        if resp.status_code >= 400:
            raise PermanentError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        choices, pt, ct = parse_response(resp.content, s.api)
        latency = time.perf_counter() - t0
        choices = choices[:n]
        tokens = split_tokens(int(ct or 0), [t for t, _f in choices])
        out = []
        for j, ((text, finish), ct_j) in enumerate(zip(choices, tokens)):
            # stops the request could not carry (max_stop_sequences) are applied here
            cut = min((i for i in (text.find(x) for x in req.stop) if i >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            # the prompt was evaluated (and is billed) once: its tokens go on the first choice
            out.append(Sample(text, finish, int(pt or 0) if j == 0 else 0, ct_j, latency))
        return out

    async def _with_retries(
        self,
        client: httpx.AsyncClient,
        req: SampleRequest,
        limits: Callable[[SampleRequest, int], list[tuple[TokenBucket, float]]],
        stop: asyncio.Event,
        n: int = 1,
    ) -> list[Sample]:
        """tenacity's policy: retry what may succeed later (``RetryableError``), waiting what the
        server's Retry-After asks, else exponential backoff with jitter; stop after
        ``max_retries`` retries or when the batch stopped on a permanent error."""
        s = self.settings

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = getattr(exc, "retry_after", None)
            backoff = min(s.max_backoff_s, s.backoff_s * 2 ** (state.attempt_number - 1)) * (0.5 + random.random())
            return min(after if after is not None else backoff, s.max_backoff_s * 4)

        def before_sleep(_state: tenacity.RetryCallState) -> None:
            self.stats.retries += 1

        attempts = 0
        try:
            async for attempt in tenacity.AsyncRetrying(
                retry=tenacity.retry_if_exception_type(RetryableError),
                stop=tenacity.stop_any(tenacity.stop_after_attempt(s.max_retries + 1), lambda _s: stop.is_set()),
                wait=wait,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    for bucket, amount in limits(req, n):
                        await bucket.take(amount)
                    try:
                        return await self._once(client, req, n)
                    except RetryableError as exc:
                        self._count(str(exc).split(" (")[0].split(":")[0])
                        raise
        except RetryableError as exc:
            raise PermanentError(f"gave up after {attempts} attempts: {exc}") from None
        raise AssertionError("unreachable: tenacity either returns, retries or re-raises")

    # ---------------------------------------------------------------- the batch
    async def _run(
        self, todo: list[tuple[int, str, SampleRequest]], out: queue.Queue, cache: ResponseCache | None
    ) -> None:
        """Every sample of ``todo`` once, ``samples_per_request`` of one prompt per request where
        the server honours ``n``; each sample is cached and handed on as it arrives."""
        s = self.settings
        sem = asyncio.Semaphore(s.concurrency)
        stop = asyncio.Event()  # set on a permanent error: no new requests, in-flight ones finish
        req_bucket = TokenBucket(s.requests_per_minute) if s.requests_per_minute else None
        tok_bucket = TokenBucket(s.tokens_per_minute) if s.tokens_per_minute else None

        def limits(req: SampleRequest, n: int) -> list[tuple[TokenBucket, float]]:
            out_ = []
            if req_bucket:
                out_.append((req_bucket, 1))
            if tok_bucket:  # an estimate before the fact: about four characters per token
                out_.append((tok_bucket, len(req.prompt) / 4 + n * req.max_tokens))
            return out_

        timeout = httpx.Timeout(s.timeout_s, connect=min(10.0, s.timeout_s))
        limits_http = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits_http) as client:

            def deliver(i: int, key: str, sample: Sample) -> None:
                if cache is not None:
                    cache.put(key, s.model, sample)
                self.stats.completed += 1
                self.stats.prompt_tokens += sample.prompt_tokens
                self.stats.completion_tokens += sample.completion_tokens
                out.put((i, sample))

            async def group(members: list[tuple[int, str, SampleRequest]]) -> None:
                while members:
                    async with sem:
                        n = len(members) if self.n_supported else 1  # decided once a slot is free
                        if stop.is_set():
                            for i, _k, _r in members:
                                out.put((i, PermanentError("not requested: an earlier request failed")))
                            return
                        try:
                            samples = await self._with_retries(client, members[0][2], limits, stop, n)
                        except PermanentError as exc:
                            if n > 1 and str(exc).startswith(("HTTP 400", "HTTP 422")):
                                self._n_unsupported(f"it rejected n={n} ({str(exc)[:120]})")
                                continue
                            stop.set()
                            for i, _k, _r in members:
                                out.put((i, exc))
                            return
                        except Exception as exc:  # noqa: BLE001 - surfaced to the caller in order
                            stop.set()
                            for i, _k, _r in members:
                                out.put((i, exc))
                            return
                    if n > 1 and len(samples) < n:
                        self._n_unsupported(f"it answered n={n} with {len(samples)} choice(s)")
                    for (i, key, _r), sample in zip(members, samples):
                        deliver(i, key, sample)
                    members = members[len(samples) :]

            n_max = s.samples_per_request if self.n_supported else 1
            groups = group_requests([r for _i, _k, r in todo], n_max)
            await asyncio.gather(*(group([todo[j] for j in g]) for g in groups))

    def _n_unsupported(self, why: str) -> None:
        if self.n_supported:
            self.n_supported = False
            self.log(
                f"{self.settings.model} at {self.settings.base_url}: {why}; asking one sample per request "
                "from now on (set samples_per_request: 1 to skip the probe)"
            )

    def _open_cache(self) -> ResponseCache | None:
        if not self.cache_path:
            return None
        try:
            return open_shared(self.cache_path)
        except CacheUnavailable as exc:
            self.log(f"WARNING: {exc}; this batch runs without the cache and will not resume")
            return None

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        keys = [r.key(self.identity) for r in requests]
        cache = self._open_cache()
        try:
            hits = cache.get_many(keys) if cache is not None else {}
            self.stats.cache_hits += sum(1 for k in keys if k in hits)
            todo = [(i, k, r) for i, (k, r) in enumerate(zip(keys, requests)) if k not in hits]
            if hits:
                self.log(
                    f"{self.settings.model}: {len(hits)} of {len(requests)} samples from the response cache; "
                    f"requesting {len(todo)}"
                )
            out: queue.Queue = queue.Queue()

            def work() -> None:
                try:
                    asyncio.run(self._run(todo, out, cache))
                except BaseException as exc:  # noqa: BLE001 - a crash of the loop itself must not hang the caller
                    out.put((-1, exc))

            worker = threading.Thread(target=work, daemon=True, name="openai-requests") if todo else None
            if worker:
                worker.start()
            ready: dict[int, Sample | Exception] = {}
            failure: tuple[int, Exception] | None = None
            for i, k in enumerate(keys):
                if k in hits:
                    yield hits[k]
                    continue
                while i not in ready:
                    j, value = out.get()
                    if j < 0:
                        raise value
                    ready[j] = value
                value = ready.pop(i)
                if isinstance(value, Exception):
                    failure = (i, value)
                    break
                yield value
            if worker:
                worker.join()  # in-flight requests finish and are cached before we report
            if failure is not None:
                i, exc = failure
                done = self.stats.completed
                raise SynthConfigError(
                    f"generator {self.settings.model} at {self.settings.base_url}: request for task "
                    f"{requests[i].task_id} sample {requests[i].sample_index} failed: {exc}. "
                    f"{done} samples completed this run"
                    + (" and are cached; fix the endpoint and run again to resume" if cache is not None else "")
                ) from None
        finally:
            if cache is not None:
                release_shared(cache)
