#!/usr/bin/env python3
"""A bounded load test of `bitnet serve` (Python standard library only; loopback only).

Starts the server on a free port with --parallel equal to the largest concurrency, then for each level of
concurrency runs a fixed number of streaming completion requests from that many client threads, and
stops. Per level it reports aggregate generated tokens/s (all tokens over the wall time of the level),
per-stream tokens/s, and p50/p99 time to first token. Writes load.md, load.json and load.svg.

    python3 Benchmarks/load_test.py --bitnet .build/release/bitnet [--model FILE] [--concurrency 1 4 16]
        [--requests-per-stream 2] [--max-tokens 32] [--threads N] [--ctx 512] [--out Benchmarks/results]
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time

PROMPTS = [
    "To open a file in Python, use", "A list is", "The os module provides", "def main(", "import sys",
    "Exceptions are raised when", "A dictionary maps", "The for statement", "class Point:", "Strings are",
    "The with statement", "Modules are", "A generator function", "The print function", "Tuples are", "while True:",
]


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def stream_request(port, prompt, max_tokens):
    """One streaming completion: (seconds to first token, generated tokens, total seconds)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {response.read()[:200]!r}")
    first = None
    generated = 0
    for line in response:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            generated = chunk["usage"]["completion_tokens"]
        elif first is None and chunk["choices"] and chunk["choices"][0]["finish_reason"] is None:
            first = time.perf_counter() - start
    connection.close()
    return first if first is not None else float("nan"), generated, time.perf_counter() - start


def run_level(port, concurrency, requests_per_stream, max_tokens):
    results, errors = [], []
    lock = threading.Lock()

    def worker(index):
        for round_index in range(requests_per_stream):
            prompt = PROMPTS[(index + round_index * concurrency) % len(PROMPTS)]
            try:
                outcome = stream_request(port, prompt, max_tokens)
                with lock:
                    results.append(outcome)
            except Exception as error:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(error))

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed at concurrency {concurrency}: {errors[:3]}")
    tokens = sum(r[1] for r in results)
    first = [r[0] for r in results]
    return {
        "concurrency": concurrency, "requests": len(results), "generated_tokens": tokens, "seconds": wall,
        "tokens_per_second": tokens / wall,
        "per_stream_tokens_per_second": statistics.median(r[1] / r[2] for r in results),
        "ttft_p50": percentile(first, 0.5), "ttft_p99": percentile(first, 0.99),
    }


def start_server(arguments):
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    log = []
    while port is None:
        line = process.stderr.readline()
        if not line:
            raise RuntimeError("bitnet serve exited: " + "".join(log))
        log.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    for _ in range(6000):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the model did not load")


def svg(levels, title):
    width, height, left, bottom, top, right = 640, 360, 64, 48, 40, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [level["concurrency"] for level in levels]
    tps = [level["tokens_per_second"] for level in levels]
    ttft = [level["ttft_p50"] for level in levels]
    max_tps, max_ttft = max(tps) * 1.15, max(ttft) * 1.15 or 1
    x_of = {c: left + plot_w * (i / max(1, len(xs) - 1)) for i, c in enumerate(xs)}

    def y(value, top_value):
        return top + plot_h * (1 - value / top_value)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#1f77b4"/>',
             f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#d62728"/>',
             f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">concurrent streams</text>',
             f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" text-anchor="middle" fill="#1f77b4">generated tokens/s (all streams)</text>',
             f'<text x="{width - 14}" y="{top + plot_h / 2}" transform="rotate(90 {width - 14} {top + plot_h / 2})" text-anchor="middle" fill="#d62728">p50 time to first token (s)</text>']
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{left - 6}" y="{y(max_tps * fraction, max_tps) + 4}" text-anchor="end" fill="#1f77b4">{max_tps * fraction:.0f}</text>')
        parts.append(f'<text x="{left + plot_w + 6}" y="{y(max_ttft * fraction, max_ttft) + 4}" fill="#d62728">{max_ttft * fraction:.2f}</text>')
    for c in xs:
        parts.append(f'<text x="{x_of[c]}" y="{top + plot_h + 18}" text-anchor="middle">{c}</text>')
    for values, top_value, color in ((tps, max_tps, "#1f77b4"), (ttft, max_ttft, "#d62728")):
        points = " ".join(f"{x_of[c]:.1f},{y(v, top_value):.1f}" for c, v in zip(xs, values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for c, v in zip(xs, values):
            parts.append(f'<circle cx="{x_of[c]:.1f}" cy="{y(v, top_value):.1f}" r="4" fill="{color}"/>')
            if color == "#1f77b4":
                parts.append(f'<text x="{x_of[c]:.1f}" y="{y(v, top_value) - 8:.1f}" text-anchor="middle">{v:.1f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bitnet", default=".build/release/bitnet")
    parser.add_argument("--model", help="default: the bundled model")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--name", default="load", help="output file stem")
    parser.add_argument("--out", default="Benchmarks/results")
    args = parser.parse_args()

    parallel = max(args.concurrency)
    command = [args.bitnet, "serve", "--port", "0", "--parallel", str(parallel), "--queue", str(parallel),
               "--ctx", str(args.ctx), "--cache-type", "f16", "--batch-size", str(max(args.batch_size, parallel))]
    if args.model:
        command += ["-m", args.model]
    if args.threads:
        command += ["--threads", str(args.threads)]
    process, port = start_server(command)
    levels = []
    try:
        stream_request(port, PROMPTS[0], 4)  # warm-up
        for concurrency in args.concurrency:
            level = run_level(port, concurrency, args.requests_per_stream, args.max_tokens)
            levels.append(level)
            print(f"{concurrency:>3} streams: {level['tokens_per_second']:8.1f} tokens/s in all, "
                  f"{level['per_stream_tokens_per_second']:6.1f} per stream, time to first token "
                  f"p50 {level['ttft_p50'] * 1000:7.1f} ms p99 {level['ttft_p99'] * 1000:7.1f} ms", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)

    model = os.path.basename(args.model) if args.model else "tiny-bitnet.gguf (bundled)"
    date = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    record = {"date": date, "machine": platform.processor() or platform.machine(), "model": model,
              "command": " ".join(command), "max_tokens": args.max_tokens, "levels": levels}
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as file:
        json.dump(record, file, indent=2)
    rows = ["| streams | requests | tokens/s, all streams | tokens/s per stream | TTFT p50 | TTFT p99 |", "|---:|---:|---:|---:|---:|---:|"]
    for level in levels:
        rows.append(f"| {level['concurrency']} | {level['requests']} | {level['tokens_per_second']:.1f} | "
                    f"{level['per_stream_tokens_per_second']:.1f} | {level['ttft_p50'] * 1000:.0f} ms | {level['ttft_p99'] * 1000:.0f} ms |")
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as file:
        file.write(f"# bitnet serve load test: {model}\n\n{date}, `{' '.join(command)}`, {args.max_tokens} tokens per request, "
                   f"greedy, streaming.\n\n" + "\n".join(rows) + "\n")
    with open(os.path.join(args.out, f"{args.name}.svg"), "w") as file:
        file.write(svg(levels, f"bitnet serve, {model}: continuous batching"))
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
