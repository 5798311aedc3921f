"""Throughput through the platform's OpenAI-compatible client against the same server driven
directly (plain httpx, same payloads, same concurrency), so we know the client is not the
bottleneck.

Two servers, each measured with both peers in alternating rounds:
  1. llama-cpp-python's own server on the packaged Gemma 3 270M (the real workload);
  2. an instant-reply stub server in this process (no model: it isolates the client's own cost,
     retries machinery, ordering and the DuckDB response cache, at rates a vLLM cluster reaches).

    .venv/bin/python bench/generation_throughput.py [--requests 48] [--concurrency 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synth_assets.core.generators.generation import SamplingPlan, plan_requests
from synth_assets.core.generators.openai_backend import EndpointSettings, OpenAICompatibleGenerator
from synth_assets.core.tasks.sources import reasoning_gym_tasks
from tests.conftest import SERVED_MODEL, start_llama_server


def requests_for(n: int, round_: int):
    tasks = reasoning_gym_tasks(["gcd", "chain_sum", "letter_counting", "basic_arithmetic"], max(1, n // 8), 42)
    plan = SamplingPlan(samples_per_task=2, temperatures=[0.7], seed=round_)
    return [r for _t, r in plan_requests(tasks, plan, generation=1)][:n]


def direct(base_url: str, reqs, concurrency: int) -> tuple[float, int]:
    """The peer: the same payloads posted with plain httpx at the same concurrency."""
    gen = OpenAICompatibleGenerator(EndpointSettings(base_url=base_url, model=SERVED_MODEL, concurrency=concurrency))
    payloads = [gen._payload(r) for r in reqs]

    async def run() -> int:
        sem = asyncio.Semaphore(concurrency)
        tokens = 0
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:

            async def one(p: dict) -> None:
                nonlocal tokens
                async with sem:
                    r = await client.post(base_url + "/completions", json=p)
                    r.raise_for_status()
                    tokens += (r.json().get("usage") or {}).get("completion_tokens") or 0

            await asyncio.gather(*(one(p) for p in payloads))
        return tokens

    t0 = time.perf_counter()
    tokens = asyncio.run(run())
    return time.perf_counter() - t0, tokens


def platform(base_url: str, reqs, concurrency: int, cache_path: str) -> tuple[float, int]:
    gen = OpenAICompatibleGenerator(
        EndpointSettings(base_url=base_url, model=SERVED_MODEL, concurrency=concurrency), cache_path=cache_path
    )
    t0 = time.perf_counter()
    out = list(gen.generate(reqs))
    wall = time.perf_counter() - t0
    assert len(out) == len(reqs) and gen.stats.cache_hits == 0
    return wall, sum(s.completion_tokens for s in out)


def _serve_stub(port_out) -> None:
    srv = _stub()
    port_out.put(srv.server_address[1])
    srv.serve_forever()


def stub_server():
    """The stub in a process of its own, so it does not share the client's interpreter lock."""
    import multiprocessing as mp

    q = mp.Queue()
    p = mp.Process(target=_serve_stub, args=(q,), daemon=True)
    p.start()
    return p, f"http://127.0.0.1:{q.get(timeout=30)}/v1"


def _stub() -> ThreadingHTTPServer:
    reply = json.dumps(
        {"choices": [{"text": " 42", "finish_reason": "stop"}], "usage": {"prompt_tokens": 60, "completion_tokens": 2}}
    ).encode()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_a: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default backlog of 5 resets connections at this concurrency

    srv = Server(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    return srv


def measure(label: str, base_url: str, n: int, concurrency: int, rounds: int, tmp: str) -> None:
    d_rates, p_rates, d_tok, p_tok = [], [], [], []
    for k in range(rounds):
        reqs = requests_for(n, 1000 + k)  # fresh seeds each round; both peers send the same ones
        wall, tokens = direct(base_url, reqs, concurrency)
        d_rates.append(len(reqs) / wall)
        d_tok.append(tokens / wall)
        wall, tokens = platform(base_url, reqs, concurrency, os.path.join(tmp, f"{label}-{k}.duckdb"))
        p_rates.append(len(reqs) / wall)
        p_tok.append(tokens / wall)
    d, p = statistics.median(d_rates), statistics.median(p_rates)
    print(f"{label}: {n} requests x {rounds} rounds at concurrency {concurrency}")
    print(f"  direct httpx : {d:8.2f} samples/s  {statistics.median(d_tok):8.1f} completion tokens/s")
    print(
        f"  platform     : {p:8.2f} samples/s  {statistics.median(p_tok):8.1f} completion tokens/s "
        "(retries, ordering, response cache on)"
    )
    print(f"  ratio platform/direct: {p / d:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stub-requests", type=int, default=2000)
    ap.add_argument("--stub-concurrency", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_llama_server()
        try:
            requests_for(8, 0)  # warm reasoning-gym before timing
            measure(
                "llama-cpp-python server, Gemma 3 270M", url + "/v1", args.requests, args.concurrency, args.rounds, tmp
            )
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        stub_proc, stub = stub_server()
        try:
            measure(
                "instant-reply stub server (the client's own ceiling)",
                stub,
                args.stub_requests,
                args.stub_concurrency,
                args.rounds,
                tmp,
            )
        finally:
            stub_proc.terminate()


if __name__ == "__main__":
    main()
