#!/usr/bin/env python3
"""The Vulkan backend against transformers and the CPU backend, through the `bitnet` command alone.

For machines where `swift test` cannot run (a lent GPU has no Swift toolchain): every fixture model with
transformers' reference logits (Tests/Fixtures/models/models.json), as its Hugging Face directory and as each GGUF
export beside it, is run with `bitnet logits --all-positions` on both backends, as one batch and one token at a
time. It passes where `swift test` passes on lavapipe: Vulkan's logits within each fixture's bound of
transformers' (Tests/Fixtures/models/tolerances.json: the largest and median relative L2 over positions and the
top-1 agreement), the bundled model's logits within 1e-2 relative L2 of the CPU's at every position, and its
greedy text the same on both backends. Vulkan against the CPU is reported for every fixture.

Python's standard library only: the reference logits are read from their safetensors file by hand.

    scripts/vulkan_parity.py --bitnet PATH/TO/bitnet [--device N] [--report FILE.md]
"""
import argparse
import json
import math
import pathlib
import struct
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "Tests" / "Fixtures" / "models"
TOLERANCES = json.loads((MODELS / "tolerances.json").read_text())
# Vulkan against the CPU on the bundled model, per position.
VULKAN_AGAINST_CPU = 1e-2


def read_safetensors(path):
    """The float32 and int32 tensors of a safetensors file, as flat lists."""
    data = path.read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        code = {"F32": "f", "I32": "i"}.get(entry["dtype"])
        if code is None:
            raise SystemExit(f"{path}: {name} is {entry['dtype']}, not F32 or I32")
        begin, end = entry["data_offsets"]
        raw = data[8 + header_length + begin : 8 + header_length + end]
        tensors[name] = list(struct.unpack(f"<{len(raw) // 4}{code}", raw))
    return tensors


def relative_l2(ours, reference):
    difference = math.sqrt(sum((a - b) ** 2 for a, b in zip(ours, reference)))
    norm = math.sqrt(sum(b * b for b in reference))
    return difference / norm if norm > 0 else difference


def argmax(row):
    return max(range(len(row)), key=row.__getitem__)


def run_logits(bitnet, model, tokens, backend, device, batch=None, cache_type="f32"):
    """`bitnet logits` of every position; `model` None is the bundled model."""
    command = [bitnet, "logits", "--tokens", ",".join(map(str, tokens)), "--all-positions",
               "--backend", backend, "--cache-type", cache_type] + (["-m", str(model)] if model else [])
    if batch:
        command += ["--batch", str(batch)]
    if device is not None and backend == "vulkan":
        command += ["--device", str(device)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return json.loads(result.stdout)["logits"]


def cases():
    """(label, model path, fixture with the reference logits, cache type) for every fixture and its GGUF exports;
    the label names the bound in tolerances.json."""
    names = json.loads((MODELS / "models.json").read_text())
    for name in sorted(names):
        yield name, MODELS / name, name, "f32"
        for export in sorted(MODELS.glob(f"{name}-*.gguf")):
            yield export.name, export, name, "f32"
    yield "bitnet-gqa-wide-bf16-f16-cache", MODELS / "bitnet-gqa-wide-bf16", "bitnet-gqa-wide-bf16", "f16"


def within(errors, top_one, bound):
    """Whether sorted relative L2 errors and a top-1 count meet a tolerances.json bound."""
    return errors[-1] <= bound["maximum"] and errors[len(errors) // 2] <= bound["median"] and top_one >= bound["top_one"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bitnet", required=True, help="the bitnet executable")
    parser.add_argument("--device", type=int, help="the Vulkan device index (bitnet devices)")
    parser.add_argument("--report", help="also write the table here (Markdown)")
    arguments = parser.parse_args()

    lines = ["| model | path | Vulkan vs transformers, max / median | top-1 | bound, max / median | CPU vs transformers, max / median | Vulkan vs CPU, max | |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    failures = 0
    for label, model, fixture, cache_type in cases():
        reference = read_safetensors(MODELS / fixture / "reference-logits.safetensors")
        tokens = [int(t) for t in reference["tokens"]]
        vocabulary = len(reference["logits"]) // len(tokens)
        expected = [reference["logits"][i * vocabulary : (i + 1) * vocabulary] for i in range(len(tokens))]
        bound = TOLERANCES.get(label, TOLERANCES["default"])
        for path, batch in (("batch", None), ("token by token", 1)):
            try:
                cpu = run_logits(arguments.bitnet, model, tokens, "cpu", None, batch, cache_type)
                vulkan = run_logits(arguments.bitnet, model, tokens, "vulkan", arguments.device, batch, cache_type)
            except RuntimeError as error:
                failures += 1
                lines.append(f"| {label} | {path} | – | – | – | – | – | **failed**: {error} |")
                continue
            errors = {name: sorted(relative_l2(row, e) for row, e in zip(rows, expected)) for name, rows in (("cpu", cpu), ("vulkan", vulkan))}
            top_one = sum(argmax(row) == argmax(e) for row, e in zip(vulkan, expected))
            ok = len(vulkan) == len(tokens) and within(errors["vulkan"], top_one, bound)
            failures += not ok
            shown = {name: f"{e[-1]:.2e} / {e[len(e) // 2]:.2e}" for name, e in errors.items()}
            against_cpu = max(relative_l2(v, c) for v, c in zip(vulkan, cpu))
            lines.append(f"| {label} | {path} | {shown['vulkan']} | {top_one}/{len(tokens)} | {bound['maximum']:g} / {bound['median']:g} "
                         f"| {shown['cpu']} | {against_cpu:.2e} | {'ok' if ok else '**failed**'} |")

    tokens = list(range(1, 65))
    cpu = run_logits(arguments.bitnet, None, tokens, "cpu", None)
    vulkan = run_logits(arguments.bitnet, None, tokens, "vulkan", arguments.device)
    against_cpu = [relative_l2(v, c) for v, c in zip(vulkan, cpu)]
    close = len(vulkan) == len(tokens) and max(against_cpu) <= VULKAN_AGAINST_CPU
    failures += not close
    lines.append("")
    lines.append(f"The bundled model, tokens 1–64: Vulkan within {max(against_cpu):.2e} of the CPU at every position "
                 f"(bound {VULKAN_AGAINST_CPU:g}): {'ok' if close else '**failed**'}.")

    prompt = ["generate", "-p", "To open a file in Python, use", "-n", "48", "--temp", "0"]
    texts = {}
    for backend in ("cpu", "vulkan"):
        command = [arguments.bitnet] + prompt + ["--backend", backend]
        if backend == "vulkan" and arguments.device is not None:
            command += ["--device", str(arguments.device)]
        texts[backend] = subprocess.run(command, capture_output=True, text=True).stdout
    same = texts["cpu"] == texts["vulkan"] and texts["cpu"].strip() != ""
    failures += not same
    lines.append(f"Greedy text of the bundled model, 48 tokens: {'the same on both backends' if same else '**differs**'}.")
    if not same:
        lines.append(f"CPU: {texts['cpu']!r}\nVulkan: {texts['vulkan']!r}")
    lines.append(f"\n{failures} failed")
    report = "\n".join(lines)
    print(report)
    if arguments.report:
        pathlib.Path(arguments.report).write_text(report + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
