#!/usr/bin/env python3
"""Prints golden values for tests/formats/gguf_smollm2_test.cpp from the real SmolLM2 GGUF.

Reference: gguf-py's GGUFReader and gguf.quants.dequantize (independent of Octet's C++).
Usage: /tmp/refenv/bin/python tools/smollm2_golden_values.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf
Made with gguf 0.19.0, numpy 2.4.6.
"""
import sys
from collections import Counter

import numpy as np
import gguf

TENSORS = {
    "token_embd.weight": [0, 1, 575, 576 * 1000 + 17, 576 * 49152 - 1],
    "blk.0.attn_q.weight": [0, 31, 32, 1000, 576 * 576 - 1],
    "blk.29.ffn_down.weight": [0, 15, 16, 123457, 1536 * 576 - 1],
    "blk.0.attn_norm.weight": [0, 1, 575],
    "output_norm.weight": [0, 287, 575],
}


def main():
    reader = gguf.GGUFReader(sys.argv[1])
    print(f"// tensors: {len(reader.tensors)}; types: {dict(Counter(t.tensor_type.name for t in reader.tensors))}")
    for name, indices in TENSORS.items():
        tensor = next(t for t in reader.tensors if t.name == name)
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1).astype(np.float32)
        golden = ", ".join(f"{{{i}, 0x{values[i].view(np.uint32):08x}u}}" for i in indices)
        total = float(values.astype(np.float64).sum())
        print(f'{{"{name}", {tensor.tensor_type.name}, {values.size}, {total!r}, {{{golden}}}}},'
              f"  // {', '.join(f'{values[i]:.6g}' for i in indices)}")


if __name__ == "__main__":
    main()
