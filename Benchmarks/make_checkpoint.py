#!/usr/bin/env python3
"""Writes a synthetic Hugging Face checkpoint of bitnet-b1.58-2B-4T's shape (bf16 master weights, random,
sharded like the real one) for measuring `bitnet quantize` speed and memory on a real-sized input.

    python3 Benchmarks/make_checkpoint.py /tmp/bitnet-2b4t-synthetic
    /usr/bin/time -v .build/release/bitnet quantize /tmp/bitnet-2b4t-synthetic -o /tmp/out.gguf

Needs numpy and safetensors only. About 4.8 GB on disk.
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, VOCAB = 2560, 6912, 30, 20, 5, 128256


def bf16(rng, shape, scale=0.02):
    values = (rng.standard_normal(shape, dtype=np.float32) * scale).view(np.uint32)
    return ((values + 0x7FFF + ((values >> 16) & 1)) >> 16).astype(np.uint16)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    head = HIDDEN // HEADS
    weight_map = {}
    shards = [{"model.embed_tokens.weight": bf16(rng, (VOCAB, HIDDEN)), "model.norm.weight": bf16(rng, (HIDDEN,), 1)}]
    for layer in range(LAYERS):
        if layer % 6 == 0:
            shards.append({})
        p = f"model.layers.{layer}."
        shard = shards[-1]
        shard[p + "input_layernorm.weight"] = bf16(rng, (HIDDEN,), 1)
        shard[p + "post_attention_layernorm.weight"] = bf16(rng, (HIDDEN,), 1)
        shard[p + "self_attn.q_proj.weight"] = bf16(rng, (HIDDEN, HIDDEN))
        shard[p + "self_attn.k_proj.weight"] = bf16(rng, (KV_HEADS * head, HIDDEN))
        shard[p + "self_attn.v_proj.weight"] = bf16(rng, (KV_HEADS * head, HIDDEN))
        shard[p + "self_attn.o_proj.weight"] = bf16(rng, (HIDDEN, HIDDEN))
        shard[p + "self_attn.attn_sub_norm.weight"] = bf16(rng, (HIDDEN,), 1)
        shard[p + "mlp.gate_proj.weight"] = bf16(rng, (FFN, HIDDEN))
        shard[p + "mlp.up_proj.weight"] = bf16(rng, (FFN, HIDDEN))
        shard[p + "mlp.down_proj.weight"] = bf16(rng, (HIDDEN, FFN))
        shard[p + "mlp.ffn_sub_norm.weight"] = bf16(rng, (FFN,), 1)
    for index, shard in enumerate(shards):
        name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        # safetensors.numpy has no bf16 dtype: write the bits as uint16 and patch the header's dtype.
        save_file(shard, str(out / name))
        data = (out / name).read_bytes()
        length = int.from_bytes(data[:8], "little")
        header = data[8:8 + length].decode().strip().replace('"U16"', '"BF16"').encode()
        header += b" " * (-len(header) % 8)
        (out / name).write_bytes(len(header).to_bytes(8, "little") + header + data[8 + length:])
        weight_map.update({key: name for key in shard})
        print("wrote", name, flush=True)
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_size": HIDDEN, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True,
        "hidden_act": "relu2", "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}}, indent=1))


if __name__ == "__main__":
    main()
