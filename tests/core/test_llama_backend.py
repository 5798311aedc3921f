"""The embedded model: assembled from the PyPI package and checked against its SHA256 sums."""

import hashlib

import pytest

from synth_assets.core.generators.generation import SampleRequest
from synth_assets.core.generators.llama_backend import LlamaCppGenerator, ensure_model_file, packaged_sha256

pytestmark = pytest.mark.model


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_model_file_matches_the_packaged_sha256_and_tampering_is_repaired(tmp_path):
    path = ensure_model_file(str(tmp_path))
    assert sha(path) == packaged_sha256()
    with path.open("r+b") as f:  # flip bytes in the middle of the weights
        f.seek(1_000_000)
        f.write(b"\x00" * 16)
    repaired = ensure_model_file(str(tmp_path))
    assert sha(repaired) == packaged_sha256()


def test_real_model_completes_with_provenance():
    gen = LlamaCppGenerator()
    req = SampleRequest(
        task_id="t",
        prompt="Question: What is 2 + 2?\nAnswer:",
        prompt_template="p",
        temperature=0.0,
        top_p=1.0,
        max_tokens=4,
        stop=("\n",),
        seed=1,
        sample_index=0,
    )
    a, b = list(gen.generate([req, req]))
    assert a.text == b.text  # same seed and settings: same sample
    assert a.completion_tokens >= 1 and a.prompt_tokens > 5 and a.latency_s > 0
    assert req.key(gen.model) == req.key(gen.model) != req.key("another-model")
