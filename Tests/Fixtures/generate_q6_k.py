#!/usr/bin/env python3
"""Q6_K blocks from llama.cpp's own quantizer, for `bitnet quantize --embed-type q6_k`.

    python3 Tests/Fixtures/generate_q6_k.py /path/to/llama.cpp/build/bin/libggml-base.so

Calls `quantize_row_q6_K_ref` (ggml/src/ggml-quants.c) in the given build through ctypes on fixed inputs and
writes Tests/Fixtures/quantization/q6_k-llama.cpp.safetensors: `input` (float32, 16 × 256) and `blocks`
(uint8, 16 × 210). Made with llama.cpp c392e50 (February 2025) built by cmake with its defaults (Release,
Debian's GCC 12.2, GGML_NATIVE=ON). The inputs cover normal rows, rows with outliers, all-zero and below-ε groups, and
an all-zero block. Standard library only; llama.cpp is built by whoever runs this, never by this repository.
"""
import ctypes
import json
import math
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLOCKS, VALUES, BLOCK_BYTES = 16, 256, 210


def inputs():
    rng = random.Random(20261122)
    rows = []
    for block in range(BLOCKS):
        scale = 10 ** rng.uniform(-3, 1)
        row = [rng.gauss(0, scale) for _ in range(VALUES)]
        if block % 4 == 1:  # outliers
            for _ in range(3):
                row[rng.randrange(VALUES)] = rng.choice([-1, 1]) * scale * rng.uniform(8, 30)
        if block % 4 == 2:  # an all-zero group and a group below GROUP_MAX_EPS (1e-15)
            row[32:48] = [0.0] * 16
            row[64:80] = [rng.gauss(0, 1e-17) for _ in range(16)]
        if block == BLOCKS - 1:
            row = [0.0] * VALUES
        rows.append([struct.unpack("<f", struct.pack("<f", v))[0] for v in row])  # exactly float32
    return rows


def write_safetensors(path, tensors):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    library = ctypes.CDLL(sys.argv[1])

    # ggml_init fills the f16 → f32 table that GGML_FP16_TO_FP32 reads on x86; without it every d reads as 0.
    class InitParams(ctypes.Structure):
        _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]
    library.ggml_init.argtypes = [InitParams]
    library.ggml_init.restype = ctypes.c_void_p
    library.ggml_free.argtypes = [ctypes.c_void_p]
    library.ggml_free(library.ggml_init(InitParams(1 << 20, None, False)))
    quantize = library.quantize_row_q6_K_ref
    quantize.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_int64]
    quantize.restype = None
    rows = inputs()
    flat = [v for row in rows for v in row]
    source = (ctypes.c_float * len(flat))(*flat)
    output = (ctypes.c_uint8 * (BLOCKS * BLOCK_BYTES))()
    quantize(source, ctypes.cast(output, ctypes.c_void_p), len(flat))
    target = HERE / "quantization" / "q6_k-llama.cpp.safetensors"
    write_safetensors(target, {
        "input": ("F32", [BLOCKS, VALUES], struct.pack(f"<{len(flat)}f", *flat)),
        "blocks": ("U8", [BLOCKS, BLOCK_BYTES], bytes(output)),
    })
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
