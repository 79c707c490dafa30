#!/usr/bin/env python3
"""Writes small valid safetensors files, made by the reference `safetensors` package, as seeds for
fuzz/fuzz_safetensors.cpp. Usage: make_safetensors_fuzz_seeds.py OUT_DIR (needs safetensors, numpy)."""
import os
import sys

import numpy as np
from safetensors.numpy import save_file


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    seeds = {
        "single_f32": ({"w": rng.standard_normal((2, 3)).astype(np.float32)}, None),
        "mixed": ({
            "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((4, 4)).astype(np.float16),
            "model.layers.0.self_attn.q_proj.weight_scale": np.array(0.5, dtype=np.float32),
            "ids": np.arange(5, dtype=np.int64),
            "mask": np.array([True, False]),
            "codes": rng.integers(0, 255, size=(3, 2), dtype=np.uint8),
        }, {"format": "pt"}),
        "scalars_and_empty": ({
            "s": np.array(1.0, dtype=np.float64),
            "e": np.zeros((0, 4), dtype=np.int32),
            "i8": np.array([-1, 2], dtype=np.int8),
        }, {"producer": "seed"}),
    }
    for name, (tensors, metadata) in seeds.items():
        save_file(tensors, os.path.join(out, name + ".safetensors"), metadata=metadata)


if __name__ == "__main__":
    main()
