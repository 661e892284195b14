#!/usr/bin/env python3
"""Loads a compressed-tensors folder with the real `compressed-tensors` package and writes the
package's decompressed weights, so that shrink's exports can be checked against the package.

Usage: python3 ct_load.py FOLDER OUT.safetensors

FOLDER holds `config.json` (with `quantization_config`) and `model.safetensors`. The script
builds an empty `torch.nn.Module` tree with one bias-free `nn.Linear` per compressed module
(shapes read from the tensors: `weight_shape`, `weight_packed`, `weight` or `shape`), then
follows the package's own load path:

* compressed-tensors >= 0.15 (the "Decompression Lifecycle" of `ModelCompressor`, which
  transformers' `CompressedTensorsHfQuantizer` runs): `ModelCompressor.from_compression_config(
  transformers.CompressedTensorsConfig.from_dict(quantization_config))`,
  `apply_quantization_config(model, ...)`, `compress_model(model)` (creates the compressed
  parameters), the file's tensors loaded into them, `decompress_model(model)`;
* compressed-tensors <= 0.14 (which still reads `sparse-24-bitmask` and act-order
  `weight_g_idx`): `ModelCompressor.from_compression_config(quantization_config)` (what
  `from_pretrained(FOLDER)` does after reading config.json with transformers' AutoConfig, which
  would demand a `model_type`), then `compressor.decompress(FOLDER, model)` (which applies the
  quantization config itself).

OUT.safetensors gets `<module>.weight` as float32 (converted from the dtype the package
returned); the script prints one JSON line: package version, path taken, and per module the
dtype the package returned. Exit status 0 on success; any exception propagates (non-zero).
"""

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import compressed_tensors
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import apply_quantization_config


def version_tuple(v):
    return tuple(int(x) for x in v.split(".")[:2])


def module_shapes(path):
    """{prefix: (out_features, in_features)} from the compressed tensors."""
    shapes = {}
    with safe_open(str(path), "pt") as f:
        names = list(f.keys())
        for name in names:
            prefix, _, leaf = name.rpartition(".")
            if leaf == "weight_shape":
                s = f.get_tensor(name).tolist()
                shapes[prefix] = (int(s[0]), int(s[1]))
            elif leaf == "shape" and f"{prefix}.bitmask" in names:
                s = f.get_tensor(name).reshape(-1).tolist()
                shapes[prefix] = (int(s[0]), int(s[1]))
            elif leaf == "weight_packed" and f"{prefix}.weight_shape" not in names:
                t = f.get_slice(name)
                m, h = t.get_shape()
                shapes[prefix] = (m, 2 * h)
            elif leaf == "weight" and prefix not in shapes:
                m, n = f.get_slice(name).get_shape()
                shapes[prefix] = (m, n)
    return shapes


def build_model(shapes):
    root = torch.nn.Module()
    for prefix, (m, n) in sorted(shapes.items()):
        parts = prefix.split(".")
        node = root
        for p in parts[:-1]:
            if not hasattr(node, p):
                node.add_module(p, torch.nn.Module())
            node = getattr(node, p)
        node.add_module(parts[-1], torch.nn.Linear(n, m, bias=False))
    return root


def load_into(model, path):
    with safe_open(str(path), "pt") as f:
        for name in f.keys():
            prefix, _, leaf = name.rpartition(".")
            mod = model.get_submodule(prefix)
            t = f.get_tensor(name)
            if hasattr(mod, leaf):
                getattr(mod, leaf).data = t
            else:
                mod.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=False))


def main():
    folder = Path(sys.argv[1])
    out = Path(sys.argv[2])
    qcfg = json.loads((folder / "config.json").read_text())["quantization_config"]
    st = folder / "model.safetensors"
    shapes = module_shapes(st)
    model = build_model(shapes)
    version = compressed_tensors.__version__
    if version_tuple(version) >= (0, 15):
        from transformers.utils.quantization_config import CompressedTensorsConfig

        compressor = ModelCompressor.from_compression_config(CompressedTensorsConfig.from_dict(qcfg))
        apply_quantization_config(model, compressor.quantization_config)
        compressor.compress_model(model)
        load_into(model, st)
        compressor.decompress_model(model)
        path = "from_compression_config+compress_model+decompress_model"
        weights = {p: model.get_submodule(p).weight.data for p in shapes}
    else:
        # from_pretrained(FOLDER) would read config.json through transformers'
        # AutoConfig, which needs a model_type; the dict path is the same parser.
        compressor = ModelCompressor.from_compression_config(qcfg)
        compressor.decompress(model_path=str(folder), model=model)
        path = "from_compression_config+decompress"
        weights = {p: model.get_submodule(p).weight.data for p in shapes}
    dtypes = {p: str(w.dtype) for p, w in weights.items()}
    save_file({f"{p}.weight": w.float().contiguous() for p, w in weights.items()}, str(out))
    print(json.dumps({"compressed_tensors": version, "path": path, "dtypes": dtypes}))


if __name__ == "__main__":
    main()
