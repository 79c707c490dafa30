#!/usr/bin/env python3
"""Golden token ids for Octet's tokenizer tests, from Hugging Face's own tokenizers (independent code).

SmolLM2: transformers builds a fast tokenizer from the GGUF with its own converter.
Llama 3 pre-tokenizer: `tokenizers`' Split with the Llama 3 regex (FORMATS.md), which Llama 3's
tokenizer.json uses, gives the expected pieces (no Llama 3 vocabulary is needed for that).
Usage: python tools/make_tokenizer_golden.py MODEL.gguf  → tests/fixtures/tokenizer_golden.json
"""
import json
import os
import sys

from tokenizers import Regex, pre_tokenizers
from transformers import AutoTokenizer

STRINGS = [
    "How to craft iron tools in Minecraft?",
    "Hello, world!",
    "The year 2024 had 366 days; 12345 + 678 = 13023.",
    "I'm sure you'll see they've done what we'd said.",
    "DON'T SHOUT, it's RUDE",
    "  leading spaces and   runs of   spaces  ",
    "line one\nline two\r\n\n\ttabbed line",
    "def f(x):\n    return x ** 2  # square\n",
    "emoji: 😀🚀👍🏽 and flags 🇫🇷",
    "中文分词测试：你好，世界！",
    "日本語のテキストとカタカナ",
    "Ünïcödé àccénts — naïve café façade",
    "Здравствуй, мир! Привет.",
    "مرحبا بالعالم",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "mixed<|endoftext|>special tokens",
    "URL https://example.com/path?q=1&r=two#frag",
    "   ",
    "a",
    "numbers ١٢٣ and ½ ⅓ Ⅻ",
    "snake_case_identifier camelCaseIdentifier CONSTANT_VALUE",
    "$100.00 (€85) ~ 50% off!!!",
    "trailing newline\n\n\n",
    "Llama\u00a0non-breaking\u2003spaces",
]

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def main():
    gguf_path = os.path.abspath(sys.argv[1])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    directory, name = os.path.split(gguf_path)
    smol = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    split = pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated")
    out = {
        "reference": "transformers AutoTokenizer from the GGUF; tokenizers.pre_tokenizers.Split (Llama 3 regex)",
        "smollm2": [{"text": s, "ids": smol(s, add_special_tokens=False)["input_ids"]} for s in STRINGS],
        "llama3_pieces": [{"text": s, "pieces": [p for p, _ in split.pre_tokenize_str(s)]} for s in STRINGS],
    }
    path = os.path.join(root, "tests/fixtures/tokenizer_golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
