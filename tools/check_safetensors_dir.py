#!/usr/bin/env python3
"""Cross-checks a directory written by `octet quantize` with the reference `safetensors` package (its Rust
parser validates every header and byte range): check_safetensors_dir.py DIR. Also checks that the index maps
every tensor to the shard holding it, and that every F8_E4M3 weight has a weight_scale."""
import json
import os
import sys

import safetensors


def main() -> None:
    directory = sys.argv[1]
    index_path = os.path.join(directory, "model.safetensors.index.json")
    shards = ([os.path.basename(p) for p in sorted(set(json.load(open(index_path))["weight_map"].values()))]
              if os.path.exists(index_path) else ["model.safetensors"])
    tensors = {}
    for shard in shards:
        with open(os.path.join(directory, shard), "rb") as f:
            for name, info in safetensors.deserialize(f.read()):
                tensors[name] = (shard, info["dtype"], info["shape"])
    if os.path.exists(index_path):
        weight_map = json.load(open(index_path))["weight_map"]
        assert weight_map.keys() == tensors.keys(), "index and shards list different tensors"
        for name, shard in weight_map.items():
            assert tensors[name][0] == shard, f"{name}: index says {shard}, found in {tensors[name][0]}"
    fp8 = [n for n, (_, dtype, _) in tensors.items() if dtype == "F8_E4M3"]
    for name in fp8:
        assert name.endswith(".weight") and name[:-7] + ".weight_scale" in tensors, f"{name}: no weight_scale"
    print(f"{directory}: {len(shards)} shard(s), {len(tensors)} tensors, {len(fp8)} F8_E4M3 weights with scales: OK")


if __name__ == "__main__":
    main()
