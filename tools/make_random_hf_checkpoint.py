#!/usr/bin/env python3
"""Writes a Hugging Face Llama directory with random BF16 weights of a real shape, for load-speed
measurements: make_random_hf_checkpoint.py CONFIG_JSON OUT_DIR [--layers N] [--shard-gb G] [--tokenizer-from DIR].
Weights are N(0, 0.02) (one random block tiled), norms 1; the safetensors files are written by hand
(numpy has no bfloat16) in the standard layout, with model.safetensors.index.json when sharded."""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def bf16_block(count: int, rng) -> bytes:
    values = (rng.standard_normal(count).astype(np.float32) * 0.02).view(np.uint32)
    return ((values + 0x7FFF + ((values >> 16) & 1)) >> 16).astype(np.uint16).tobytes()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--shard-gb", type=float, default=2.0)
    parser.add_argument("--tokenizer-from")
    args = parser.parse_args()
    config = json.load(open(args.config))
    if args.layers:
        config["num_hidden_layers"] = args.layers
    config.pop("quantization_config", None)
    h, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    d = config.get("head_dim", h // heads)
    shapes = [("model.embed_tokens.weight", [v, h])]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", [h]), (p + "self_attn.q_proj.weight", [heads * d, h]),
                   (p + "self_attn.k_proj.weight", [kv * d, h]), (p + "self_attn.v_proj.weight", [kv * d, h]),
                   (p + "self_attn.o_proj.weight", [h, heads * d]), (p + "post_attention_layernorm.weight", [h]),
                   (p + "mlp.gate_proj.weight", [f, h]), (p + "mlp.up_proj.weight", [f, h]),
                   (p + "mlp.down_proj.weight", [h, f])]
    shapes.append(("model.norm.weight", [h]))
    if not config.get("tie_word_embeddings", False):
        shapes.append(("lm_head.weight", [v, h]))

    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    block = bf16_block(1 << 24, rng)
    ones = struct.pack("<H", 0x3F80) * max(h, 1)
    limit = int(args.shard_gb * 1e9)
    shards, current, size = [], [], 0
    for name, shape in shapes:
        nbytes = int(np.prod(shape)) * 2
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = [], 0
        current.append((name, shape, nbytes))
        size += nbytes
    shards.append(current)
    weight_map = {}
    for s, tensors in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, nbytes in tensors:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        text = json.dumps(header, separators=(",", ":"))
        text += " " * (-len(text) % 8)
        with open(os.path.join(args.out, fname), "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text.encode())
            for name, shape, nbytes in tensors:
                if len(shape) == 1:
                    out.write(ones[:nbytes])
                    continue
                left = nbytes
                while left > 0:
                    chunk = block[:min(left, len(block))]
                    out.write(chunk)
                    left -= len(chunk)
    if len(shards) > 1:
        json.dump({"metadata": {"total_size": sum(n for t in shards for _, _, n in t)}, "weight_map": weight_map},
                  open(os.path.join(args.out, "model.safetensors.index.json"), "w"), indent=2)
    json.dump(config, open(os.path.join(args.out, "config.json"), "w"), indent=2)
    if args.tokenizer_from:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(args.tokenizer_from, name), args.out)


if __name__ == "__main__":
    main()
