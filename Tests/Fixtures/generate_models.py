#!/usr/bin/env python3
"""Tiny random BitNet models and transformers' logits for them: the engine's parity fixtures.

    .venv/bin/python Tests/Fixtures/generate_models.py

Each model is a `BitNetForCausalLM` (bitnet-b1.58-2B-4T's architecture) with transformers' default
initialization (std 0.02) and norm weights perturbed around 1 (so a skipped or misplaced norm shows), saved
with `quantization_config` autobitlinear/online: bf16 or f16 master weights that the QAT forward ternarizes
on the fly. The reference runs that checkpoint in float32 (the master weights widen exactly) and records
the logits at every position of a random prompt followed by its greedy continuation.
"""
import json
import shutil
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent / "models"

MODELS = {
    # name: (hidden, intermediate, heads, kv heads, layers, vocab, tied, dtype)
    "bitnet-gqa-tied-bf16": (256, 512, 4, 2, 4, 320, True, torch.bfloat16),
    "bitnet-mha-untied-f16": (256, 512, 4, 4, 2, 320, False, torch.float16),
    "bitnet-gqa-wide-bf16": (512, 512, 8, 2, 2, 256, False, torch.bfloat16),
    # One layer with the byte-level test tokenizer (vocabulary 1200) and 2B-4T's chat template.
    "bitnet-chat-tiny": (256, 512, 4, 2, 1, 1200, True, torch.bfloat16),
}
TOKENIZER = Path(__file__).resolve().parent / "tokenizers" / "byte-level"
# bitnet-b1.58-2B-4T's chat template (tokenizer_config.json).
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
                 "{% set content = message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' %}"
                 "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")
PROMPT_LENGTH = 10
NEW_TOKENS = 10


def build(name, spec, seed):
    from transformers import BitNetConfig, BitNetForCausalLM

    hidden, intermediate, heads, kv_heads, layers, vocab, tied, dtype = spec
    config = BitNetConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                          num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                          max_position_embeddings=256, tie_word_embeddings=tied,
                          bos_token_id=0 if "chat" in name else 1, eos_token_id=[1, 2] if "chat" in name else 2,
                          rope_theta=10000.0 if "mha" in name else 500000.0)
    config.quantization_config = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                  "quantization_mode": "online"}
    torch.manual_seed(seed)
    model = BitNetForCausalLM(config)
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if parameter_name.endswith("norm.weight"):
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
    directory = HERE / name
    shutil.rmtree(directory, ignore_errors=True)
    model.to(dtype).save_pretrained(str(directory))
    if "chat" in name:
        shutil.copy(TOKENIZER / "tokenizer.json", directory / "tokenizer.json")
        (directory / "tokenizer_config.json").write_text(json.dumps({
            "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT_TEMPLATE}, indent=1) + "\n")
    return directory


def reference(directory, seed):
    from transformers import AutoModelForCausalLM
    from transformers.integrations.bitnet import AutoBitLinear

    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32, attn_implementation="eager")
    model.eval()
    quantized = sorted({type(m).__name__ for n, m in model.named_modules() if "proj" in n})
    assert quantized == ["AutoBitLinear"] and all(m.online_quant for m in model.modules() if isinstance(m, AutoBitLinear))
    assert not isinstance(model.lm_head, AutoBitLinear), "lm_head stays a float linear layer"
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, model.config.vocab_size, (1, PROMPT_LENGTH), generator=generator)
    with torch.no_grad():
        full = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS,
                              pad_token_id=0, eos_token_id=None)
        logits = model(full).logits[0].float()
    return full[0].to(torch.int32), logits


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.attn_sub_norm": "attn_sub_norm",
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.ffn_sub_norm": "ffn_sub_norm",
}


def export_gguf(directory, qtype):
    """The same checkpoint as a bitnet.cpp-style GGUF (arch bitnet-b1.58), written by gguf-py: BitLinear
    weights ternarized by transformers' WeightQuant and packed by gguf-py's own quantizer."""
    import gguf
    from gguf.quants import quantize
    from safetensors.torch import load_file
    from transformers import BitNetConfig
    from transformers.integrations.bitnet import WeightQuant

    config = BitNetConfig.from_pretrained(str(directory))
    weights = load_file(str(directory / "model.safetensors"))
    arch = "bitnet-b1.58"
    path = directory.parent / f"{directory.name}-{qtype.name.lower()}.gguf"
    writer = gguf.GGUFWriter(str(path), arch=arch)
    writer.add_name(directory.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    if (directory / "tokenizer.json").exists():
        # The tokenizer as llama.cpp's converter stores it, copied from the byte-level fixture.
        reader = gguf.GGUFReader(str(TOKENIZER / "tokenizer.gguf"))
        for field in reader.fields.values():
            if field.name.startswith("tokenizer."):
                value = field.contents()
                sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
                writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)
        writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in weights.items():
        if name == "model.embed_tokens.weight":
            writer.add_tensor("token_embd.weight", tensor.to(torch.float16).numpy())
        elif name == "lm_head.weight":
            writer.add_tensor("output.weight", tensor.to(torch.float16).numpy())
        elif name == "model.norm.weight":
            writer.add_tensor("output_norm.weight", tensor.float().numpy())
        else:
            layer, rest = name.removeprefix("model.layers.").split(".", 1)
            role = GGUF_NAMES[rest.removesuffix(".weight")]
            target = f"blk.{layer}.{role}.weight"
            if tensor.dim() == 1:
                writer.add_tensor(target, tensor.float().numpy())
            else:
                values = WeightQuant.apply(tensor.float()).numpy()
                writer.add_tensor(target, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    from safetensors.torch import save_file

    summary = {}
    for index, (name, spec) in enumerate(MODELS.items()):
        directory = build(name, spec, seed=100 + index)
        tokens, logits = reference(directory, seed=200 + index)
        save_file({"tokens": tokens.contiguous(), "logits": logits.contiguous()}, str(directory / "reference-logits.safetensors"))
        summary[name] = {"prompt_length": PROMPT_LENGTH, "tokens": tokens.tolist()}
        from gguf import GGMLQuantizationType
        if name == "bitnet-gqa-tied-bf16":
            for qtype in (GGMLQuantizationType.TQ2_0, GGMLQuantizationType.TQ1_0):
                export_gguf(directory, qtype)
        if name == "bitnet-chat-tiny":
            export_gguf(directory, GGMLQuantizationType.TQ2_0)
        print(name, "tokens", tokens.tolist())
    (HERE / "models.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
