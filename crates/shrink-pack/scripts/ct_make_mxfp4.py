#!/usr/bin/env python3
"""Makes the `mxfp4` golden compressed-tensors folder with the real package.

Usage: python3 ct_make_mxfp4.py OUT_DIR   (needs `compressed-tensors` and torch)

Input: `tests/data/compressed_tensors/input.safetensors` (the f32 weights of the other golden
cases: `layers.0.q` 384 x 384, `layers.0.rand` 256 x 512). Same user path as the other cases
(`tests/data/compressed_tensors/README.md`):

1. `apply_quantization_config` with the package's `MXFP4A16` preset (float, 4 bits, group 32,
   symmetric, `scale_dtype` uint8) for targets `["Linear"]`;
2. weight calibration = llm-compressor's MinMax observer (per group of 32: `min` / `max` of the
   weights) followed by the package's `calculate_qparams`, written to `weight_scale` /
   `weight_zero_point`;
3. `ModelCompressor.from_pretrained_model(model)`, `.compress_model(model)`, the state dict saved
   with safetensors `save_file` (metadata `{"format": "pt"}`), `.update_config(OUT_DIR)`;
4. `dequant.safetensors`: the package's decompression (`ModelCompressor.decompress_model` on a
   fresh model holding the saved tensors) as f32.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import compressed_tensors
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import (
    QuantizationConfig,
    QuantizationScheme,
    apply_quantization_config,
    preset_name_to_scheme,
)
from compressed_tensors.quantization.utils import calculate_qparams

HERE = Path(__file__).resolve().parent
INPUT = HERE.parent / "tests/data/compressed_tensors/input.safetensors"


class Layer(torch.nn.Module):
    def __init__(self, q, rand):
        super().__init__()
        self.q = torch.nn.Linear(q.shape[1], q.shape[0], bias=False)
        self.rand = torch.nn.Linear(rand.shape[1], rand.shape[0], bias=False)
        with torch.no_grad():
            self.q.weight.copy_(q)
            self.rand.weight.copy_(rand)


class Model(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.layers = torch.nn.ModuleList([Layer(w["layers.0.q.weight"], w["layers.0.rand.weight"])])


def quantized_model(w):
    model = Model(w)
    scheme = preset_name_to_scheme("MXFP4A16", ["Linear"])
    config = QuantizationConfig(config_groups={"group_0": scheme})
    apply_quantization_config(model, config)
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        args = module.quantization_scheme.weights
        wt = module.weight.data
        g = wt.reshape(wt.shape[0], -1, args.group_size)
        mn = g.amin(dim=-1)
        mx = g.amax(dim=-1)
        scale, zp = calculate_qparams(mn, mx, args)
        with torch.no_grad():
            module.weight_scale.data = scale.to(module.weight_scale.dtype).reshape(module.weight_scale.shape)
            module.weight_zero_point.data = zp.to(module.weight_zero_point.dtype).reshape(
                module.weight_zero_point.shape
            )
    return model


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    w = load_file(str(INPUT))
    model = quantized_model(w)
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    compressor.update_config(str(out))
    # The package's own decompression of the saved tensors.
    fresh = quantized_model(w)
    compressor.compress_model(fresh)
    saved = load_file(str(out / "model.safetensors"))
    fresh.load_state_dict(saved, strict=False)
    for k, v in saved.items():
        mod_name, _, pname = k.rpartition(".")
        mod = fresh.get_submodule(mod_name)
        getattr(mod, pname).data = v
    compressor.decompress_model(fresh)
    deq = {k: v.float().contiguous() for k, v in fresh.state_dict().items() if k.endswith(".weight")}
    save_file(deq, str(out / "dequant.safetensors"))
    print("compressed-tensors", compressed_tensors.__version__, "torch", torch.__version__)
    for k, v in sorted(sd.items()):
        print(k, tuple(v.shape), v.dtype)
    print(json.dumps(json.load(open(out / "config.json")), indent=1)[:1500])


if __name__ == "__main__":
    main()
