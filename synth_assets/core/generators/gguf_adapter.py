"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF, so the trained model is served like the base.

llama.cpp's own ``convert_lora_to_gguf.py`` is not installed by any package (it sits in the
llama-cpp-python source distribution with its own copy of gguf-py, and imports the whole HF
conversion script). For the Gemma 3 projections the conversion is a renaming: this module
writes what that script writes (``general.type=adapter``, ``adapter.type=lora``,
``adapter.lora.alpha``, and per projection ``<gguf name>.lora_a`` [r, in] and ``.lora_b``
[out, r] in f32) with the ``gguf`` package, and maps names with the ``gguf`` package's tensor
map for the architecture. Gemma 3 needs no q/k permutation (only its norms are shifted, and
the adapter has none). ``tests/test_training.py`` checks that llama.cpp with this adapter
agrees with transformers with the PEFT adapter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from synth_assets.core.errors import SynthConfigError

ARCH = "gemma3"


def export_adapter(adapter_dir: str | Path, out_path: str | Path, n_blocks: int = 18) -> Path:
    """Write ``adapter_dir``'s LoRA as a GGUF file at ``out_path`` (atomically)."""
    import gguf
    from safetensors.numpy import load_file

    adir, out = Path(adapter_dir), Path(out_path)
    cfg_path, weights = adir / "adapter_config.json", adir / "adapter_model.safetensors"
    for f in (cfg_path, weights):
        if not f.exists():
            raise SynthConfigError(f"adapter export: {f} is missing; {adir} is not a PEFT LoRA adapter")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("peft_type") != "LORA":
        raise SynthConfigError(f"adapter export: {cfg_path} has peft_type={cfg.get('peft_type')!r}, expected 'LORA'")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_blocks)
    tensors = load_file(str(weights))
    pairs: dict[str, dict[str, object]] = {}
    for key, value in tensors.items():
        # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
        module, _, kind = key.rpartition(".lora_")
        hf = module.removeprefix("base_model.model.")
        gg = names.get_name(hf)
        if gg is None:
            raise SynthConfigError(f"adapter export: {weights} has a LoRA on {hf}, which {ARCH} GGUF has no tensor for")
        pairs.setdefault(gg, {})[kind.split(".")[0]] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(cfg["lora_alpha"]))
    for gg, ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise SynthConfigError(f"adapter export: {weights} has only lora_{''.join(ab)} for {gg}")
        writer.add_tensor(f"{gg}.weight.lora_a", ab["A"].astype("float32"))
        writer.add_tensor(f"{gg}.weight.lora_b", ab["B"].astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def check_adapter(path: str | Path) -> None:
    """Refuse a file that is not a readable LoRA GGUF with tensors: llama.cpp itself accepts a
    header-only file as an empty adapter and would silently serve the base model."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise SynthConfigError(f"LoRA adapter {path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None

    def field(name: str) -> str | None:
        f = reader.fields.get(name)
        return f.contents() if f is not None else None

    kind, lora = field("general.type"), field("adapter.type")
    if kind != "adapter" or lora != "lora":
        raise SynthConfigError(
            f"LoRA adapter {path}: general.type={kind!r}, adapter.type={lora!r}; expected "
            "'adapter' and 'lora' (export it with synth_assets.core.generators.gguf_adapter)"
        )
    names = [t.name for t in reader.tensors]
    if not any(n.endswith(".lora_a") for n in names):
        raise SynthConfigError(f"LoRA adapter {path}: holds no LoRA tensors")
