#!/usr/bin/env python3
"""Writes a Hugging Face Llama directory with random BF16 weights of a real shape, for load-speed
measurements: make_random_hf_checkpoint.py CONFIG_JSON OUT_DIR [--layers N] [--shard-gb G] [--tokenizer-from DIR] [--fp8].
Weights are N(0, 0.02) (one random block tiled), norms 1; the safetensors files are written by hand
(numpy has no bfloat16) in the standard layout, with model.safetensors.index.json when sharded.
--fp8: the body's linears as ModelOpt FP8_PER_CHANNEL_PER_TOKEN instead (random non-NaN E4M3 codes, an
F32 weight_scale [out] per linear, quantization_config in config.json; embedding and lm_head BF16)."""
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
    parser.add_argument("--fp8", action="store_true")
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
    # E4M3 codes of magnitude below 0x70 (no NaN 0x7F), random sign.
    fp8_block = (rng.integers(0, 0x70, 1 << 24) | (rng.integers(0, 2, 1 << 24) << 7)).astype(np.uint8).tobytes()
    ones = struct.pack("<H", 0x3F80) * max(h, 1)
    limit = int(args.shard_gb * 1e9)
    # (name, dtype, shape, bytes, source block)
    tensors_to_write = []
    for name, shape in shapes:
        if len(shape) == 1:
            tensors_to_write.append((name, "BF16", shape, shape[0] * 2, ones))
        elif args.fp8 and name.startswith("model.layers."):
            tensors_to_write.append((name, "F8_E4M3", shape, int(np.prod(shape)), fp8_block))
            scale = np.full(shape[0], 0.02 / 64, dtype=np.float32).tobytes()
            tensors_to_write.append((name + "_scale", "F32", [shape[0]], len(scale), scale))
        else:
            tensors_to_write.append((name, "BF16", shape, int(np.prod(shape)) * 2, block))
    shards, current, size = [], [], 0
    for tensor in tensors_to_write:
        nbytes = tensor[3]
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = [], 0
        current.append(tensor)
        size += nbytes
    shards.append(current)
    weight_map = {}
    for s, tensors in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, dtype, shape, nbytes, _ in tensors:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        text = json.dumps(header, separators=(",", ":"))
        text += " " * (-len(text) % 8)
        with open(os.path.join(args.out, fname), "wb") as out:
            out.write(struct.pack("<Q", len(text)) + text.encode())
            for name, dtype, shape, nbytes, source in tensors:
                left = nbytes
                while left > 0:
                    chunk = source[:min(left, len(source))]
                    out.write(chunk)
                    left -= len(chunk)
    if len(shards) > 1:
        json.dump({"metadata": {"total_size": sum(t[3] for shard in shards for t in shard)}, "weight_map": weight_map},
                  open(os.path.join(args.out, "model.safetensors.index.json"), "w"), indent=2)
    if args.fp8:
        config["quantization_config"] = {"quant_method": "modelopt", "quant_algo": "FP8_PER_CHANNEL_PER_TOKEN",
                                         "kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]}
    json.dump(config, open(os.path.join(args.out, "config.json"), "w"), indent=2)
    if args.tokenizer_from:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(args.tokenizer_from, name), args.out)


if __name__ == "__main__":
    main()
