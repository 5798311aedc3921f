"""A copy of a GGUF model with its transformer blocks' weights stored as F16, for the batched path.

Why: with many sequences per step, a step of a small model is compute-bound on a CPU, and
llama.cpp's AVX2 F16 matrix kernels outrun its 4- and 5-bit dot products there: on the default
Gemma 3 270M (2 cores), prompt evaluation ran 1.45-1.80x faster and a 16-sequence decode step
1.15x (`bench/f16_weights.py`, 2026-12-02). One request at a time is memory-bound instead, and
the smaller stored weights win (single-stream decoding 46 vs 37 tokens/s), so the sequential
path keeps the file as stored.

What changes: each quantized block weight is dequantized (exactly, by gguf-py) and rounded to
the nearest F16, a relative change of at most 2^-11 per weight (below F16's normal range, 6e-5,
an absolute one under 3e-8). The original kernels quantize
the activations to 8 bits per 32-value block before every product, a larger rounding than this
one, so the copy computes the same model at least as precisely. The token embedding (also the
output layer) and every norm stay as stored. Pass rates on both paths are compared by
`bench/batched_generation.py`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from synth_assets.core.errors import SynthConfigError

# a small model's batch steps are compute-bound here; a larger one's F16 copy would cost more
# memory than it saves time (a 7B model: 14 GB)
AUTO_MAX_BYTES = 1 << 30
UNQUANTIZED = frozenset({"F32", "F16", "BF16"})


def wants_f16(mode: str, path: Path) -> bool:
    """Whether the batched path serves ``path`` as an F16 copy: ``mode`` is the setting
    (``auto``: only for files under 1 GB, ``f16``, ``stored``)."""
    if mode == "auto":
        return path.stat().st_size < AUTO_MAX_BYTES
    return mode == "f16"


def f16_copy(src: Path, digest: str, cache_dir: Path, log: Callable[[str], None] = lambda _m: None) -> Path:
    """The F16 copy of ``src`` in ``cache_dir``, written once per source content (the name
    carries ``digest``, the source's SHA256, which the caller often knows without hashing 250 MB
    again) and atomically (a failed or killed write leaves no file that a later run would load);
    ``src`` itself when none of its block weights is quantized."""
    target = cache_dir / f"{src.stem}-{digest[:16]}.f16.gguf"
    plain = target.with_suffix(".unquantized")  # marks a source with nothing to convert
    if target.exists():
        return target
    if plain.exists():
        return src
    if not _quantized_blocks(src):  # reading the header parses every field: seconds for a 262k vocabulary
        cache_dir.mkdir(parents=True, exist_ok=True)
        plain.touch()
        return src
    cache_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=target.name, suffix=".partial")
    os.close(fd)
    try:
        converted = _write_f16(src, Path(tmp))
        os.replace(tmp, target)
    except (ValueError, KeyError, OSError, NotImplementedError) as exc:  # gguf-py cannot dequantize every type
        raise SynthConfigError(
            f"generator: could not write an F16 copy of {src} ({exc}); serve the stored "
            "weights instead: generator.batched_weights = 'stored'"
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    log(f"generator: wrote {target} ({converted} block weights as F16) in {time.perf_counter() - t0:.1f}s")
    return target


def _quantized_blocks(src: Path) -> int:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader

    try:
        reader = GGUFReader(src)
    except (ValueError, OSError) as exc:
        raise SynthConfigError(f"generator: {src} is not a GGUF file llama.cpp can load ({exc})") from None
    return sum(t.name.startswith("blk.") and Q(t.tensor_type).name not in UNQUANTIZED for t in reader.tensors)


def _write_f16(src: Path, dst: Path) -> int:
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(src)
    writer = GGUFWriter(dst, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # the writer sets these itself
        kind = field.types[0]
        sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), kind, sub_type=sub)
    converted = 0
    for t in reader.tensors:
        qtype = Q(t.tensor_type)
        if t.name.startswith("blk.") and qtype.name not in UNQUANTIZED:
            shape = tuple(int(x) for x in reversed(t.shape))
            writer.add_tensor(t.name, dequantize(t.data, qtype).reshape(shape).astype(np.float16))
            converted += 1
        else:
            writer.add_tensor(t.name, np.asarray(t.data), raw_shape=t.data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return converted
