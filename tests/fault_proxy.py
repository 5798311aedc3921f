"""A fault-injecting HTTP proxy for tests: it sits in front of a real OpenAI-compatible server
and, on a schedule, answers with a timeout, 429 + Retry-After, a 500, malformed JSON or a
dropped connection instead of forwarding. It records every attempt, so tests can prove that no
sample was lost, none was requested again after it was delivered, and Retry-After was honoured.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from synth_assets.core.generators.response_cache import _TABLE

FAULTS = ("timeout", "429", "500", "malformed", "drop", "drop_after_upstream")


@dataclass
class Attempt:
    rid: str  # the request's identity: seed and prompt
    seed: int | None
    attempt: int
    fault: str | None
    at: float
    delivered: bool = False  # a well-formed 200 reached the client
    authorization: str | None = None
    n: int = 1  # choices asked for


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:8765
    plan: Callable[[int, int], str | None] = lambda _i, _a: None  # (request number, attempt) -> fault
    timeout_s: float = 5.0  # how long a "timeout" fault stalls
    require_key: str | None = None  # answer 401 unless "Authorization: Bearer <key>"
    # a test double for vLLM's `n` in front of a server that ignores it (llama-cpp-python's):
    # a request for n choices is served by n upstream requests seeded seed, seed+1, ..., merged
    # into one response with the choices indexed 0..n-1 and the prompt's tokens counted once
    serve_n: bool = False
    reject_n: bool = False  # answer 400 to a request for n > 1 choices (as some servers do)
    served: dict[str, list[str]] = field(default_factory=dict)  # rid -> texts of the n choices, by index
    attempts: list[Attempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._order: dict[str, int] = {}
        self._client = httpx.Client(timeout=600)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # /v1/models and friends pass straight through
                r = proxy._client.get(proxy.upstream + self.path)
                self._reply(r.status_code, r.content)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy._handle(self, body)

            def _reply(self, status: int, content: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _handle(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        data = json.loads(body)
        rid = f"{data.get('seed')}|{data.get('prompt') or json.dumps(data.get('messages'))}"
        with self._lock:
            n = self._order.setdefault(rid, len(self._order))
            attempt = 1 + sum(1 for a in self.attempts if a.rid == rid)
            auth = h.headers.get("Authorization")
            fault = self.plan(n, attempt)
            rec = Attempt(
                rid, data.get("seed"), attempt, fault, time.monotonic(), authorization=auth, n=int(data.get("n") or 1)
            )
            self.attempts.append(rec)
        if self.require_key and auth != f"Bearer {self.require_key}":
            h._reply(401, b'{"error": {"message": "invalid api key"}}')
            return
        if fault == "timeout":
            time.sleep(self.timeout_s)
            self._drop(h)
        elif fault == "429":
            h._reply(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"})
        elif fault == "500":
            h._reply(500, b'{"error": {"message": "upstream exploded"}}')
        elif fault == "malformed":
            h._reply(200, b'{"id": "x", "choices": [{"tex')
        elif fault == "drop":
            self._drop(h)
        elif self.reject_n and rec.n > 1:
            h._reply(400, b'{"error": {"message": "only one completion choice is allowed"}}')
        elif self.serve_n and rec.n > 1:
            self._serve_n(h, data, rec)
        else:
            r = self._client.post(self.upstream + h.path, content=body, headers={"Content-Type": "application/json"})
            if fault == "drop_after_upstream":  # the server did the work; the answer never arrives
                self._drop(h)
                return
            h._reply(r.status_code, r.content)
            rec.delivered = r.status_code == 200

    def _serve_n(self, h: BaseHTTPRequestHandler, data: dict, rec: Attempt) -> None:
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for j in range(rec.n):
            one = {**data, "n": 1, "seed": int(data.get("seed") or 0) + j}
            r = self._client.post(self.upstream + h.path, json=one)
            if r.status_code != 200:
                h._reply(r.status_code, r.content)
                return
            body = r.json()
            choices.append({**body["choices"][0], "index": j})
            usage["prompt_tokens"] = body["usage"]["prompt_tokens"]
            usage["completion_tokens"] += body["usage"]["completion_tokens"]
        self.served[rec.rid] = [c["text"] for c in choices]
        h._reply(
            200, json.dumps({"id": "n", "object": "text_completion", "choices": choices[::-1], "usage": usage}).encode()
        )
        rec.delivered = True

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---------------------------------------------------------------- what tests ask
    def delivered(self) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.delivered]

    def faults(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for a in self.attempts:
                if a.fault:
                    out[a.fault] = out.get(a.fault, 0) + 1
            return out


def cached_keys(path: str) -> set[str]:
    """Every key in a response cache file (what was delivered and kept); empty when the file does
    not exist."""
    import duckdb

    if not Path(path).exists():
        return set()
    con = duckdb.connect(path, read_only=True)
    try:
        if not con.execute("select count(*) from information_schema.tables where table_name = ?", [_TABLE]).fetchone()[
            0
        ]:
            return set()
        return {r[0] for r in con.execute(f"select key from {_TABLE}").fetchall()}
    finally:
        con.close()
