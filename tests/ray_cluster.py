"""A real local Ray cluster for tests: a head process and worker processes, each started with
``ray start --block`` in a session of its own, so a test can kill one node (every process of
it, its raylet and workers included) and leave the rest running. ``ray stop`` is never used:
it would stop every Ray process on the machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
SMALL_NODE_ENV = {"RAY_enable_metrics_collection": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat's fields after "pid (comm)": state ppid pgrp session ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def session_pids(sid: int) -> list[int]:
    """Every process whose session is ``sid`` (a node's processes)."""
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (st := _stat(p.name)) is not None and int(st[3]) == sid
    ]


def descendants(roots: list[int]) -> list[int]:
    """Every process below ``roots`` (bwrap puts its sandboxes in sessions of their own, so a
    node's session alone misses them)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (st := _stat(p.name)) is not None:
            children.setdefault(int(st[1]), []).append(int(p.name))
    out, todo = [], list(roots)
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def reap_zombies() -> None:
    """Collect exited children of this process: the sandbox makes the test process a
    subreaper, so what a killed node leaves behind is re-parented here."""
    for p in Path("/proc").iterdir():
        st = _stat(p.name) if p.name.isdigit() else None
        if st is not None and int(st[1]) == os.getpid() and st[0] == "Z":
            try:
                os.waitpid(int(p.name), os.WNOHANG)
            except ChildProcessError:
                pass


def runs_under(sid: int, name: str) -> bool:
    """A process called ``name`` whose parent belongs to session ``sid``: a sandbox (bwrap starts
    a session of its own) that a worker of that node launched."""
    for p in Path("/proc").iterdir():
        try:
            if not p.name.isdigit() or (p / "comm").read_text().strip() != name:
                continue
        except OSError:
            continue
        st = _stat(p.name)
        parent = _stat(st[1]) if st else None
        if parent is not None and int(parent[3]) == sid:
            return True
    return False


@dataclass
class RayNode:
    proc: subprocess.Popen

    @property
    def sid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL every process of the node and everything below it (its sandboxes included),
        as a machine that dies would; then collect what was re-parented to this process."""
        pids = session_pids(self.sid)
        for pid in pids + descendants(pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        time.sleep(0.2)
        reap_zombies()


@dataclass
class LocalCluster:
    port: int
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, args: list[str], env: dict | None = None) -> RayNode:
        # a small node's settings (README, "Scaling out"): no log monitor, no metrics collection;
        # measured: the idle cluster's daemons take 9% of a core instead of 14-15% (3 nodes)
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", "--include-log-monitor=false", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={**(env or os.environ), **SMALL_NODE_ENV},
        )
        node = RayNode(proc)
        self.nodes.append(node)
        return node

    def start_head(self, cpus: int = 1) -> RayNode:
        node = self._start(["--head", f"--port={self.port}", f"--num-cpus={cpus}", "--include-dashboard=false"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError("ray head exited at start")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return node
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("ray head did not listen within 120 s")

    def add_worker(self, cpus: int = 1, env: dict | None = None) -> RayNode:
        return self._start([f"--address={self.address}", f"--num-cpus={cpus}"], env)

    def wait_for_nodes(self, n: int, timeout_s: float = 120) -> None:
        """Until ``n`` nodes are alive, asked from a separate process (this one may not be
        connected to the cluster yet, and must not be connected twice)."""
        code = (
            f"import ray; ray.init(address='{self.address}', logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for x in ray.nodes() if x['Alive']))"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            if r.returncode == 0 and r.stdout.strip() and int(r.stdout.strip().splitlines()[-1]) >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"fewer than {n} Ray nodes alive after {timeout_s} s")

    def close(self) -> None:
        for node in reversed(self.nodes):
            if node.proc.poll() is None:
                node.kill()


def start_cluster(workers: int = 1, worker_env: dict | None = None) -> LocalCluster:
    cluster = LocalCluster(free_port())
    try:
        cluster.start_head()
        for _ in range(workers):
            cluster.add_worker(env=worker_env)
        cluster.wait_for_nodes(1 + workers)
    except BaseException:
        cluster.close()
        raise
    return cluster
