"""Closing the loop: train the next generator on the verified mix, evaluate it against the model
in service on held-out human tasks, and promote it only when it is better.

Dagster-free like the rest of the core: ``base_model`` (the packaged GGUF as a transformers
checkpoint), ``prompt_format`` (mix rows as the exact text the generator is prompted with),
``trainer`` (LoRA with PEFT on the CPU), ``gguf_adapter`` (the adapter as a llama.cpp LoRA),
``external`` (a user's trainer command), ``heldout`` (held-out and shifted reasoning-gym items),
``evaluation`` (greedy pass rates, paired), ``gate`` (the promotion decision) and ``registry``
(every model, its lineage and which one is in service, in DuckDB).
"""
