#!/usr/bin/env python3
"""Small tokenizers trained with Hugging Face `tokenizers`, and the ids it gives for varied strings.

    .venv/bin/python Tests/Fixtures/generate_tokenizers.py

Two kinds, as the models swift-bitnet runs use them:
  * byte-level BPE with LLaMA-3's pre-tokenizer regex (bitnet-b1.58-2B-4T, LLaMA-3, Falcon3),
  * SentencePiece-style BPE with "▁", byte fallback and LLaMA-2's normalizer (1bitLLM, LLaMA-2).
Each is saved as tokenizer.json and as GGUF `tokenizer.ggml.*` metadata written by gguf-py, and the ids
HF `tokenizers` gives for a few thousand strings (Unicode, whitespace runs, digits, code, emoji, special
tokens) are recorded. The corpus is Python's own standard-library source (PSF license), shipped with Python.
"""
import json
import random
import sys
import sysconfig
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = Path(__file__).resolve().parent / "tokenizers"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]


def corpus():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in ["argparse.py", "textwrap.py", "json/decoder.py", "email/utils.py", "difflib.py", "string.py",
                 "unicodedata.py", "calendar.py", "locale.py", "codecs.py"]:
        path = stdlib / name
        if path.exists():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    texts.append("Grüße aus Köln! ¿Qué tal? 日本語のテキスト。 Ελληνικά κείμενα. Привет, мир! 🙂🚀 naïve café")
    return texts


def test_strings(rng):
    base = [
        "", " ", "  ", "\n", "\n\n", " \n ", "\t\tindent", "Hello, world!", "hello world", "HELLO WORLD",
        "I'm here, you're there, they'll go, we've been, she'd say, it's OK, DON'T", "x'S'T'RE'VE'M'LL'D",
        "1234567890", "3.14159", "1,000,000", "v2.0.1-rc3", "  leading", "trailing  ", "a\r\nb\rc\nd",
        "def f(x):\n    return x ** 2  # square\n", "if (a && b) { c[i] = d->e; }", "<html><body>ok</body></html>",
        "emoji 😀😃😄 family 👨‍👩‍👧 flags 🇩🇪🇯🇵", "naïve café résumé", "日本語のテキストです。", "中文文本，标点！",
        "한국어 텍스트", "Ελληνικά", "Привет, мир", "עברית", "العربية", "हिन्दी", "ไทย", "combining é vs é",
        "zero\u200bwidth", "tab\there", "   \n\n   \t\n x", "!!!???...", "$%^&*()_+-=[]{}|;:,.<>/?`~",
        "<|begin_of_text|>Hello<|eot_id|>", "System: be brief<|eot_id|>User: hi<|eot_id|>Assistant: ",
        "a<|end_of_text|>b<|end_of_text|>", "<|eot_id|><|eot_id|>", "< |eot_id| >", "\u00a0nbsp\u3000ideographic",
        "ﬁ ligature", "Ⅻ roman 二十 ² ½", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\x00\x01 control", "é" * 20, "ab" * 50, " " * 17 + "x",
    ]
    alphabet = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()[]{}<>+-*/=_#@$%^&|\\~`"
                "\n\t\r  éüßñçøåæ日本語中文한국어Ελληνικάабвгд😀🚀👍🏽 \u00a0")
    words = ["the", "return", "self", " import", "def", "class", "None", "True", "value", "  ", "\n", "12", "345",
             "'s", "'ll", "::", "->", "==", "<|eot_id|>", "<|begin_of_text|>", "😀", "naïve", "Straße", "\t"]
    strings = list(base)
    for _ in range(1500):
        strings.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    for _ in range(1500):
        strings.append("".join(rng.choice(words) + rng.choice(["", " ", "", "\n"]) for _ in range(rng.randint(1, 12))))
    return strings


def byte_level_bpe(texts):
    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def sentencepiece_bpe(texts):
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    bytes_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"] + bytes_tokens,
                                  show_progress=False, limit_alphabet=200)
    tokenizer.train_from_iterator(["▁" + t.replace(" ", "▁") for t in texts], trainer)
    return tokenizer


def write_gguf(tokenizer, kind, path):
    """tokenizer.ggml.* as llama.cpp's converters write them: gpt2 (tokens, token_type, merges) or
    llama (tokens, scores, token_type)."""
    import gguf

    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, index in vocab.items():
        tokens[index] = token
    added = {t["content"]: t for t in spec["added_tokens"]}
    merges = [" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]]
    writer = gguf.GGUFWriter(str(path), arch="bitnet")
    writer.add_tokenizer_model("gpt2" if kind == "byte-level" else "llama")
    if kind == "byte-level":
        writer.add_tokenizer_pre("llama-bpe")
        writer.add_token_merges(merges)
        types = [gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL for t in tokens]
        writer.add_bos_token_id(vocab["<|begin_of_text|>"])
        writer.add_eos_token_id(vocab["<|end_of_text|>"])
    else:
        # SentencePiece scores: a merged token's score is minus the rank of the merge that made it.
        rank = {m.replace(" ", ""): i for i, m in reversed(list(enumerate(merges)))}
        scores = [-float(rank[t]) - 1.0 if t in rank else 0.0 for t in tokens]
        writer.add_token_scores(scores)
        types = [gguf.TokenType.CONTROL if t in ("<s>", "</s>") else gguf.TokenType.UNKNOWN if t == "<unk>"
                 else gguf.TokenType.BYTE if t.startswith("<0x") else gguf.TokenType.NORMAL for t in tokens]
        writer.add_bos_token_id(vocab["<s>"])
        writer.add_eos_token_id(vocab["</s>"])
        writer.add_unk_token_id(vocab["<unk>"])
        writer.add_add_bos_token(True)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def main():
    rng = random.Random(2024)
    HERE.mkdir(parents=True, exist_ok=True)
    texts = corpus()
    strings = test_strings(rng)
    for kind, tokenizer in [("byte-level", byte_level_bpe(texts)), ("sentencepiece", sentencepiece_bpe(texts))]:
        directory = HERE / kind
        directory.mkdir(exist_ok=True)
        tokenizer.save(str(directory / "tokenizer.json"))
        write_gguf(tokenizer, kind, directory / "tokenizer.gguf")
        cases = []
        for text in strings:
            ids = tokenizer.encode(text, add_special_tokens=False).ids
            cases.append({"text": text, "ids": ids, "decoded": tokenizer.decode(ids, skip_special_tokens=False)})
        (directory / "cases.json").write_text(json.dumps(cases, ensure_ascii=False) + "\n")
        print(kind, "vocab", tokenizer.get_vocab_size(), "cases", len(cases))


if __name__ == "__main__":
    main()
