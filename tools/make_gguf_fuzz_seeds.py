#!/usr/bin/env python3
"""Writes small valid GGUF files as a seed corpus for fuzz/fuzz_gguf.cpp (made with gguf-py).

Usage: /tmp/refenv/bin/python tools/make_gguf_fuzz_seeds.py fuzz-corpus/gguf
The seeds cover every metadata type, nested arrays, a tiny llama config, custom alignment and one
tensor of each dequantizable type; each stays under 4 KB so libFuzzer's default max_len fits them.
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def write(path, build, alignment=None):
    writer = gguf.GGUFWriter(str(path), arch="llama")
    if alignment:
        writer.data_alignment = alignment
        writer.add_uint32("general.alignment", alignment)
    build(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def metadata(writer):
    writer.add_uint8("t.u8", 7); writer.add_int8("t.i8", -7)
    writer.add_uint16("t.u16", 700); writer.add_int16("t.i16", -700)
    writer.add_uint32("t.u32", 70000); writer.add_int32("t.i32", -70000)
    writer.add_uint64("t.u64", 2**40); writer.add_int64("t.i64", -2**40)
    writer.add_float32("t.f32", 0.5); writer.add_float64("t.f64", 0.25)
    writer.add_bool("t.bool", True); writer.add_string("t.str", "hello")
    writer.add_array("t.strings", ["a", "bc", ""])
    writer.add_array("t.ints", [1, 2, 3])
    writer.add_array("t.nested", [[1, 2], [3]])


def tiny_llama(writer):
    writer.add_block_count(1); writer.add_context_length(64); writer.add_embedding_length(32)
    writer.add_feed_forward_length(64); writer.add_head_count(4); writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0); writer.add_layer_norm_rms_eps(1e-5)
    writer.add_token_list(["<s>", "</s>", "a", "b"]); writer.add_bos_token_id(0); writer.add_eos_token_id(1)
    writer.add_tensor("token_embd.weight", np.ones((4, 32), dtype=np.float32))
    writer.add_tensor("rope_freqs.weight", np.ones(4, dtype=np.float32))


def tensors(qtypes):
    def build(writer):
        rng = np.random.default_rng(1)
        for qtype in qtypes:
            block = gguf.GGML_QUANT_SIZES[qtype][0]
            cols = max(block, 8)
            if qtype == T.F32:
                writer.add_tensor("f32", rng.normal(size=(1, cols)).astype(np.float32))
            elif qtype == T.F16:
                writer.add_tensor("f16", rng.normal(size=(1, cols)).astype(np.float16))
            else:
                raw = rng.integers(0, 256, size=(1, gguf.GGML_QUANT_SIZES[qtype][1] * cols // block), dtype=np.uint8)
                writer.add_tensor(qtype.name.lower(), raw, raw_dtype=qtype)
    return build


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write(out / "metadata.gguf", metadata)
    write(out / "tiny_llama.gguf", tiny_llama)
    write(out / "aligned_64.gguf", tensors([T.F32, T.F16]), alignment=64)
    write(out / "legacy_quants.gguf", tensors([T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16]))
    write(out / "k_quants.gguf", tensors([T.Q4_K, T.Q5_K, T.Q6_K]))
    for path in sorted(out.iterdir()):
        print(f"{path} {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
