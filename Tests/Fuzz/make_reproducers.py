#!/usr/bin/env python3
"""Writes one small input per class of bug found by reading and fuzzing swift-bitnet's parsers
(Tests/Fuzz/regressions/TARGET/NAME). Before the fixes each one trapped, hung or allocated by a
file's say-so; `swift test` (FuzzRegressionTests) replays them. Standard library only."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def safetensors(header):
    text = header.encode()
    return struct.pack("<Q", len(text)) + text


def gguf_string(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(metadata, tensors=(), tail=b""):
    """GGUF v3: metadata is [(key, type id, encoded value)], tensors [(name, dims, type, offset)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, type_id, value in metadata:
        out += gguf_string(key) + struct.pack("<I", type_id) + value
    for name, dims, type_id, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", type_id, offset)
    return out + tail


def string_array(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(gguf_string(s) for s in items)


def int32_array(items):
    return struct.pack("<IQ", 5, len(items)) + b"".join(struct.pack("<i", i) for i in items)


# safetensors: a 4-bit tensor whose bit count + 7 overflows a 64-bit integer.
write("safetensors", "f4-size-overflow", safetensors(
    '{"a":{"dtype":"F4","shape":[2305843009213693951],"data_offsets":[0,0]}}'))
# safetensors: two members with the same name (a dictionary built from them trapped).
write("safetensors", "duplicate-tensor-name", safetensors(
    '{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'))
# safetensors: an overlap hidden by an empty tensor sorting between the two (accepted before).
write("safetensors", "overlap-behind-empty-tensor", safetensors(
    '{"a":{"dtype":"U8","shape":[100],"data_offsets":[0,100]},"e":{"dtype":"U8","shape":[0],"data_offsets":[50,50]},'
    '"b":{"dtype":"U8","shape":[10],"data_offsets":[60,70]}}') + bytes(100))
# GGUF: the header ends less than one alignment before the end of the file, so the data section starts
# past it; a zero-size tensor there was read out of bounds.
write("gguf", "data-section-past-end", gguf([], [("t", [0], 0, 0)]))
# tokenizer.json: one id of 4 194 303 made a table of four million entries.
write("tokenizer-json", "table-sized-by-one-id", json.dumps(
    {"model": {"type": "BPE", "vocab": {"a": 4194303}}, "normalizer": {}}).encode())
# tokenizer.json: a negative added-token id indexed the table.
write("tokenizer-json", "negative-added-id", json.dumps(
    {"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": -1, "content": "x"}], "normalizer": {}}).encode())
# tokenizer.json: two tokens with one id.
write("tokenizer-json", "shared-id", json.dumps(
    {"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}, "normalizer": {}}).encode())
# GGUF tokenizer: more token types than tokens, marking ids past the end as special.
write("tokenizer-gguf", "token-types-past-the-tokens", gguf([
    ("tokenizer.ggml.model", 8, gguf_string("llama")),
    ("tokenizer.ggml.tokens", 9, string_array(["a", "b"])),
    ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", 0, 0)),
    ("tokenizer.ggml.token_type", 9, int32_array([1, 1, 3, 3])),
]))
# GGUF tokenizer: a BOS id past the tokens (written back as metadata by the converter, it trapped).
write("tokenizer-gguf", "bos-past-the-tokens", gguf([
    ("tokenizer.ggml.model", 8, gguf_string("gpt2")),
    ("tokenizer.ggml.tokens", 9, string_array(["a", "b"])),
    ("tokenizer.ggml.merges", 9, string_array([])),
    ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 99)),
    ("tokenizer.ggml.eos_token_id", 5, struct.pack("<i", -1)),
]))
