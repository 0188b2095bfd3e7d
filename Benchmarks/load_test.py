#!/usr/bin/env python3
"""A bounded load test of `bitnet serve` (Python standard library only; loopback only).

Starts the server on a free port with --parallel equal to the largest concurrency, then for each level of
concurrency runs a fixed number of streaming completion requests from that many client threads, and
stops. Per level it reports aggregate generated tokens/s (all tokens over the wall time of the level),
per-stream tokens/s, and p50/p99 time to first token. Writes NAME.md, NAME.json and NAME.svg.

With --llama-server (a llama.cpp build's `llama-server`, built from its own sources), the same load runs
against it on the same file (`-np` slots of --ctx each, the same threads), and each greedy request's text is
compared with what the same request gets alone: the batch variance the server issue speaks of.

    python3 Benchmarks/load_test.py --bitnet .build/release/bitnet [--model FILE] [--concurrency 1 4 16]
        [--requests-per-stream 2] [--max-tokens 32] [--threads N] [--ctx 512] [--out Benchmarks/results]
        [--llama-server LLAMA_BUILD/bin/llama-server]
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import socket
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
    generated = None
    pieces = []
    for line in response:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            generated = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices") or []:
            if choice.get("text"):
                pieces.append(choice["text"])
                if first is None:
                    first = time.perf_counter() - start
    connection.close()
    if generated is None:  # a server that does not report usage in streams: one chunk per token
        generated = len(pieces)
    return first if first is not None else float("nan"), generated, time.perf_counter() - start, "".join(pieces)


def run_level(port, concurrency, requests_per_stream, max_tokens):
    results, errors = [], []
    lock = threading.Lock()

    def worker(index):
        for round_index in range(requests_per_stream):
            prompt = PROMPTS[(index + round_index * concurrency) % len(PROMPTS)]
            try:
                outcome = stream_request(port, prompt, max_tokens)
                with lock:
                    results.append(outcome + (prompt,))
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
        "texts": [(r[4], r[3]) for r in results],
    }


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(arguments, port=None):
    """Starts a server; with no port, reads the one `bitnet serve --port 0` announces."""
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c"]


def svg(engines, title):
    """Two panels: aggregate tokens/s and p50 time to first token against concurrent streams, one line per engine."""
    width, height, panel_w, panel_h, left, top = 760, 360, 300, 240, 70, 50
    xs = [level["concurrency"] for level in engines[0]["levels"]]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for panel, (key, label, scale, fmt) in enumerate((("tokens_per_second", "generated tokens/s, all streams", 1, "{:.1f}"),
                                                      ("ttft_p50", "p50 time to first token (s)", 1, "{:.2f}"))):
        x0 = left + panel * (panel_w + 80)
        top_value = max(level[key] * scale for engine in engines for level in engine["levels"]) * 1.15 or 1
        x_of = {c: x0 + panel_w * (i / max(1, len(xs) - 1)) for i, c in enumerate(xs)}

        def y(value):
            return top + panel_h * (1 - value / top_value)

        parts += [f'<line x1="{x0}" y1="{top + panel_h}" x2="{x0 + panel_w}" y2="{top + panel_h}" stroke="black"/>',
                  f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{top + panel_h}" stroke="black"/>',
                  f'<text x="{x0 + panel_w / 2}" y="{top - 10}" text-anchor="middle">{label}</text>',
                  f'<text x="{x0 + panel_w / 2}" y="{top + panel_h + 36}" text-anchor="middle">concurrent streams</text>']
        for fraction in (0, 0.25, 0.5, 0.75, 1):
            parts.append(f'<text x="{x0 - 6}" y="{y(top_value * fraction) + 4:.1f}" text-anchor="end">{fmt.format(top_value * fraction)}</text>')
        for c in xs:
            parts.append(f'<text x="{x_of[c]:.1f}" y="{top + panel_h + 18}" text-anchor="middle">{c}</text>')
        for index, engine in enumerate(engines):
            color = COLORS[index % len(COLORS)]
            points = [(x_of[level["concurrency"]], y(level[key] * scale), level[key] * scale) for level in engine["levels"]]
            parts.append(f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)}" fill="none" stroke="{color}" stroke-width="2"/>')
            for px, py, value in points:
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}"/>')
                parts.append(f'<text x="{px:.1f}" y="{py - 8:.1f}" text-anchor="middle" fill="{color}">{fmt.format(value)}</text>')
    for index, engine in enumerate(engines):
        parts.append(f'<text x="{left + index * 200}" y="{height - 12}" fill="{COLORS[index % len(COLORS)]}">■ {engine["engine"]}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def measure(engine, command, port, args):
    """Runs every level against a started server; each greedy text is checked against the same request alone."""
    process, port = start_server(command, port)
    levels = []
    try:
        stream_request(port, PROMPTS[0], 4)  # warm-up
        prompts = sorted({PROMPTS[i % len(PROMPTS)] for i in range(max(args.concurrency) * args.requests_per_stream)})
        alone = {prompt: stream_request(port, prompt, args.max_tokens)[3] for prompt in prompts}
        for concurrency in args.concurrency:
            level = run_level(port, concurrency, args.requests_per_stream, args.max_tokens)
            level["differ_from_alone"] = sum(1 for prompt, text in level.pop("texts") if text != alone[prompt])
            levels.append(level)
            print(f"{engine}: {concurrency:>3} streams: {level['tokens_per_second']:8.1f} tokens/s in all, "
                  f"{level['per_stream_tokens_per_second']:6.1f} per stream, time to first token "
                  f"p50 {level['ttft_p50'] * 1000:7.1f} ms p99 {level['ttft_p99'] * 1000:7.1f} ms, "
                  f"{level['differ_from_alone']}/{level['requests']} texts differ from the request alone", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {"engine": engine, "command": " ".join(command), "levels": levels}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bitnet", default=".build/release/bitnet")
    parser.add_argument("--model", help="default: the bundled model")
    parser.add_argument("--llama-server", help="also run llama.cpp's llama-server on the same file")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--name", default="load", help="output file stem")
    parser.add_argument("--out", default="Benchmarks/results")
    args = parser.parse_args()

    parallel = max(args.concurrency)
    command = [args.bitnet, "serve", "--port", "0", "--parallel", str(parallel), "--queue", str(parallel), "--threads", str(args.threads),
               "--ctx", str(args.ctx), "--cache-type", "f16", "--batch-size", str(max(args.batch_size, parallel))]
    if args.model:
        command += ["-m", args.model]
    engines = [measure("swift-bitnet", command, None, args)]
    if args.llama_server:
        if not args.model:
            parser.error("--llama-server needs --model")
        port = free_port()
        llama = [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port), "-np", str(parallel),
                 "-c", str(args.ctx * parallel), "-t", str(args.threads), "-b", str(max(args.batch_size, parallel)), "-ctk", "f16", "-ctv", "f16"]
        engines.append(measure("llama.cpp llama-server", llama, port, args))

    model = os.path.basename(args.model) if args.model else "tiny-bitnet.gguf (bundled)"
    date = datetime.date.today().isoformat()
    os.makedirs(args.out, exist_ok=True)
    record = {"date": date, "machine": platform.processor() or platform.machine(), "model": model,
              "max_tokens": args.max_tokens, "engines": engines}
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as file:
        json.dump(record, file, indent=2)
    rows = ["| engine | streams | requests | tokens/s, all streams | tokens/s per stream | TTFT p50 | TTFT p99 | greedy texts unlike the request alone |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for engine in engines:
        for level in engine["levels"]:
            rows.append(f"| {engine['engine']} | {level['concurrency']} | {level['requests']} | {level['tokens_per_second']:.1f} | "
                        f"{level['per_stream_tokens_per_second']:.1f} | {level['ttft_p50'] * 1000:.0f} ms | {level['ttft_p99'] * 1000:.0f} ms | "
                        f"{level['differ_from_alone']} |")
    commands = "\n".join(f"- {engine['engine']}: `{engine['command']}`" for engine in engines)
    with open(os.path.join(args.out, f"{args.name}.md"), "w") as file:
        file.write(f"# Server load test: {model}\n\n{date}; {args.max_tokens} tokens per request, greedy, streaming, "
                   f"{args.requests_per_stream} requests per stream.\n\n{commands}\n\n" + "\n".join(rows) + "\n")
    with open(os.path.join(args.out, f"{args.name}.svg"), "w") as file:
        file.write(svg(engines, f"{model}: continuous batching ({date})"))
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
