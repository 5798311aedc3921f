"""The model-collapse setting in miniature, to calibrate and test the drift report.

A word n-gram language model is trained on human text, samples a corpus, and the next
generation's model is trained on that corpus:

* ``replace``: each generation trains only on the previous generation's samples (the setting
  in which Shumailov et al. observe collapse: the tails of the distribution vanish);
* ``accumulate``: each generation trains on the human data plus every earlier generation's
  samples (Gerstgrasser et al.: no collapse);
* ``human``: the control; every "generation" is human text (the seed shuffles which).

Knobs for accumulation that settles lower (``Scenario``): ``train_cap`` trains each model on a
draw of that many sentences from the pool (human data and all samples so far; a fixed training
budget, as in Kazdan et al.'s accumulate-subsample), which levels off further below
generation 1 the smaller it is; ``temperature`` below 1 sharpens every sample, which compounds
and does not level off within ten generations.

The human text is the docstrings of Python's standard library, read with ``ast`` (no import,
no network): English technical prose, about 130k words.
"""

from __future__ import annotations

import ast
import bisect
import hashlib
import random
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from synth_assets.core.quality.drift import DriftSettings, corpus_report

_SENT = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[.,;:()]")


def human_sentences(min_tokens: int = 6, max_tokens: int = 40) -> list[str]:
    """Docstring sentences of the stdlib, normalised, deduplicated, in a stable shuffled order."""
    root = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    seen, out = set(), []
    for f in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node) or ""
                for sent in _SENT.split(doc):
                    toks = _WORD.findall(" ".join(sent.split()).lower())
                    if min_tokens <= len(toks) <= max_tokens and ">>>" not in sent:
                        s = " ".join(toks)
                        if s not in seen:
                            seen.add(s)
                            out.append(s)
    return sorted(out, key=lambda s: hashlib.sha1(s.encode()).hexdigest())


class NGramLM:
    """Maximum-likelihood word n-gram model: it can only emit n-grams it has seen."""

    def __init__(self, sentences: list[str], order: int = 2, temperature: float = 1.0) -> None:
        self.order = order
        counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for s in sentences:
            toks = ["<s>"] * (order - 1) + s.split() + ["</s>"]
            for i in range(order - 1, len(toks)):
                counts[tuple(toks[i - order + 1 : i])][toks[i]] += 1
        self.table: dict[tuple[str, ...], tuple[list[str], list[float]]] = {}
        for ctx, nxt in counts.items():
            words = sorted(nxt)
            cum, total = [], 0
            for w in words:  # temperature < 1 sharpens each choice (counts ** (1 / T)), as a sampler's would
                total += nxt[w] if temperature == 1 else nxt[w] ** (1 / temperature)
                cum.append(total)
            self.table[ctx] = (words, cum)

    def sample(self, n: int, rng: random.Random, max_len: int = 40) -> list[str]:
        out = []
        for _ in range(n):
            ctx, words = ("<s>",) * (self.order - 1), []
            while len(words) < max_len:
                choices, cum = self.table[ctx]
                w = choices[bisect.bisect_right(cum, rng.random() * cum[-1])]
                if w == "</s>":
                    break
                words.append(w)
                ctx = (*ctx[1:], w) if self.order > 1 else ()
            if words:
                out.append(" ".join(words))
        return out


@dataclass(frozen=True)
class Scenario:
    generations: int = 6
    sentences_per_generation: int = 2000
    train_sentences: int = 2000
    order: int = 2
    seed: int = 0
    temperature: float = 1.0  # the sampler's; below 1 every generation sharpens its model's choices
    train_cap: int | None = None  # accumulate: each model trains on this many sentences drawn from the pool


def run(mode: str, sc: Scenario, corpus: list[str] | None = None) -> tuple[dict[int, list[str]], list[str]]:
    """(texts by generation, human reference) for one mode."""
    corpus = corpus or human_sentences()
    need = sc.train_sentences + sc.sentences_per_generation * (sc.generations + 1)
    if len(corpus) < min(need, sc.train_sentences + 2 * sc.sentences_per_generation):
        raise ValueError(f"human corpus has {len(corpus)} sentences; the scenario needs more")
    reference = corpus[: sc.sentences_per_generation]
    train = corpus[sc.sentences_per_generation : sc.sentences_per_generation + sc.train_sentences]
    fresh = corpus[sc.sentences_per_generation + sc.train_sentences :]
    rng = random.Random(sc.seed)
    by_gen: dict[int, list[str]] = {}
    data = list(train)
    human_pool = rng.sample(fresh + train, len(fresh) + len(train)) if mode == "human" else []
    for g in range(1, sc.generations + 1):
        if mode == "human":  # consecutive slices of the seed's shuffle of the human text (wrapping round)
            k = sc.sentences_per_generation
            start = k * (g - 1) % len(human_pool)
            by_gen[g] = (human_pool * 2)[start : start + k]
            continue
        pool = data if sc.train_cap is None or len(data) <= sc.train_cap else rng.sample(data, sc.train_cap)
        samples = NGramLM(pool, sc.order, sc.temperature).sample(sc.sentences_per_generation, rng)
        by_gen[g] = samples
        data = samples if mode == "replace" else data + samples
    return by_gen, reference


def alerts(
    mode: str,
    sc: Scenario,
    settings: DriftSettings,
    corpus: list[str] | None = None,
    texts: tuple[dict[int, list[str]], list[str]] | None = None,
) -> list[dict]:
    """Per generation from 2 on: the DIVERSITY_LOSS and FIDELITY_GAP statuses and the core
    metrics' changes vs G1; ``texts``: the scenario's ``run`` when it was already run."""
    by_gen, reference = texts or run(mode, sc, corpus)
    out, state = [], None
    for g in range(2, sc.generations + 1):
        rep = corpus_report("sim", by_gen, reference, g, settings, state)  # as the asset: the last report's state
        row = {"mode": mode, "generation": g}
        for r in rep.iter_rows(named=True):
            if r["metric"] in ("distinct_2", "rare_type_coverage", "compression_ratio", "js_distance_to_human"):
                row[r["metric"]] = r["change_vs_first"]
                row[f"{r['metric']}_status"] = r["status"]
            if r["metric"] in ("DIVERSITY_LOSS", "FIDELITY_GAP"):
                row[r["metric"]] = r["status"]
            if r["metric"] == "DIVERSITY_LOSS":
                row["DIVERSITY_LOSS_note"] = r["note"]
        state = row["DIVERSITY_LOSS"]
        out.append(row)
    return out
