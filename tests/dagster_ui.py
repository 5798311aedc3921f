"""A running dagster-webserver, as tests talk to it: a free port, waiting until the server and
its code location are up, and GraphQL queries (what the UI itself sends)."""

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(port: int, seconds: float = 90, log: Path | None = None) -> None:
    """Poll /server_info until the webserver answers (7-15 s here, more under load)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"dagster-webserver did not come up in {seconds:.0f} s" + (f":\n{log.read_text()[-3000:]}" if log else "")
    )


def wait_for_location(port: int, seconds: float = 240) -> None:
    """/server_info answers before the code location has loaded; on a cold machine loading takes
    a while longer. Wait until the workspace reports it LOADED."""
    deadline, status = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        entries = gql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }")
        status = {e["name"]: e["loadStatus"] for e in entries["workspaceOrError"]["locationEntries"]}
        if status.get("synth_platform") == "LOADED":
            return
        time.sleep(1)
    pytest.fail(f"code location not loaded after {seconds:.0f} s: {status}")


def gql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        method="POST",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    assert "errors" not in body, body
    return body["data"]
