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


def export_gguf(directory, arch, qtype, names, ternary_values, suffix):
    """The checkpoint in `directory` as a GGUF written by gguf-py, the way llama.cpp's and bitnet.cpp's
    converters lay it out: f16 embeddings, f32 norms, BitLinear weights packed by gguf-py's quantizer from
    the float values `ternary_values(name, role, tensor)` returns."""
    import gguf
    from gguf.quants import quantize
    from safetensors.torch import load_file

    config = json.loads((directory / "config.json").read_text())
    weights = load_file(str(directory / "model.safetensors"))
    heads = config["num_attention_heads"]
    writer = gguf.GGUFWriter(str(directory.parent / f"{directory.name}-{suffix}.gguf"), arch=arch)
    writer.add_name(directory.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(config.get("rope_theta") or config["rope_parameters"]["rope_theta"])
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_vocab_size(config["vocab_size"])
    if (directory / "tokenizer.json").exists():
        # The tokenizer as llama.cpp's converter stores it, copied from the byte-level fixture.
        reader = gguf.GGUFReader(str(TOKENIZER / "tokenizer.gguf"))
        for field in reader.fields.values():
            if field.name.startswith("tokenizer."):
                sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
                writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
        writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in weights.items():
        if name.endswith("weight_scale"):
            continue
        if name == "model.embed_tokens.weight":
            writer.add_tensor("token_embd.weight", tensor.to(torch.float16).numpy())
        elif name == "lm_head.weight":
            writer.add_tensor("output.weight", tensor.to(torch.float16).numpy())
        elif name == "model.norm.weight":
            writer.add_tensor("output_norm.weight", tensor.float().numpy())
        else:
            layer, rest = name.removeprefix("model.layers.").split(".", 1)
            role = names[rest.removesuffix(".weight")]
            target = f"blk.{layer}.{role}.weight"
            if tensor.dim() == 1:
                writer.add_tensor(target, tensor.float().numpy())
            else:
                values = ternary_values(name, role, tensor, weights, config)
                writer.add_tensor(target, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def export_bitnet_gguf(directory, qtype):
    """bitnet.cpp's layout (arch bitnet-b1.58): weights ternarized by transformers' WeightQuant."""
    from transformers.integrations.bitnet import WeightQuant

    export_gguf(directory, "bitnet-b1.58", qtype, GGUF_NAMES,
                lambda name, role, tensor, weights, config: WeightQuant.apply(tensor.float()).numpy(),
                qtype.name.lower())


class OneBitLLMBitLinear(torch.nn.Linear):
    """1bitLLM's BitLinear (utils_quant.py of bitnet_b1_58-large), forward pass only."""

    def forward(self, x):
        w = self.weight.float()
        s = 1 / w.abs().mean().clamp(min=1e-5)
        w = (w * s).round().clamp(-1, 1) / s
        a = 127 / x.float().abs().max(dim=-1, keepdim=True).values.clamp(min=1e-5)
        x = (x.float() * a).round().clamp(-128, 127) / a
        return torch.nn.functional.linear(x, w)


LLAMA_SPEC = dict(vocab_size=288, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                  rope_theta=10000.0, bos_token_id=1, eos_token_id=2)


def one_bit_llm(seed):
    """The 1bitLLM architecture (BitnetForCausalLM): transformers' Llama classes with 1bitLLM's BitLinear
    and its two sub-norms, inner_attn_ln before o_proj and ffn_layernorm before down_proj."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    config = LlamaConfig(**LLAMA_SPEC, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():  # bf16 master weights, widened exactly
            parameter.copy_(parameter.to(torch.bfloat16).float())
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_((1 + 0.2 * torch.randn_like(parameter)).to(torch.bfloat16).float())
    state = {}
    for index, layer in enumerate(model.model.layers):
        prefix = f"model.layers.{index}."
        for holder, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")), (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):
            for name in names:
                linear = getattr(holder, name)
                replacement = OneBitLLMBitLinear(linear.in_features, linear.out_features, bias=False)
                replacement.weight = linear.weight
                setattr(holder, name, replacement)
        attn_norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        ffn_norm = LlamaRMSNorm(config.intermediate_size, eps=config.rms_norm_eps)
        with torch.no_grad():
            attn_norm.weight.copy_((1 + 0.2 * torch.randn(config.hidden_size)).to(torch.bfloat16).float())
            ffn_norm.weight.copy_((1 + 0.2 * torch.randn(config.intermediate_size)).to(torch.bfloat16).float())
        layer.self_attn.o_proj = torch.nn.Sequential(attn_norm, layer.self_attn.o_proj)
        layer.mlp.down_proj = torch.nn.Sequential(ffn_norm, layer.mlp.down_proj)
    for name, tensor in model.state_dict().items():
        name = (name.replace("self_attn.o_proj.0.", "self_attn.inner_attn_ln.").replace("self_attn.o_proj.1.", "self_attn.o_proj.")
                .replace("mlp.down_proj.0.", "mlp.ffn_layernorm.").replace("mlp.down_proj.1.", "mlp.down_proj."))
        state[name] = tensor.to(torch.bfloat16).contiguous()
    directory = HERE / "bitnet-1bitllm-bf16"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    spec = config.to_dict()
    spec.update({"architectures": ["BitnetForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
                 "input_bits": 8, "weight_bits": 1})
    spec.pop("dtype", None)
    (directory / "config.json").write_text(json.dumps(spec, indent=1) + "\n")
    model.eval()
    return directory, model


def ternary_llama(seed):
    """A LLaMA-architecture ternary checkpoint in the packed "offline" form (like Falcon3-1.58bit):
    uint8 weights from pack_weights and a weight_scale per projection, loaded by transformers' BitLinear."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    from transformers.integrations.bitnet import pack_weights

    config = LlamaConfig(**LLAMA_SPEC, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("proj.weight"):
            inverse = 1.0 / tensor.abs().mean().clamp(min=1e-5)
            codes = (tensor * inverse).round().clamp(-1, 1)
            state[name] = pack_weights(codes.clone())
            state[name.replace(".weight", ".weight_scale")] = inverse.reshape(1).to(torch.bfloat16)
        elif name == "lm_head.weight":
            continue
        elif name.endswith("norm.weight"):
            state[name] = (1 + 0.2 * torch.randn_like(tensor)).to(torch.bfloat16)
        else:
            state[name] = tensor.to(torch.bfloat16)
    directory = HERE / "llama-ternary-packed"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"), metadata={"format": "pt"})
    spec = config.to_dict()
    spec.update({"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16",
                 "quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear", "quantization_mode": "offline"}})
    spec.pop("dtype", None)
    (directory / "config.json").write_text(json.dumps(spec, indent=1) + "\n")
    loaded = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32, attn_implementation="eager")
    loaded.eval()
    return directory, loaded


LLAMA_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "self_attn.inner_attn_ln": "attn_sub_norm", "input_layernorm": "attn_norm",
               "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
               "mlp.down_proj": "ffn_down", "mlp.ffn_layernorm": "ffn_sub_norm"}


def export_llama_gguf(directory, arch, permute_qk):
    """llama.cpp's layout (arch `bitnet` for 1bitLLM, `llama` for LLaMA) with TQ2_0 weights; llama.cpp's
    converter permutes Q and K rows for arch `llama` (interleaved RoPE)."""
    import gguf
    from transformers.integrations.bitnet import unpack_weights

    def permute(w, n_head):
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    def values(name, role, tensor, weights, config):
        if tensor.dtype == torch.uint8:  # packed: codes / weight_scale (BitLinear divides)
            result = unpack_weights(tensor, torch.float32) / weights[name.replace(".weight", ".weight_scale")].float()
        else:  # 1bitLLM's weight_quant
            w = tensor.float()
            s = 1 / w.abs().mean().clamp(min=1e-5)
            result = (w * s).round().clamp(-1, 1) / s
        if permute_qk and role == "attn_q":
            result = permute(result, config["num_attention_heads"])
        if permute_qk and role == "attn_k":
            result = permute(result, config["num_key_value_heads"])
        return result.numpy()

    export_gguf(directory, arch, gguf.GGMLQuantizationType.TQ2_0, LLAMA_NAMES, values, "tq2_0")


def reference_of(model, vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, vocab, (1, PROMPT_LENGTH), generator=generator)
    with torch.no_grad():
        full = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS,
                              pad_token_id=0, eos_token_id=None)
        logits = model(full).logits[0].float()
    return full[0].to(torch.int32), logits


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
                export_bitnet_gguf(directory, qtype)
        if name == "bitnet-chat-tiny":
            export_bitnet_gguf(directory, GGMLQuantizationType.TQ2_0)
        print(name, "tokens", tokens.tolist())
    for name, make, arch, permute_qk, seed in [("bitnet-1bitllm-bf16", one_bit_llm, "bitnet", False, 300),
                                               ("llama-ternary-packed", ternary_llama, "llama", True, 301)]:
        directory, model = make(seed)
        tokens, logits = reference_of(model, LLAMA_SPEC["vocab_size"], seed + 100)
        save_file({"tokens": tokens.contiguous(), "logits": logits.contiguous()}, str(directory / "reference-logits.safetensors"))
        summary[name] = {"prompt_length": PROMPT_LENGTH, "tokens": tokens.tolist()}
        export_llama_gguf(directory, arch, permute_qk)
        print(name, "tokens", tokens.tolist())
    (HERE / "models.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
