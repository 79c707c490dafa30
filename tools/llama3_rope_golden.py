#!/usr/bin/env python3
"""Prints golden llama3 RoPE inverse frequencies for tests/model/llama_config_test.cpp.

Reference: Hugging Face transformers' own rope initialisation (ROPE_INIT_FUNCTIONS["llama3"]),
which computes in float32; the C++ test compares with a relative tolerance of 1e-6 because Octet
computes in double.
Usage: /tmp/refenv/bin/python tools/llama3_rope_golden.py configs/models/Llama-3.1-8B-Instruct.json
Made with transformers 5.24.0, torch (CPU).
"""
import json
import sys

from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


def main():
    with open(sys.argv[1]) as f:
        config = LlamaConfig(**json.load(f))
    inverse_frequencies, attention_factor = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    values = [float(v) for v in inverse_frequencies]
    print(f"// {len(values)} values, attention factor {attention_factor}")
    for start in range(0, len(values), 4):
        print("    " + " ".join(f"{v!r}," for v in values[start:start + 4]))


if __name__ == "__main__":
    main()
