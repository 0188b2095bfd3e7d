#!/usr/bin/env python3
"""transformers' BitNetRMSNorm on rows of many widths: the float32 outputs both backends must give to the bit.

    .venv/bin/python Tests/Fixtures/generate_rms_norm.py

PyTorch adds Σx² in the order of its vectorized CPU sum (8-float vectors, four accumulators, chunks of 16 summed
level by level, the 8 lanes added last), whatever SIMD the machine has; the engine adds in that order too. The
widths cover the scalar path (under 8 columns), vector tails, leftover vectors, and the chunk levels (2,560 and
6,912: BitNet 2B-4T's hidden and feed-forward widths). Magnitudes span 1e-3 to 1e3, so
the rounding of every add matters. Rows of 20,000 and 131,200 values reach PyTorch's third and fourth chunk levels
(one row each, to keep the file small).
"""
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers.models.bitnet.modeling_bitnet import BitNetRMSNorm

OUT = Path(__file__).resolve().parent / "quantization" / "rms-norm.safetensors"
WIDTHS = [1, 3, 5, 7, 8, 9, 31, 32, 37, 100, 256, 300, 512, 2560, 6912, 20000, 131200]


def rows(width):
    return 4 if width < 10000 else 1


def main():
    generator = torch.Generator().manual_seed(2026)
    tensors = {}
    for width in WIDTHS:
        scales = 10 ** (torch.rand(rows(width), 1, generator=generator) * 6 - 3)
        x = torch.randn(rows(width), width, generator=generator) * scales
        norm = BitNetRMSNorm(width, eps=1e-5)
        with torch.no_grad():
            norm.weight.copy_(1 + 0.2 * torch.randn(width, generator=generator))
            tensors[f"x.{width}"] = x.contiguous()
            tensors[f"weight.{width}"] = norm.weight.detach().clone()
            tensors[f"output.{width}"] = norm(x).contiguous()
    save_file(tensors, str(OUT), metadata={"torch": torch.__version__, "epsilon": "1e-5", "widths": ",".join(map(str, WIDTHS))})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
