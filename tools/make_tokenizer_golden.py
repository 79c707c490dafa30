#!/usr/bin/env python3
"""Golden data for the tokenizer tests, produced by Hugging Face's own implementations.

Reference: transformers (GGUF -> tokenizers converter) and the Rust `tokenizers` library.
The converter builds SmolLM2's vocab, merges and added tokens from the GGUF but gives it a plain
ByteLevel pre-tokenizer, ignoring `tokenizer.ggml.pre = "smollm"`. SmolLM2's published
tokenizer.json splits digits first (Sequence[Digits(individual_digits), ByteLevel]), and that
changes the ids of whitespace before digits ("x  1"), so we swap in that Sequence and record the
strings where the two differ.

Writes (relative to the repository root):
  tests/fixtures/smollm2_tokenizer_golden.json      strings + ids from the GGUF vocab
  tests/fixtures/llama3_pretokenizer_golden.json    strings + pieces of the Llama 3 Split regex
  tests/fixtures/smollm_pretokenizer_golden.json    strings + pieces of SmolLM2's pre-tokenizer
  tests/fixtures/tiny_smollm_tokenizer/             small tokenizer.json (+config) + golden ids
  tests/fixtures/tiny_llama3_tokenizer/             the same vocab with the Llama 3 pre-tokenizer
Optionally (--hf-dir DIR) the full SmolLM2 tokenizer.json + tokenizer_config.json, ~2 MB, for
local runs of the tests that load a real Hugging Face tokenizer directory (not committed).

Usage: tools/make_tokenizer_golden.py [--gguf PATH] [--hf-dir DIR]
"""
import argparse
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345",
    "I'm sure they'll say it's fine; we've done what you'd do",
    "DON'T SHOUT, WE'LL HEAR YOU'RE HERE",
    "  leading and trailing spaces   ",
    "        ",
    "tabs\tand\nnewlines\n\n\nthree",
    "\n\n\t  \r\n",
    "  \n  x",
    "def add(a, b):\n    return a + b  # sum\n",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "Price: $1,299.99 (incl. 20% VAT) on 2024-03-15",
    "x  1 ab12 3.14159 123456789",
    "emoji 😀👍🏽 family 👨‍👩‍👧",
    "中文测试：你好，世界！",
    "日本語のテキストとカタカナ",
    "Café naïve résumé façade Ångström",
    "Ελληνικά και русский текст",
    "e\u0301 a\u0308 n\u0303 combining",
    "Unicode digits: ٣٤٥ and ² and Ⅻ",
    "non\u00a0breaking\u2003em space\u3000ideographic",
    "next\u0085line and\u2028separator",
    "mixed 'quotes' and \"double\" `back`",
    "https://example.com/path?query=1&x=y#frag",
    "control\x04\x06 bytes\x1d and a rare plane \U00050000 char",
    "Long words: supercalifragilisticexpialidocious antidisestablishmentarianism",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|><|endoftext|>",
    "text<|im_start|>glued<|im_end|>text",
    "<|im_start partial <|im_end| not special",
    "a",
    "",
]

# Extra strings for the Llama 3 regex: case-insensitive contractions, digit groups, CR/LF runs.
LLAMA3_EXTRA = [
    "I'M HERE, IT'S OK, 'S 'T",
    "1234567 12 1",
    "a1b22c333d4444",
    "!!!\n\n??? \r\n\r\n end",
    "line one\r\nline two\n\n\n   indented",
    "   \n",
    "tab\t\tseparated\tvalues",
    "ΑΒΓ'S ünïcödé's",
]


def gguf_fields(path):
    import gguf
    reader = gguf.GGUFReader(path)

    def get(key):
        field = reader.fields[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            if field.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
            return [field.parts[i].tolist()[0] for i in field.data]
        value = field.parts[field.data[0]]
        if field.types[0] == gguf.GGUFValueType.STRING:
            return bytes(value).decode("utf-8")
        return value.tolist()[0]
    return get


def byte_level_order(c):
    """GPT-2's bytes_to_unicode order: printable Latin-1 bytes keep their code point, the other
    bytes take U+0100 onwards in byte order, so sorting by this key lists the bytes 0..255."""
    code = ord(c)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 0x100]


def smollm_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def llama3_pre_tokenizer():
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


def smollm2_golden(gguf_path, hf_dir):
    directory, name = os.path.split(os.path.abspath(gguf_path))
    hf = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    converted = hf.backend_tokenizer
    plain_ids = [converted.encode(s, add_special_tokens=False).ids for s in STRINGS]

    get = gguf_fields(gguf_path)
    if get("tokenizer.ggml.pre") != "smollm":
        sys.exit("expected tokenizer.ggml.pre = smollm")
    converted.pre_tokenizer = smollm_pre_tokenizer()
    cases = []
    for text, plain in zip(STRINGS, plain_ids):
        ids = converted.encode(text, add_special_tokens=False).ids
        case = {"text": text, "ids": ids}
        # SmolLM2 has no token for 21 bytes (0x04, 0x06, 0xF1, 0xFF ...); HF drops them.
        if converted.decode(ids, skip_special_tokens=False) != text:
            case["lossy"] = True
        cases.append(case)
        if ids != plain:
            print(f"  converter's plain ByteLevel differs on {text!r}")
    write_json(os.path.join(FIXTURES, "smollm2_tokenizer_golden.json"), {
        "reference": "transformers %s AutoTokenizer.from_pretrained(gguf_file=%s) with the pre-tokenizer "
                     "replaced by Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)] "
                     "(tokenizers %s); encode(add_special_tokens=False), specials matched whole"
                     % (__import__("transformers").__version__, name, __import__("tokenizers").__version__),
        "cases": cases,
    })
    if hf_dir:
        os.makedirs(hf_dir, exist_ok=True)
        converted.save(os.path.join(hf_dir, "tokenizer.json"))
        config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False,
                  "chat_template": get("tokenizer.chat_template")}
        write_json(os.path.join(hf_dir, "tokenizer_config.json"), config)
    return get


def tiny_vocab(get, merge_count):
    """The 256 byte symbols plus the results of SmolLM2's first merges whose parts are present."""
    tokens = sorted(pre_tokenizers.ByteLevel.alphabet(), key=byte_level_order)
    vocab_set = set(tokens)
    merges = []
    for merge in get("tokenizer.ggml.merges"):
        left, right = merge.split(" ")
        if left in vocab_set and right in vocab_set and left + right not in vocab_set:
            merges.append((left, right))
            tokens.append(left + right)
            vocab_set.add(left + right)
            if len(merges) == merge_count:
                break
    return tokens, merges


def tiny_tokenizer(tokens, merges, specials, pre_tokenizer):
    vocab = {}
    for text in specials + tokens:
        vocab[text] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def write_tiny(directory, tokenizer, config, strings):
    write_json(os.path.join(directory, "tokenizer.json"), json.loads(tokenizer.to_str()))
    write_json(os.path.join(directory, "tokenizer_config.json"), config)
    cases = []
    for text in strings:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(ids, skip_special_tokens=False) == text, text
        cases.append({"text": text, "ids": ids})
    write_json(os.path.join(directory, "golden.json"), {
        "reference": "tokenizers %s Tokenizer.encode(add_special_tokens=False)"
                     % __import__("tokenizers").__version__,
        "cases": cases,
    })


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--hf-dir", default="")
    args = parser.parse_args()

    get = smollm2_golden(args.gguf, args.hf_dir)

    splitter = pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False)
    write_json(os.path.join(FIXTURES, "llama3_pretokenizer_golden.json"), {
        "reference": "tokenizers %s pre_tokenizers.Split(Regex(pattern), behavior='isolated')"
                     % __import__("tokenizers").__version__,
        "pattern": LLAMA3_REGEX,
        "cases": [{"text": s, "pieces": [p for p, _ in splitter.pre_tokenize_str(s)]}
                  for s in STRINGS + LLAMA3_EXTRA],
    })

    # The SmolLM2 chain's pieces come out in the byte-level alphabet; map them back to text.
    byte_of = {c: b for b, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet(), key=byte_level_order))}
    smollm = smollm_pre_tokenizer()
    write_json(os.path.join(FIXTURES, "smollm_pretokenizer_golden.json"), {
        "reference": "tokenizers %s Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)]"
                     ".pre_tokenize_str, pieces mapped back from the byte-level alphabet"
                     % __import__("tokenizers").__version__,
        "cases": [{"text": s, "pieces": [bytes(byte_of[c] for c in p).decode("utf-8")
                                         for p, _ in smollm.pre_tokenize_str(s)]}
                  for s in STRINGS + LLAMA3_EXTRA],
    })

    tokens, merges = tiny_vocab(get, 60)
    smollm_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    write_tiny(os.path.join(FIXTURES, "tiny_smollm_tokenizer"),
               tiny_tokenizer(tokens, merges, smollm_specials, smollm_pre_tokenizer()),
               {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_bos_token": False,
                "chat_template": get("tokenizer.chat_template")},
               STRINGS)
    llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                       "<|end_header_id|>", "<|eot_id|>"]
    # A short template of our own in the Llama 3 layout; the tests only need it to be recognised.
    llama3_template = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
                       "'<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                       "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
                       "{% endif %}")
    write_tiny(os.path.join(FIXTURES, "tiny_llama3_tokenizer"),
               tiny_tokenizer(tokens, merges, llama3_specials, llama3_pre_tokenizer()),
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": True,
                "chat_template": llama3_template},
               [s.replace("<|im_start|>", "<|start_header_id|>").replace("<|im_end|>", "<|eot_id|>")
                for s in STRINGS + LLAMA3_EXTRA])


if __name__ == "__main__":
    main()
