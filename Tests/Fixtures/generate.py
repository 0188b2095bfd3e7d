#!/usr/bin/env python3
"""Regenerates the committed test fixtures of swift-bitnet from references nobody here wrote.

    python3 -m venv .venv && .venv/bin/pip install -r Tests/Fixtures/requirements.txt
    .venv/bin/python Tests/Fixtures/generate.py

References:
  * transformers' integrations/bitnet.py (WeightQuant, ActQuant, AutoBitLinear, BitLinear, pack_weights):
    the BitNet b1.58 QAT forward pass, the numerical reference for quantization.
  * gguf-py (llama.cpp's own Python package): TQ1_0 / TQ2_0 / Q8_0 blocks, GGUF files in both directions.
  * safetensors and transformers' save_pretrained: safetensors files, sharded checkpoints, config.json.
  * I2_S (bitnet.cpp) has no published writer package; `pack_i2_s` below is an independent numpy
    implementation written from the layout description in issue #2, not from our Swift code.

Outputs are small and deterministic (fixed seeds); CI only reads them and never needs PyTorch.
If `gguf/swift-written.gguf` exists (written by `BITNET_WRITE_FIXTURES=1 swift test`), it is read back
with gguf-py and its view is recorded in `gguf/swift-written.expected.json`.
"""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def fnv1a64(data: bytes) -> str:
    """FNV-1a (64-bit) of the bytes, as 16 hex digits: a checksum both sides can compute in a few lines."""
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ----------------------------------------------------------------------------------------------
# Quantization: transformers' WeightQuant / ActQuant / AutoBitLinear / BitLinear
# ----------------------------------------------------------------------------------------------

def quantization_fixtures():
    import torch
    from safetensors.torch import save_file
    from transformers.integrations.bitnet import (
        ActQuant, AutoBitLinear, BitLinear, WeightQuant, pack_weights, unpack_weights)

    torch.manual_seed(1234)
    out = {}
    manifest = {"weight_cases": [], "activation_cases": [], "bitlinear_cases": []}

    def weight_case(name, weight):
        # The reference function itself (compiled by torch.compile, as transformers runs it) returns
        # codes / inverse_scale: the codes are its signs and a dequantized +1 is its largest magnitude.
        # (Eager PyTorch would differ: its float32 mean of 20k values is off by a few ulps, while the
        # compiled kernel's mean is the correctly rounded one.)
        # The function upcasts first and rounds its result back to the input dtype at the end, so the
        # float32 scale is observed by feeding it the (exactly) upcast weight.
        reference = WeightQuant.apply(weight.float())
        codes = torch.sign(reference)
        assert torch.equal(torch.sign(WeightQuant.apply(weight).float()), codes)
        out[f"{name}.weight"] = weight.contiguous()
        out[f"{name}.codes"] = codes.to(torch.int8).contiguous()
        out[f"{name}.scale"] = reference.abs().max().reshape(1).contiguous()
        manifest["weight_cases"].append({"name": name, "dtype": str(weight.dtype).removeprefix("torch."),
                                         "shape": list(weight.shape)})

    def activation_case(name, x):
        inverse_max = x.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
        scale = 127 / inverse_max
        values = (x * scale).round().clamp(-128, 127)
        reference = ActQuant.apply(x)
        assert torch.equal(values / scale, reference), f"{name}: eager values disagree with ActQuant"
        out[f"{name}.input"] = x.contiguous()
        out[f"{name}.values"] = values.to(torch.int8).contiguous()
        out[f"{name}.scale"] = scale.reshape(-1).contiguous()
        out[f"{name}.dequantized"] = reference.contiguous()
        manifest["activation_cases"].append({"name": name, "shape": list(x.shape)})

    weight_case("w_f32_37x300", torch.randn(37, 300) * 0.02)
    weight_case("w_f32_wide", torch.randn(8, 2560) * 0.05 + 0.001)
    weight_case("w_bf16_64x256", (torch.randn(64, 256) * 0.02).to(torch.bfloat16))
    weight_case("w_f16_33x129", (torch.randn(33, 129) * 0.03).to(torch.float16))
    # mean |W| = 1 exactly: 0.5 and 1.5 are ties that round to even (0 and 2 → clamp 1).
    ties = torch.tensor([[0.5, -0.5, 1.5, -1.5, 1.0, -1.0, 0.0, 2.0]], dtype=torch.float32)
    ties = ties * (8.0 / ties.abs().sum())
    weight_case("w_ties", ties)
    weight_case("w_tiny_values", torch.full((2, 4), 1e-7) * torch.tensor([1.0, -1.0, 0.2, 80.0]))  # mean below the 1e-5 clamp

    activation_case("a_f32_5x300", torch.randn(5, 300) * 3)
    activation_case("a_f32_wide", torch.randn(3, 2560))
    # max = 127 → scale 1 (give or take the reciprocal's rounding): x.5 values are ties.
    activation_case("a_ties", torch.tensor([[127.0, 2.5, -2.5, 0.5, -0.5, 126.5, -127.0, 3.5]]))
    activation_case("a_zero_row", torch.zeros(2, 16))

    # BitLinear as AutoBitLinear in online mode computes it: the QAT forward pass.
    for name, out_f, in_f, tokens in [("bl_16x300", 16, 300, 4), ("bl_40x512", 40, 512, 3)]:
        layer = AutoBitLinear(in_f, out_f, bias=False, online_quant=True)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(out_f, in_f) * 0.02)
        x = torch.randn(tokens, in_f)
        with torch.no_grad():
            y = layer(x)
        weight_case(f"{name}.w", layer.weight.detach().clone())
        activation_case(f"{name}.x", x)
        out[f"{name}.output"] = y.contiguous()
        manifest["bitlinear_cases"].append({"name": name, "out": out_f, "in": in_f, "tokens": tokens})

    # Packed Hugging Face weights: pack_weights, and the direction of weight_scale in both layer classes.
    codes = torch.randint(-1, 2, (12, 64)).float()
    out["hf.codes"] = codes.to(torch.int8)
    out["hf.packed"] = pack_weights(codes.clone())
    assert torch.equal(unpack_weights(out["hf.packed"], torch.float32), codes)
    odd = torch.randint(-1, 2, (10, 32)).float()
    out["hf.odd_codes"] = odd.to(torch.int8)
    out["hf.odd_packed"] = pack_weights(odd.clone())  # 10 rows → 3 packed rows, unpacks to 12
    x = torch.randn(3, 64)
    out["hf.input"] = x
    weight_scale = torch.tensor([0.0421], dtype=torch.float32)
    out["hf.weight_scale"] = weight_scale
    auto = AutoBitLinear(64, 12, bias=False, online_quant=False)
    with torch.no_grad():
        auto.weight.copy_(unpack_weights(out["hf.packed"], torch.float32))  # what BitNetDeserialize loads
        auto.weight_scale.copy_(weight_scale)
        out["hf.autobitlinear_output"] = auto(x)
    bit = BitLinear(64, 12, bias=False, dtype=torch.float32)
    with torch.no_grad():
        bit.weight.copy_(out["hf.packed"])
        bit.weight_scale.copy_(weight_scale)
        out["hf.bitlinear_output"] = bit(x)

    path = HERE / "quantization" / "reference.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, str(path), metadata={"generator": "Tests/Fixtures/generate.py"})
    (HERE / "quantization" / "reference.json").write_text(json.dumps(manifest, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------
# Packings: gguf-py's TQ1_0 / TQ2_0 / Q8_0, and an independent I2_S packer
# ----------------------------------------------------------------------------------------------

def pack_i2_s(codes: np.ndarray, scale: float) -> bytes:
    """I2_S from its description: blocks of 128 values in 32 bytes; byte j holds values j, j+32, j+64,
    j+96 at bits 6-7, 4-5, 2-3, 0-1 as code+1; then a 32-byte tail starting with the float32 scale."""
    flat = codes.reshape(-1).astype(np.int16) + 1
    assert flat.size % 128 == 0
    groups = flat.reshape(-1, 4, 32).astype(np.uint8)  # (block, group, byte)
    packed = (groups[:, 0] << 6) | (groups[:, 1] << 4) | (groups[:, 2] << 2) | groups[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(scale).tobytes(), dtype=np.uint8)
    return packed.astype(np.uint8).tobytes() + tail.tobytes()


def packing_fixtures():
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize
    from safetensors.numpy import save_file

    rng = np.random.default_rng(99)
    out = {}
    cases = []

    def case(name, qtype, values):
        packed = quantize(values, qtype)
        out[f"{name}.input"] = values.astype(np.float32)
        out[f"{name}.bytes"] = packed.reshape(-1).astype(np.uint8)
        out[f"{name}.dequantized"] = dequantize(packed, qtype).astype(np.float32).reshape(values.shape)
        cases.append({"name": name, "type": qtype.name.lower(), "shape": list(values.shape)})

    scale = np.float32(0.0173)
    ternary = rng.integers(-1, 2, size=(3, 512)).astype(np.float32) * scale
    ternary[1, 256:] = 0  # an all-zero block: gguf-py writes d = 0
    for qtype in (T.TQ2_0, T.TQ1_0):
        tag = qtype.name.lower()
        case(f"{tag}_random", qtype, (rng.standard_normal((4, 512)) * 0.05).astype(np.float32))
        case(f"{tag}_ternary", qtype, ternary)
        # x / d = ±0.5 exactly: gguf-py rounds ties away from zero.
        ties = np.zeros((1, 256), dtype=np.float32)
        ties[0, :8] = [1.0, 0.5, -0.5, 0.25, -1.0, 0.75, -0.75, 0.499]
        case(f"{tag}_ties", qtype, ties)
    case("q8_0_random", T.Q8_0, (rng.standard_normal((5, 96)) * 2).astype(np.float32))
    q8_ties = np.zeros((1, 32), dtype=np.float32)
    q8_ties[0, :4] = [127.0, 0.5, -0.5, 1.5]
    case("q8_0_ties", T.Q8_0, q8_ties)

    # Q6_K (read-only here): random blocks with a finite d, dequantized by gguf-py.
    q6 = rng.integers(0, 256, size=(3, 210), dtype=np.uint8)
    q6[:, 208:210] = np.frombuffer((rng.standard_normal(3) * 0.01).astype(np.float16).tobytes(), dtype=np.uint8).reshape(3, 2)
    out["q6_k.bytes"] = q6.reshape(-1)
    out["q6_k.dequantized"] = dequantize(q6.reshape(1, -1), T.Q6_K).astype(np.float32).reshape(-1)

    i2_codes = rng.integers(-1, 2, size=(4, 256)).astype(np.int8)
    out["i2_s.codes"] = i2_codes
    out["i2_s.scale"] = np.array([0.0213], dtype=np.float32)
    out["i2_s.bytes"] = np.frombuffer(pack_i2_s(i2_codes, 0.0213), dtype=np.uint8).copy()

    path = HERE / "packing" / "gguf-py.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path))
    (HERE / "packing" / "gguf-py.json").write_text(json.dumps({"cases": cases}, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------
# GGUF: a file written by gguf-py, and gguf-py's view of a file written by us
# ----------------------------------------------------------------------------------------------

def gguf_view(path: Path) -> dict:
    """Everything gguf-py's reader sees in a file: metadata with types, tensors with bytes' hashes."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(path))

    metadata = []
    for field in reader.fields.values():
        if field.name.startswith("GGUF."):
            continue  # synthetic fields (version, counts)
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            # parts: key length, key, value type, element type, count, elements...
            element_type = GGUFValueType(int(field.parts[3][0]))
            type_name = f"ARRAY[{element_type.name}]"
            if element_type == GGUFValueType.ARRAY:
                value = None  # nested arrays: gguf-py's reader does not decode them; we record the raw bytes
            else:
                value = field.contents()
        else:
            type_name = vtype.name
            value = field.contents()
        metadata.append({"key": field.name, "type": type_name, "value": value})
    tensors = []
    for t in reader.tensors:
        data = bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1))
        tensors.append({"name": t.name, "type": t.tensor_type.name.lower(), "shape": [int(d) for d in t.shape],
                        "bytes": int(t.n_bytes), "offset": int(t.data_offset), "fnv1a64": fnv1a64(data)})
    version = int(reader.fields["GGUF.version"].parts[-1][0])
    return {"version": version, "alignment": int(reader.alignment), "data_offset": int(reader.data_offset),
            "metadata": metadata, "tensors": tensors}


def gguf_fixtures():
    import gguf
    from gguf import GGMLQuantizationType as T, GGUFValueType as V
    from gguf.quants import quantize

    directory = HERE / "gguf"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gguf-py-written.gguf"
    rng = np.random.default_rng(7)

    writer = gguf.GGUFWriter(str(path), arch="bitnet")
    writer.add_name("tiny interop sample")
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4_000_000_000)
    writer.add_int32("test.i32", -2_000_000_000)
    writer.add_float32("test.f32", 0.1)
    writer.add_uint64("test.u64", 18_000_000_000_000_000_000)
    writer.add_int64("test.i64", -9_000_000_000_000_000_000)
    writer.add_float64("test.f64", 3.141592653589793)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo, wörld ✓ 🦙")
    writer.add_array("test.array.strings", ["a", "", "ünïcode", "<0x0A>"])
    writer.add_array("test.array.i32", [1, -2, 3])
    writer.add_array("test.array.f32", [0.5, -1.25])
    writer.add_key_value("test.array.u8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    writer.add_key_value("test.array.i64", [-(2 ** 62), 2 ** 62], V.ARRAY, sub_type=V.INT64)
    writer.add_array("test.array.bool", [True, False, True])
    writer.add_array("test.array.nested", [[1, 2], [3]])
    writer.add_context_length(256)
    writer.add_embedding_length(256)
    writer.add_block_count(1)

    f32 = (rng.standard_normal((3, 5)) * 0.1).astype(np.float32)
    writer.add_tensor("blk.0.attn_norm.weight", f32)
    writer.add_tensor("token_embd.weight", (rng.standard_normal((4, 64))).astype(np.float16))
    bf16 = (rng.standard_normal((2, 32)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    writer.add_tensor("output_norm.weight", bf16, raw_shape=bf16.shape, raw_dtype=T.BF16)
    ternary = rng.integers(-1, 2, size=(2, 256)).astype(np.float32) * np.float32(0.02)
    writer.add_tensor("blk.0.attn_q.weight", quantize(ternary, T.TQ2_0), raw_dtype=T.TQ2_0)
    writer.add_tensor("blk.0.attn_k.weight", quantize(ternary, T.TQ1_0), raw_dtype=T.TQ1_0)
    q8 = (rng.standard_normal((2, 64))).astype(np.float32)
    writer.add_tensor("blk.0.ffn_up.weight", quantize(q8, T.Q8_0), raw_dtype=T.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    view = gguf_view(path)
    # The nested array's contents, as its definition above says, for the Swift side to compare.
    for entry in view["metadata"]:
        if entry["key"] == "test.array.nested":
            entry["value"] = [[1, 2], [3]]
    (directory / "gguf-py-written.expected.json").write_text(json.dumps(view, indent=1, ensure_ascii=False) + "\n")

    ours = directory / "swift-written.gguf"
    if ours.exists():
        (directory / "swift-written.expected.json").write_text(
            json.dumps(gguf_view(ours), indent=1, ensure_ascii=False) + "\n")
    else:
        print("note: gguf/swift-written.gguf is missing; run `BITNET_WRITE_FIXTURES=1 swift test` first", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# safetensors and Hugging Face directories
# ----------------------------------------------------------------------------------------------

def safetensors_fixtures():
    import torch
    from safetensors.torch import save_file
    from transformers import BitNetConfig, BitNetForCausalLM

    directory = HERE / "safetensors"
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(5)
    tensors = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).to(torch.float16),
        "bf16": torch.randn(2, 3).to(torch.bfloat16),
        "u8": torch.arange(6, dtype=torch.uint8).reshape(2, 3),
        "i8": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
        "i32": torch.tensor([7, -7], dtype=torch.int32),
        "scalar": torch.tensor(2.5),
    }
    save_file(tensors, str(directory / "mixed.safetensors"), metadata={"format": "pt", "note": "mixed dtypes"})
    expected = {name: {"dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                                 torch.uint8: "U8", torch.int8: "I8", torch.int32: "I32"}[t.dtype],
                       "shape": list(t.shape), "values": t.float().reshape(-1).tolist()}
                for name, t in tensors.items()}
    (directory / "mixed.expected.json").write_text(json.dumps(
        {"metadata": {"format": "pt", "note": "mixed dtypes"}, "tensors": expected}, indent=1) + "\n")

    # A tiny BitNet in QAT (online) form, saved sharded by transformers itself.
    config = BitNetConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    config.quantization_config = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                  "quantization_mode": "online"}
    model = BitNetForCausalLM(config).to(torch.bfloat16)
    sharded = directory / "tiny-bitnet-sharded"
    shutil.rmtree(sharded, ignore_errors=True)
    model.save_pretrained(str(sharded), max_shard_size="60KB")
    names = sorted(model.state_dict().keys())
    (directory / "tiny-bitnet-sharded.expected.json").write_text(json.dumps({
        "tensors": {name: {"shape": list(model.state_dict()[name].shape),
                           "fnv1a64": fnv1a64(model.state_dict()[name].contiguous().view(torch.uint8).numpy().tobytes())}
                    for name in names}}, indent=1) + "\n")


def main():
    os.chdir(HERE)
    quantization_fixtures()
    packing_fixtures()
    gguf_fixtures()
    safetensors_fixtures()
    print("fixtures written under", HERE)


if __name__ == "__main__":
    main()
