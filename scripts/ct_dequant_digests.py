#!/usr/bin/env python3
"""FNV-1a 64-bit digests of the dequantized tensors of compressed-tensors
golden folders, so that shrink-pack's tests can check its decompression
without carrying the (large) `dequant.safetensors` files.

Usage: ct_dequant_digests.py GOLDEN_DIR > dequant_digests.json

For every case folder of GOLDEN_DIR holding `dequant.safetensors`, and every
tensor in it, prints {case: {tensor: {"shape": [...], "fnv1a64": "hex"}}}
where the digest runs over the tensor's raw little-endian bytes (f32).
Reads the safetensors header directly (no torch needed).
"""
import json
import os
import struct
import sys


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    root = sys.argv[1]
    out = {}
    for case in sorted(os.listdir(root)):
        path = os.path.join(root, case, "dequant.safetensors")
        if not os.path.isfile(path):
            continue
        raw = open(path, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8 : 8 + n])
        base = 8 + n
        entry = {}
        for name, info in sorted(header.items()):
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32", (case, name, info["dtype"])
            s, e = info["data_offsets"]
            entry[name] = {"shape": info["shape"], "fnv1a64": fnv1a64(raw[base + s : base + e])}
        out[case] = entry
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
