#!/usr/bin/env python3
"""gguf-py's view of the GGUF files `bitnet quantize` writes, for ConversionTests.

    BITNET_WRITE_FIXTURES=1 swift test --filter ConversionTests   # writes Tests/Fixtures/converted/*.gguf
    .venv/bin/python Tests/Fixtures/generate_conversions.py        # reads them with gguf-py

For every converted file gguf-py can read (TQ2_0 and TQ1_0; gguf-py has no I2_S type, bitnet.cpp's fork
id 36), records each metadata value (arrays by length) and each tensor's type, shape and bytes' FNV-1a
hash. The Swift test converts again and must match: the output is standard and deterministic.
"""
import json
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType

from generate import fnv1a64

HERE = Path(__file__).resolve().parent / "converted"


def main():
    expected = {}
    for path in sorted(HERE.glob("*.gguf")):
        if path.stem.endswith("i2_s"):
            continue  # gguf-py cannot read bitnet.cpp's type 36
        reader = GGUFReader(str(path))
        metadata = {}
        for field in reader.fields.values():
            if field.name.startswith("GGUF."):
                continue
            if field.types[0] == GGUFValueType.ARRAY:
                metadata[field.name] = len(field.data)
            else:
                metadata[field.name] = field.contents()
        tensors = [{"name": t.name, "type": t.tensor_type.name.lower(), "shape": [int(d) for d in t.shape],
                    "fnv1a64": fnv1a64(bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)))}
                   for t in reader.tensors]
        expected[path.name] = {"metadata": metadata, "tensors": tensors}
        print(path.name, len(tensors), "tensors")
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
