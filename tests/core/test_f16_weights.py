"""The batched path's F16 copy of the model (issue 16): every quantized block weight rounded to
F16 and nothing else changed, written once and atomically, chosen by a setting."""

import os

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf.quants import dequantize

from synth_assets.core.errors import SynthConfigError
from synth_assets.core.generators import f16_weights
from synth_assets.core.generators.f16_weights import f16_copy, wants_f16
from synth_assets.core.generators.llama_backend import (
    LlamaCppGenerator,
    ensure_model_file,
    file_sha256,
    packaged_sha256,
)


@pytest.fixture(scope="module")
def copied(tmp_path_factory):
    cache = tmp_path_factory.mktemp("model_cache")
    src = ensure_model_file()
    return src, f16_copy(src, packaged_sha256(), cache), cache


@pytest.mark.slow
@pytest.mark.model
def test_the_copy_rounds_every_quantized_block_weight_to_f16_and_keeps_the_rest_byte_for_byte(copied):
    src, dst, _cache = copied
    a, b = GGUFReader(src), GGUFReader(dst)
    by_name = {t.name: t for t in b.tensors}
    assert sorted(by_name) == sorted(t.name for t in a.tensors)
    kinds = set()
    for t in a.tensors:
        c, qtype = by_name[t.name], Q(t.tensor_type)
        if t.name.startswith("blk.") and qtype not in (Q.F32, Q.F16):
            assert Q(c.tensor_type) == Q.F16
            if qtype not in kinds:  # one tensor of each stored type, compared value by value
                kinds.add(qtype)
                want = dequantize(t.data, qtype).astype(np.float16).reshape(-1)
                assert np.array_equal(np.asarray(c.data).reshape(-1), want)
        else:
            assert Q(c.tensor_type) == qtype and bytes(np.asarray(c.data)) == bytes(np.asarray(t.data))
    assert kinds == {Q.Q5_0, Q.Q4_K, Q.Q6_K, Q.Q8_0}
    assert a.fields["tokenizer.ggml.tokens"].contents() == b.fields["tokenizer.ggml.tokens"].contents()


@pytest.mark.slow
@pytest.mark.model
def test_the_copy_is_written_once_and_a_source_with_nothing_to_convert_is_served_as_it_is(copied):
    src, dst, cache = copied
    stamp = dst.stat().st_mtime_ns
    assert f16_copy(src, packaged_sha256(), cache) == dst and dst.stat().st_mtime_ns == stamp
    assert f16_copy(dst, file_sha256(dst), cache) == dst  # already F16: no second copy
    assert sorted(p.suffix for p in cache.iterdir()) == [".gguf", ".unquantized"]


@pytest.mark.model
def test_a_failed_write_leaves_no_file_and_says_how_to_go_on(tmp_path, monkeypatch):
    def disk_full_double(src, dst):
        """Test double for the writer: half a file, then the disk is full."""
        dst.write_bytes(b"GGUF" + b"\0" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(f16_weights, "_write_f16", disk_full_double)
    src = ensure_model_file()
    with pytest.raises(SynthConfigError, match=rf"F16 copy of {src} .*No space left.*batched_weights = 'stored'"):
        f16_copy(src, packaged_sha256(), tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_file_that_is_not_gguf_is_named(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_text("not a model")
    with pytest.raises(SynthConfigError, match=f"{bad} is not a GGUF file"):
        f16_copy(bad, file_sha256(bad), tmp_path / "cache")


def test_auto_serves_small_files_as_f16_and_large_ones_as_stored(tmp_path):
    small, large = tmp_path / "small.gguf", tmp_path / "large.gguf"
    small.write_bytes(b"\0" * 1024)
    with large.open("wb") as f:  # sparse: 2 GB without writing it
        f.truncate(2 << 30)
    assert [wants_f16("auto", small), wants_f16("auto", large)] == [True, False]
    assert [wants_f16("f16", large), wants_f16("stored", small)] == [True, False]


@pytest.mark.model
def test_a_batched_generator_computes_with_the_copy_and_a_sequential_one_with_the_stored_file():
    stored = ensure_model_file()
    batched = LlamaCppGenerator(n_ctx=256, parallel=2)
    try:
        assert batched.weights_path.name.endswith(".f16.gguf") and batched.path == stored
    finally:
        batched.close()
    for gen in (
        LlamaCppGenerator(n_ctx=256, parallel=1),
        LlamaCppGenerator(n_ctx=256, parallel=2, batched_weights="stored"),
    ):
        assert gen.weights_path == stored
        gen.close()
