"""The peak resident memory of one stage of work, so a run log can say what a stage needed.

``ru_maxrss`` is the process's peak since it started, so in a run that executes every step in
one process it cannot tell the training step from the generation step before it. Linux resets
the peak (``VmHWM``) when "5" is written to ``/proc/self/clear_refs``; the stage's peak is then
``VmHWM`` at its end. Where that file cannot be written (a hardened container, not Linux), a
thread samples ``VmRSS`` every 50 ms instead and the figure is marked as sampled.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """The process's resident memory now (0 where /proc is not there)."""
    return (_status_kb("VmRSS") or 0) * 1024


@dataclass
class Peak:
    """Filled in when the ``peak_rss`` block ends."""

    bytes: int = 0
    sampled: bool = False  # True: the highest of 50 ms samples, not the kernel's exact peak

    @property
    def gb(self) -> float:
        return self.bytes / 1e9

    def __str__(self) -> str:
        return f"{self.gb:.2f} GB" + (" (sampled)" if self.sampled else "")


@contextlib.contextmanager
def peak_rss() -> Iterator[Peak]:
    """``with peak_rss() as peak: ...``; afterwards ``peak.bytes`` is the block's peak RSS."""
    peak = Peak()
    try:
        _CLEAR_REFS.write_text("5")
        exact = _status_kb("VmHWM") is not None
    except OSError:
        exact = False
    if exact:
        try:
            yield peak
        finally:
            peak.bytes = (_status_kb("VmHWM") or 0) * 1024
        return
    peak.sampled, stop = True, threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak.bytes = max(peak.bytes, rss_bytes())

    peak.bytes = rss_bytes()
    watcher = threading.Thread(target=sample, name="peak-rss", daemon=True)
    watcher.start()
    try:
        yield peak
    finally:
        stop.set()
        watcher.join()
        peak.bytes = max(peak.bytes, rss_bytes())
