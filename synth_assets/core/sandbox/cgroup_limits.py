"""Memory and process limits for all of a sandboxed program's processes together.

rlimits are per process: four forked processes under a 512 MB RLIMIT_AS hold 2 GB, and a
tmpfs is not counted at all. A cgroup counts every process of the program and the tmpfs pages
it writes. One cgroup per worker slot is created under this process's own cgroup and reused:
a slot runs one program at a time, and each program's sandbox (and its tmpfs) is gone before
the next starts, so the cgroup's limit is the program's limit.

cgroup v2 (a delegated, writable subtree) and v1 (writable ``memory`` and ``pids``
hierarchies, as on many container hosts) are both supported. Where neither is writable (most
non-root users), ``CgroupLimits.available`` is False and the caller says so at start-up.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ('' key for the v2 hierarchy)."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


@dataclass
class CgroupLimits:
    """Per-slot cgroups with a memory cap (swap included where the kernel accounts it) and a
    process cap; ``join(slot)`` is called in the child before it execs the sandbox."""

    memory_bytes: int
    max_pids: int
    tag: str = field(default_factory=lambda: f"synth_sandbox_{os.getpid()}")
    version: int = 0  # 0: unavailable, 1 or 2
    reason: str = ""
    _dirs: dict[int, list[Path]] = field(default_factory=dict)
    _v2_base: Path = ROOT
    _own: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        own = self._own = _own_paths()
        errors = []
        if (ROOT / "cgroup.controllers").exists():
            base = ROOT / own.get("", "/").lstrip("/")
            ctrl = base / "cgroup.subtree_control"
            try:
                enabled = ctrl.read_text().split()
                for c in ("memory", "pids"):
                    if c not in enabled:
                        ctrl.write_text(f"+{c}")
                probe = base / f"{self.tag}_probe"
                probe.mkdir(exist_ok=True)
                probe.rmdir()
                self.version, self._v2_base = 2, base
                return
            except OSError as exc:
                errors.append(f"cgroup v2 at {base}: {exc.strerror or exc}")
        mem, pids = ROOT / "memory", ROOT / "pids"
        if (mem / "cgroup.procs").exists() and (pids / "cgroup.procs").exists():
            try:
                for hier, c in ((mem, "memory"), (pids, "pids")):
                    probe = hier / own.get(c, "/").lstrip("/") / f"{self.tag}_probe"
                    probe.mkdir(exist_ok=True)
                    probe.rmdir()
                self.version = 1
                return
            except OSError as exc:
                errors.append(f"cgroup v1 memory/pids: {exc.strerror or exc}")
        self.reason = "; ".join(errors) or "no cgroup hierarchy with memory and pids controllers"

    @property
    def available(self) -> bool:
        return self.version > 0

    def prepare(self, slot: int) -> list[Path]:
        """The slot's cgroup directories, created with their limits on first use."""
        if slot in self._dirs:
            return self._dirs[slot]
        own = self._own
        name = f"{self.tag}_{slot}"
        if self.version == 2:
            d = self._v2_base / name
            d.mkdir(exist_ok=True)
            (d / "memory.max").write_text(str(self.memory_bytes))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(self.max_pids))
            dirs = [d]
        else:
            m = ROOT / "memory" / own.get("memory", "/").lstrip("/") / name
            p = ROOT / "pids" / own.get("pids", "/").lstrip("/") / name
            m.mkdir(exist_ok=True)
            p.mkdir(exist_ok=True)
            (m / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
            with contextlib.suppress(OSError):  # only where swap is accounted
                (m / "memory.memsw.limit_in_bytes").write_text(str(self.memory_bytes))
            (p / "pids.max").write_text(str(self.max_pids))
            dirs = [m, p]
        self._dirs[slot] = dirs
        return dirs

    def events_file(self, slot: int) -> Path:
        """The file whose ``oom_kill`` line counts OOM kills in the slot's cgroup (bound read-only
        into the sandbox, where the runner reads it before and after each program)."""
        d = self.prepare(slot)[0]
        return d / ("memory.events" if self.version == 2 else "memory.oom_control")

    def close(self) -> None:
        for dirs in self._dirs.values():
            for d in dirs:
                with contextlib.suppress(OSError):
                    d.rmdir()
        self._dirs.clear()


def join_cgroups(dirs: list[Path]) -> None:
    """Move the calling process into the given cgroups (run in the child, before exec)."""
    pid = str(os.getpid())
    for d in dirs:
        with open(d / "cgroup.procs", "w") as f:
            f.write(pid)
