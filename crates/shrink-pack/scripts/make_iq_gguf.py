#!/usr/bin/env python3
"""Writes tests/data/gguf_dequant/iq_types.gguf with gguf-py's own GGUFWriter.

One tensor per decode-only type (IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ3_S, IQ2_S, IQ1_M, NVFP4):
the 16 golden blocks of `tests/data/gguf_dequant/<TYPE>/random.bin` as a 2 x (8 blocks) matrix
named `<type>.weight` (lower case). `tests/gguf_iquants.rs` reads the file with
`shrink_pack::gguf::GgufFile` and checks every tensor against `random.dequant.f32`.

Made with the PyPI package `gguf` 0.19.0 (llama.cpp's gguf-py, MIT licence), numpy 2.4.
"""

from pathlib import Path

import numpy as np
import gguf

TYPES = ["IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ3_S", "IQ2_S", "IQ1_M", "NVFP4"]


def main() -> None:
    data = Path(__file__).resolve().parent.parent / "tests/data/gguf_dequant"
    out = data / "iq_types.gguf"
    w = gguf.GGUFWriter(str(out), "test")
    for name in TYPES:
        qt = gguf.GGMLQuantizationType[name]
        _, type_size = gguf.GGML_QUANT_SIZES[qt]
        b = np.fromfile(data / name / "random.bin", dtype=np.uint8)
        assert b.size == 16 * type_size, name
        w.add_tensor(f"{name.lower()}.weight", b.reshape(2, 8 * type_size), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # Read back with gguf-py and check its own decode against the golden vectors.
    r = gguf.GGUFReader(str(out))
    for t in r.tensors:
        name = t.name.split(".")[0].upper()
        want = np.fromfile(data / name / "random.dequant.f32", dtype=np.float32)
        got = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).ravel()
        assert (got.view(np.uint32) == want.view(np.uint32)).all(), name
    print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
