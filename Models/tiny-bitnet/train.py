#!/usr/bin/env python3
"""Trains swift-bitnet's default model: a tiny BitNet b1.58 (bitnet-b1.58-2B-4T's architecture, ~5.8 M
parameters) with quantization-aware training, on the Python documentation.

    apt-get install python3.11-doc                      # the corpus: /usr/share/doc/python3.11/html/_sources
    python3 -m venv .venv && .venv/bin/pip install -r Models/tiny-bitnet/requirements.txt
    .venv/bin/python Models/tiny-bitnet/train.py --minutes 12 --out /tmp/tiny-bitnet
    swift run -c release bitnet quantize /tmp/tiny-bitnet -o Sources/bitnet/Resources/tiny-bitnet.gguf

Training is transformers' `BitNetForCausalLM` with `quantization_config` autobitlinear/online: every
linear layer runs the QAT forward (absmean ternary weights, absmax int8 activations) with straight-through
gradients, on bf16-rounded master weights. The tokenizer is a byte-level BPE (LLaMA-3's pre-tokenizer)
trained by Hugging Face `tokenizers` on the same text. Held-out text (the last 3 % of the documents, by
file name) is written beside the checkpoint with the reference perplexities the tests check against.
"""
import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = Path("/usr/share/doc/python3.11/html/_sources")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
                 "{% set content = message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' %}"
                 "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")
CONTEXT = 128  # perplexity windows, as `bitnet perplexity --ctx 128` computes them
SHORT = 12 * CONTEXT  # the held-out prefix the test suite checks (fast enough for a debug build)


def documents():
    files = sorted(CORPUS.rglob("*.rst.txt"))
    if not files:
        raise SystemExit(f"no corpus at {CORPUS}: apt-get install python3.11-doc")
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    cut = int(len(texts) * 0.97)
    return texts[:cut], texts[cut:]


def train_tokenizer(texts):
    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def perplexity(model, tokens, bos):
    """llama-perplexity's windows: chunks of CONTEXT tokens, the first replaced by BOS, scoring the
    predictions of each chunk's second half. The same definition as `BitNetModel.perplexity`."""
    chunks = len(tokens) // CONTEXT
    total, count = 0.0, 0
    with torch.no_grad():
        for chunk in range(chunks):
            window = list(tokens[chunk * CONTEXT:(chunk + 1) * CONTEXT])
            window[0] = bos
            logits = model(torch.tensor([window])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            for position in range(CONTEXT // 2, CONTEXT - 1):
                total -= logp[position, window[position + 1]].item()
                count += 1
    return math.exp(total / count), count


def untrained_model(config_source, seed):
    """The model of the same shape before training: same seed, same initialization."""
    from transformers import AutoModelForCausalLM, BitNetForCausalLM
    import tempfile

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as directory:
        BitNetForCausalLM(config_source).save_pretrained(directory)
        return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()


def write_reference(args):
    """Perplexities of the saved checkpoint (PyTorch QAT forward) and of the untrained model on the
    held-out text, in full and on its first SHORT tokens."""
    from transformers import AutoModelForCausalLM, BitNetConfig

    tokenizer = Tokenizer.from_file(str(args.out / "tokenizer.json"))
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokens = tokenizer.encode((args.out / "heldout.txt").read_text(encoding="utf-8")).ids
    trained = AutoModelForCausalLM.from_pretrained(str(args.out), dtype=torch.float32).eval()
    untrained = untrained_model(BitNetConfig.from_pretrained(str(args.out)), args.seed)
    reference = json.loads((args.out / "reference.json").read_text()) if (args.out / "reference.json").exists() else {}
    reference["context"] = CONTEXT
    reference["qat_forward_perplexity"], reference["scored_tokens"] = perplexity(trained, tokens, bos)
    reference["untrained_perplexity"], _ = perplexity(untrained, tokens, bos)
    short = tokens[:SHORT]
    reference["short"] = {"tokens": SHORT, "qat_forward_perplexity": perplexity(trained, short, bos)[0],
                          "untrained_perplexity": perplexity(untrained, short, bos)[0], "scored_tokens": perplexity(trained, short, bos)[1]}
    (args.out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(json.dumps(reference, indent=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=12)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reference-only", action="store_true", help="recompute reference.json for a trained --out")
    args = parser.parse_args()
    if args.reference_only:
        return write_reference(args)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(2)

    from transformers import AutoModelForCausalLM, BitNetConfig, BitNetForCausalLM

    training, heldout = documents()
    tokenizer = train_tokenizer(training)
    bos, eos = tokenizer.token_to_id("<|begin_of_text|>"), tokenizer.token_to_id("<|end_of_text|>")
    stream = []
    for text in training:
        stream += [bos] + tokenizer.encode(text).ids + [eos]
    data = torch.tensor(stream)
    heldout_text = "\n\n".join(heldout)[:60000]
    heldout_tokens = tokenizer.encode(heldout_text).ids
    print(f"training tokens {len(stream):,}, held-out tokens {len(heldout_tokens):,}", flush=True)

    config = BitNetConfig(vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=6,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                          tie_word_embeddings=True, bos_token_id=bos, eos_token_id=[eos, tokenizer.token_to_id("<|eot_id|>")],
                          rope_theta=10000.0)
    config.quantization_config = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}
    args.out.mkdir(parents=True, exist_ok=True)
    # Build through from_pretrained so transformers installs AutoBitLinear (the QAT forward) everywhere.
    BitNetForCausalLM(config).save_pretrained(str(args.out))
    model = AutoModelForCausalLM.from_pretrained(str(args.out), dtype=torch.float32)
    untrained_ppl, _ = perplexity(model.eval(), heldout_tokens, bos)
    print(f"untrained perplexity {untrained_ppl:.1f}, parameters {sum(p.numel() for p in model.parameters()):,}", flush=True)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    sequence, batch = 256, 16
    deadline = time.time() + args.minutes * 60
    step, started = 0, time.time()
    estimated_steps = None
    while time.time() < deadline:
        starts = torch.randint(0, len(data) - sequence - 1, (batch,))
        x = torch.stack([data[s:s + sequence] for s in starts])
        if estimated_steps is None and step == 5:
            estimated_steps = int(5 * args.minutes * 60 / (time.time() - started))
        total = estimated_steps or 1000
        lr = 2e-3 * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0))))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(x, labels=x).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():  # keep the master weights bf16-representable, as the saved checkpoint is
            for parameter in model.parameters():
                parameter.copy_(parameter.to(torch.bfloat16).float())
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} {time.time() - started:.0f}s", flush=True)
        step += 1

    model.to(torch.bfloat16).save_pretrained(str(args.out))
    tokenizer.save(str(args.out / "tokenizer.json"))
    (args.out / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": CHAT_TEMPLATE}, indent=1) + "\n")
    (args.out / "heldout.txt").write_text(heldout_text, encoding="utf-8")
    (args.out / "reference.json").write_text(json.dumps({
        "steps": step, "batch": batch, "sequence": sequence, "minutes": args.minutes,
        "parameters": sum(p.numel() for p in model.parameters())}, indent=1) + "\n")
    write_reference(args)


if __name__ == "__main__":
    main()
