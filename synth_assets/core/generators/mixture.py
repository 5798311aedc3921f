"""Several generators in one run, each with a share of the samples: different models, prompt
personas and temperatures give a generation more diverse sources than any one of them.

Routing is deterministic (largest-remainder counts, interleaved by smooth weighted round robin
over the planned requests), so a task's samples spread over the members, the realised shares
match the configured ones to within one sample, and a resumed run sends every request to the
member (and response-cache key) it went to before.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import Sample, SampleRequest, TextGenerator


@dataclass
class Member:
    name: str  # recorded on every row as "<backend>:<name>"
    generator: TextGenerator
    share: float
    temperature: float | None = None  # overrides the plan's temperature for this member's samples
    template_suffix: str = ""  # appended to the prompt template name (e.g. the persona)
    prompt_template: str | None = None  # wraps the planned prompt: must contain "{prompt}"


def route(n_requests: int, shares: Sequence[float]) -> list[int]:
    """Member index for each request: each member's count is its share of ``n_requests`` rounded
    by largest remainder (so within one sample of exact), and the members interleave (smooth
    weighted round robin over those integer counts, which over one full cycle picks each member
    exactly its count)."""
    total = float(sum(shares))
    ideal = [n_requests * s / total for s in shares]
    quota = [int(x) for x in ideal]
    by_remainder = sorted(range(len(shares)), key=lambda j: (-(ideal[j] - quota[j]), j))
    for j in by_remainder[: n_requests - sum(quota)]:
        quota[j] += 1
    current = [0] * len(shares)
    out = []
    for _ in range(n_requests):
        for j, q in enumerate(quota):
            current[j] += q
        best = max(range(len(shares)), key=lambda j: (current[j], -j))
        current[best] -= n_requests
        out.append(best)
    return out


class MixtureGenerator:
    """A ``TextGenerator`` that spreads requests over members and runs them side by side."""

    name = "mixture"

    def __init__(self, members: Sequence[Member]) -> None:
        if not members:
            raise SynthConfigError("generator.members: list at least one generator")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise SynthConfigError(f"generator.members: names must be unique, got {names}")
        for m in members:
            if not m.share > 0:
                raise SynthConfigError(f"generator.members[{m.name}].share must be > 0, got {m.share}")
            if m.prompt_template is not None and "{prompt}" not in m.prompt_template:
                raise SynthConfigError(
                    f"generator.members[{m.name}].prompt_template must contain {{prompt}}, where the task's prompt goes"
                )
        self.members = list(members)
        self.model = " + ".join(f"{m.generator.model} ({m.share:g})" for m in members)
        self.terms = "; ".join(sorted({t for m in members if (t := getattr(m.generator, "terms", None))})) or None

    def member_requests(self, requests: Sequence[SampleRequest]) -> list[tuple[int, SampleRequest]]:
        """(member index, the request as that member sends it) for each request, in order."""
        out = []
        for j, req in zip(route(len(requests), [m.share for m in self.members]), requests):
            m = self.members[j]
            changes = {}
            if m.temperature is not None:
                changes["temperature"] = float(m.temperature)
            if m.prompt_template is not None:
                changes["prompt"] = m.prompt_template.replace("{prompt}", req.prompt)
            if m.template_suffix:
                changes["prompt_template"] = f"{req.prompt_template}+{m.template_suffix}"
            out.append((j, dataclasses.replace(req, **changes) if changes else req))
        return out

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        routed = self.member_requests(requests)
        out: queue.Queue = queue.Queue()
        threads = []
        for j, m in enumerate(self.members):
            mine = [(i, r) for i, (jj, r) in enumerate(routed) if jj == j]
            if not mine:
                continue

            def work(m: Member = m, mine: list = mine) -> None:
                price = (getattr(m.generator, "prices", None) or {}).get(m.generator.model)
                who = {
                    "generator": f"{m.generator.name}:{m.name}",
                    "model": m.generator.model,
                    "terms": getattr(m.generator, "terms", None),
                    "prices": tuple(price) if price else None,
                }
                try:
                    for (i, r), sample in zip(mine, m.generator.generate([r for _i, r in mine]), strict=True):
                        out.put((i, dataclasses.replace(sample, request=r, **who)))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    out.put((-1, exc))

            t = threading.Thread(target=work, name=f"generator-{m.name}", daemon=True)
            t.start()
            threads.append(t)
        ready: dict[int, Sample] = {}
        for i in range(len(requests)):
            while i not in ready:
                j, value = out.get()
                if j < 0:
                    for t in threads:  # let the other members finish (and cache) what they started
                        t.join()
                    raise value
                ready[j] = value
            yield ready.pop(i)
        for t in threads:
            t.join()

    def stats(self) -> dict[str, dict]:
        return {m.name: s.as_dict() for m in self.members if (s := getattr(m.generator, "stats", None)) is not None}
