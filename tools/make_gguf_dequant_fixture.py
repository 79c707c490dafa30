#!/usr/bin/env python3
"""Writes tests/fixtures/gguf_dequant.gguf: golden data for Octet's GGUF dequantization.

The reference is gguf-py (the GGUF package published with llama.cpp), independent of Octet's C++:
its GGUFWriter writes the file and its quants module produces both the quantized blocks and the
expected floats. For every supported type T the file holds
  T.<variant>           the tensor in type T
  T.<variant>.expected  F32, gguf-py's dequantization of it
Variants: "quantized" (gguf.quants.quantize of random data, where gguf-py can quantize) and
"random" (random block bytes with finite scales; gguf-py only dequantizes K-quants). Random bits
also reach corner cases that quantizers never emit (negative scales, every nibble value, NaN and
subnormal halves for F16/BF16).

Usage: /tmp/refenv/bin/python tools/make_gguf_dequant_fixture.py [output]
Made with gguf 0.19.0, numpy 2.4.6; seed fixed so the file is reproducible.
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

SEED = 20250107
ROWS = 4


def random_values(rng, cols):
    # Rows of different magnitudes and offsets so scales and minimums vary.
    scale = np.float32(10.0) ** rng.uniform(-3, 2, size=(ROWS, 1))
    offset = rng.normal(size=(ROWS, 1)) * scale
    return (rng.normal(size=(ROWS, cols)) * scale + offset * (rng.random((ROWS, 1)) < 0.5)).astype(np.float32)


def finite_halves(rng, count):
    """Finite, non-zero float16 scales of varied sign and magnitude, as little-endian bytes."""
    values = (rng.normal(size=count) * 10.0 ** rng.uniform(-4, 0, size=count)).astype(np.float16)
    return values.view(np.uint8).reshape(count, 2)


def random_blocks(rng, qtype, cols):
    block_elements, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    blocks = ROWS * cols // block_elements
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    # Byte offsets of float16 fields (d, and m/dmin where present), from ggml's block structs.
    half_fields = {
        T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
        T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    }[qtype]
    for offset in half_fields:
        raw[:, offset:offset + 2] = finite_halves(rng, blocks)
    return raw.reshape(ROWS, -1)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests/fixtures/gguf_dequant.gguf"
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(str(out), arch="octet-dequant-fixture")
    writer.add_string("octet.fixture.generator", "tools/make_gguf_dequant_fixture.py")
    writer.add_uint32("octet.fixture.seed", SEED)

    def add(name, qtype, data):
        if qtype in (T.F32, T.F16):
            writer.add_tensor(name, data)
            expected = gguf.quants.dequantize(data.view(np.uint8), qtype) if qtype == T.F16 else data
            expected = np.asarray(expected, dtype=np.float32).reshape(ROWS, -1)
        else:
            writer.add_tensor(name, data, raw_dtype=qtype)
            expected = gguf.quants.dequantize(data, qtype)
        writer.add_tensor(name + ".expected", np.ascontiguousarray(expected, dtype=np.float32))

    add("F32.random", T.F32, random_values(rng, 64))
    # All float16 bit patterns classes: random bits hit NaNs, infinities, subnormals, zeros.
    halves = rng.integers(0, 1 << 16, size=(ROWS, 256), dtype=np.uint16)
    halves[0, :8] = [0x0000, 0x8000, 0x0001, 0x83ff, 0x7c00, 0xfc00, 0x7e01, 0x3c00]
    add("F16.random", T.F16, halves.view(np.float16))
    bf16 = rng.integers(0, 1 << 16, size=(ROWS, 256), dtype=np.uint16)
    add("BF16.random", T.BF16, bf16.view(np.uint8))
    add("BF16.quantized", T.BF16, gguf.quants.quantize(random_values(rng, 256), T.BF16))

    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        add(f"{qtype.name}.quantized", qtype, gguf.quants.quantize(random_values(rng, 256), qtype))
        add(f"{qtype.name}.random", qtype, random_blocks(rng, qtype, 256))
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        add(f"{qtype.name}.random", qtype, random_blocks(rng, qtype, 512))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
