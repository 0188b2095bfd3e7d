#!/usr/bin/env python3
"""swift-bitnet beside llama.cpp (and bitnet.cpp) on the same files: a table and an SVG chart.

Runs `bitnet bench --json` and each peer's `llama-bench -o json` on the same GGUF files, with the same prompt
length, generation length and thread count, in interleaved rounds (the machine is noisy; medians of the
rounds are reported, and the ratios are what count). Standard library only.

    python3 Benchmarks/compare.py --llama-cpp /path/to/llama.cpp/build/bin \\
        [--bitnet-cpp /path/to/BitNet/build/bin] [--types tq2_0,tq1_0] [--files a.gguf ...] \\
        [-p 128] [-n 64] [-r 3] [--rounds 3] [--threads 2] [--out benchmark-results]

Without --files, the files are synthetic 2B-4T-shaped models of llama.cpp's `bitnet` architecture, one per
--types entry, written by `InferenceBenchmark 2b4t --arch bitnet --type T --write-only` (and reused). I2_S
files run against --bitnet-cpp only (upstream llama.cpp has no I2_S); TQ1_0/TQ2_0 against --llama-cpp.
Build the peers from their own sources; this script builds nothing of theirs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command):
    """Runs a command and returns its stdout; stops the script with the command's stderr on failure."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
    return result.stdout


def synthetic_file(weight_type):
    """The path of the synthetic 2B-4T `bitnet` file of `weight_type`, written on first use."""
    binary = os.path.join(ROOT, ".build", "release", "InferenceBenchmark")
    if not os.path.exists(binary):
        run(["swift", "build", "-c", "release", "--package-path", ROOT, "--product", "InferenceBenchmark"])
    print(f"model file for {weight_type} (written once, about 2 minutes)…", file=sys.stderr, flush=True)
    return run([binary, "2b4t", "--arch", "bitnet", "--type", weight_type, "--write-only"]).strip().splitlines()[-1]


def file_type(path):
    """The ternary type of a file, from its name (tq1_0, i2_s, else tq2_0)."""
    name = os.path.basename(path).lower()
    return "tq1_0" if "tq1_0" in name else "i2_s" if "i2_s" in name else "tq2_0"


def bench_bitnet(binary, path, args):
    """{test: tokens/s} from `bitnet bench --json`."""
    output = run([binary, "bench", "-m", path, "-p", str(args.p), "-n", str(args.n), "-r", str(args.r),
                  "--threads", str(args.threads), "--json"])
    return {result["test"]: result["tokens_per_second"] for result in json.loads(output)["results"]}


def bench_peer(directory, path, args):
    """{test: tokens/s} from a peer's `llama-bench -o json`."""
    output = run([os.path.join(directory, "llama-bench"), "-m", path, "-p", str(args.p), "-n", str(args.n),
                  "-r", str(args.r), "-t", str(args.threads), "-o", "json"])
    results = {}
    for entry in json.loads(output):
        test = f"pp{entry['n_prompt']}" if entry["n_prompt"] else f"tg{entry['n_gen']}"
        results[test] = entry["avg_ts"]
    return results


def svg_chart(rows, title):
    """One panel per test (prompt, decode), each on its own linear tokens/s axis: a group of bars per file,
    a bar per engine, the value above each bar."""
    engines = sorted({engine for row in rows for engine in row["engines"]}, key=lambda e: (e != "swift-bitnet", e))
    colors = {"swift-bitnet": "#e4572e", "llama.cpp": "#4c78a8", "bitnet.cpp": "#72b7b2"}
    tests = rows[0]["tests"]
    bar, gap, top, height, axis = 30, 56, 60, 240, 46
    panel = len(rows) * (len(engines) * bar + gap)
    width = len(tests) * (panel + axis + 20) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 60}" font-family="sans-serif" font-size="11">',
             f'<text x="20" y="20" font-size="14">{title}</text>']
    for index, engine in enumerate(engines):
        parts.append(f'<rect x="{20 + index * 130}" y="32" width="12" height="12" fill="{colors.get(engine, "#999")}"/>')
        parts.append(f'<text x="{38 + index * 130}" y="42">{engine}</text>')
    for panel_index, test in enumerate(tests):
        left = 20 + axis + panel_index * (panel + axis + 20)
        peak = max([results[test] for row in rows for results in row["engines"].values() if test in results] or [1])
        scale = height / (peak * 1.15)
        for step in range(5):
            value = peak * 1.15 * step / 4
            y = top + height - value * scale
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + panel}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>')
        parts.append(f'<text x="{left + panel / 2}" y="{top - 4}" text-anchor="middle" font-weight="bold">{test} (tokens/s)</text>')
        x = left + gap / 2
        for row in rows:
            for index, engine in enumerate(engines):
                value = row["engines"].get(engine, {}).get(test)
                if value is None:
                    continue
                y = top + height - value * scale
                parts.append(f'<rect x="{x + index * bar:.1f}" y="{y:.1f}" width="{bar - 3}" height="{value * scale:.1f}" fill="{colors.get(engine, "#999")}"/>')
                parts.append(f'<text x="{x + index * bar + (bar - 3) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" font-size="9">{value:.1f}</text>')
            center = x + len(engines) * bar / 2
            for line, text in enumerate(row["file"].rsplit(" ", 2)[0].split(" + ")):
                parts.append(f'<text x="{center:.1f}" y="{top + height + 16 + 13 * line}" text-anchor="middle">{text}</text>')
            x += len(engines) * bar + gap
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llama-cpp", help="directory with llama.cpp's llama-bench")
    parser.add_argument("--bitnet-cpp", help="directory with bitnet.cpp's llama-bench (for I2_S files)")
    parser.add_argument("--bitnet", default=os.path.join(ROOT, ".build", "release", "bitnet"), help="the bitnet binary")
    parser.add_argument("--types", default="tq2_0,tq1_0", help="synthetic files to compare on (tq2_0, tq1_0, i2_s)")
    parser.add_argument("--files", nargs="*", help="GGUF files to compare on instead of synthetic ones")
    parser.add_argument("-p", type=int, default=128)
    parser.add_argument("-n", type=int, default=64)
    parser.add_argument("-r", type=int, default=3, help="repetitions inside each engine's run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results"), help="directory for compare.md, compare.json, compare.svg")
    args = parser.parse_args()
    if not args.llama_cpp and not args.bitnet_cpp:
        parser.error("give --llama-cpp and/or --bitnet-cpp (build directories with llama-bench)")
    if not os.path.exists(args.bitnet):
        run(["swift", "build", "-c", "release", "--package-path", ROOT, "--product", "bitnet"])

    files = args.files or [synthetic_file(t.strip()) for t in args.types.split(",")]
    peers = {}
    for path in files:
        if file_type(path) == "i2_s":
            if args.bitnet_cpp:
                peers[path] = ("bitnet.cpp", args.bitnet_cpp)
        elif args.llama_cpp:
            peers[path] = ("llama.cpp", args.llama_cpp)

    samples = {path: {} for path in files}  # path → engine → test → [tokens/s per round]
    for round_index in range(args.rounds):
        for path in files:
            measured = [("swift-bitnet", lambda: bench_bitnet(args.bitnet, path, args))]
            if path in peers:
                name, directory = peers[path]
                measured.append((name, lambda: bench_peer(directory, path, args)))
            if round_index % 2:  # alternate who goes first
                measured.reverse()
            for engine, measure in measured:
                started = time.time()
                for test, value in measure().items():
                    samples[path].setdefault(engine, {}).setdefault(test, []).append(value)
                print(f"round {round_index + 1}/{args.rounds} {os.path.basename(path)} {engine}: "
                      f"{time.time() - started:.0f} s", file=sys.stderr, flush=True)

    rows = []
    for path in files:
        engines = {engine: {test: statistics.median(values) for test, values in tests.items()}
                   for engine, tests in samples[path].items()}
        output = " + Q6_K output" if "q6_k" in os.path.basename(path).lower() else ""
        rows.append({"file": f"{file_type(path).upper()}{output} {os.path.getsize(path) / 2**30:.2f} GiB", "path": path,
                     "tests": [f"pp{args.p}", f"tg{args.n}"], "engines": engines, "samples": samples[path]})

    lines = [f"| file | engine | pp{args.p} tokens/s | tg{args.n} tokens/s | swift-bitnet ÷ engine (pp / tg) |",
             "|---|---|---:|---:|---:|"]
    for row in rows:
        ours = row["engines"].get("swift-bitnet", {})
        for engine, results in row["engines"].items():
            ratio = "" if engine == "swift-bitnet" else " / ".join(
                f"{ours[test] / results[test]:.2f}×" if results.get(test) and ours.get(test) else "–" for test in row["tests"])
            values = [f"{results[test]:.2f}" if test in results else "–" for test in row["tests"]]
            lines.append(f"| {row['file']} | {engine} | {values[0]} | {values[1]} | {ratio} |")
    table = "\n".join(lines)
    title = f"swift-bitnet beside its peers on the same files: medians of {args.rounds} rounds, {args.threads} threads"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compare.md"), "w") as handle:
        handle.write(table + "\n")
    with open(os.path.join(args.out, "compare.json"), "w") as handle:
        json.dump({"threads": args.threads, "rounds": args.rounds, "rows": rows}, handle, indent=1)
    with open(os.path.join(args.out, "compare.svg"), "w") as handle:
        handle.write(svg_chart(rows, title))
    print(table)
    print(f"\nwritten: {args.out}/compare.md, compare.json, compare.svg", file=sys.stderr)


if __name__ == "__main__":
    main()
