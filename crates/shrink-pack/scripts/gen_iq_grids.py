#!/usr/bin/env python3
"""Writes ggml's IQ lookup tables (format constants of the GGUF spec) as raw bytes.

Source: the PyPI package `gguf` 0.19.0 (llama.cpp's gguf-py, MIT licence), module
`gguf.quants`, whose IQ classes carry ggml's `iq2xxs_grid`, `iq2xs_grid`, `iq2s_grid`,
`iq3xxs_grid`, `iq3s_grid`, `iq1s_grid` (hex-packed, expanded by `init_grid`) and
`ksigns_iq2xs` (`IQ2_XXS.ksigns`). Each output file holds one table, row after row, one
byte per grid value (iq1s values -1/0/1 as two's-complement bytes):

    iq2xxs_grid.bin  256 x 8     iq3xxs_grid.bin  256 x 4     iq1s_grid.bin  2048 x 8
    iq2xs_grid.bin   512 x 8     iq3s_grid.bin    512 x 4     ksigns.bin     128
    iq2s_grid.bin   1024 x 8

Usage: python3 gen_iq_grids.py [OUT_DIR]   (default: ../src/gguf/iq_grids next to this script)
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import quants

TABLES = [
    ("iq2xxs_grid", quants.IQ2_XXS, (256, 8)),
    ("iq2xs_grid", quants.IQ2_XS, (512, 8)),
    ("iq2s_grid", quants.IQ2_S, (1024, 8)),
    ("iq3xxs_grid", quants.IQ3_XXS, (256, 4)),
    ("iq3s_grid", quants.IQ3_S, (512, 4)),
    ("iq1s_grid", quants.IQ1_S, (2048, 8)),
]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src/gguf/iq_grids"
    out.mkdir(parents=True, exist_ok=True)
    version = getattr(gguf, "__version__", None)
    try:
        from importlib.metadata import version as pkg_version

        version = pkg_version("gguf")
    except Exception:  # noqa: BLE001
        pass
    lines = [f"# sha256 of the tables, written by gen_iq_grids.py from gguf {version}"]
    for name, cls, shape in TABLES:
        cls.init_grid()
        grid = np.asarray(cls.grid).reshape(shape)
        assert np.all(grid == np.round(grid)), name
        data = grid.astype(np.int8 if name == "iq1s_grid" else np.uint8).tobytes()
        (out / f"{name}.bin").write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}.bin")
    ksigns = bytes(quants.IQ2_XXS.ksigns)
    assert len(ksigns) == 128
    # ggml's ksigns_iq2xs[i] is i with bit 7 set when i has an odd number of set bits.
    assert all(ksigns[i] == i | ((bin(i).count("1") & 1) << 7) for i in range(128))
    (out / "ksigns.bin").write_bytes(ksigns)
    lines.append(f"{hashlib.sha256(ksigns).hexdigest()}  ksigns.bin")
    (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
