#!/usr/bin/env python3
"""Read a GGUF file written by shrink with llama.cpp's gguf-py and compare.

Usage: gguf_readback.py FILE.gguf EXPECTED.json

EXPECTED.json (written by shrink-pack's `gguf_readback` test) holds:
  {"metadata": [{"key": k, "spec": {"type": "UINT32"}, "value": v}, ...],
  (arrays: {"type": "ARRAY", "elem": {...}}; type names as GGUFValueType)
   "tensors":  [{"name": n, "type": "Q4_K", "dims": [ne0, ne1, ...],
                 "bytes": "file of the raw tensor bytes",
                 "values": "file of shrink's f32 dequantization (LE f32)"}, ...]}
Relative paths are taken from EXPECTED.json's directory.

Checks, with gguf.GGUFReader and gguf.quants.dequantize:
  * every expected metadata key is present with the same value type and value
    (arrays element by element, floats compared exactly at their width);
  * every tensor has the expected ggml type and dims (ggml order), the same raw
    bytes, and gguf-py's dequantization equals shrink's bit for bit.
Prints one JSON line per tensor and a summary line; exits 1 on any mismatch,
2 when the gguf module is missing.
"""

import json
import os
import sys

import numpy as np

try:
    import gguf
    from gguf import GGUFReader, GGUFValueType
    from gguf.quants import dequantize
except ImportError as e:  # pragma: no cover
    print(f"gguf module not available: {e}", file=sys.stderr)
    sys.exit(2)

PLAIN = {
    "I8": np.int8,
    "I16": np.int16,
    "I32": np.int32,
    "I64": np.int64,
    "F64": np.float64,
}


def leaves(spec, value):
    """(spec, value) of every scalar inside a possibly nested array."""
    if spec["type"] == "ARRAY":
        for v in value:
            yield from leaves(spec["elem"], v)
    else:
        yield spec, value


def same_value(spec, want, field):
    got_type = field.types[0].name
    if got_type != spec["type"]:
        return False, f"type {got_type} != {spec['type']}"
    got = field.contents()
    nested = spec["type"] == "ARRAY" and spec["elem"]["type"] == "ARRAY"
    if not nested:
        return compare(spec, want, got)
    # gguf-py flattens arrays of arrays (its reader's FIXME): compare leaves.
    flat = list(leaves(spec, want))
    if len(flat) != len(got):
        return False, f"{len(got)} leaves != {len(flat)}"
    for i, ((s, w), g) in enumerate(zip(flat, got)):
        ok, why = compare(s, w, g)
        if not ok:
            return False, f"leaf {i}: {why}"
    return True, ""


def compare(spec, want, got):
    t = spec["type"]
    if t == "ARRAY":
        if not isinstance(got, list) or len(got) != len(want):
            return False, f"array {got!r} != {want!r}"
        elem = spec["elem"]
        for i, (w, g) in enumerate(zip(want, got)):
            ok, why = compare(elem, w, g)
            if not ok:
                return ok, f"[{i}]: {why}"
        return True, ""
    if t == "FLOAT32":
        ok = np.float32(got) == np.float32(want)
    elif t == "FLOAT64":
        ok = float(got) == float(want)
    elif t == "BOOL":
        ok = bool(got) == bool(want)
    elif t == "STRING":
        ok = got == want
    else:
        ok = int(got) == int(want)
    return bool(ok), "" if ok else f"{got!r} != {want!r}"


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, expected_path = sys.argv[1], sys.argv[2]
    base = os.path.dirname(os.path.abspath(expected_path))
    with open(expected_path) as f:
        exp = json.load(f)
    reader = GGUFReader(path)
    failures = 0
    checked_meta = 0
    for m in exp["metadata"]:
        field = reader.fields.get(m["key"])
        if field is None:
            print(json.dumps({"key": m["key"], "ok": False, "why": "missing"}))
            failures += 1
            continue
        ok, why = same_value(m["spec"], m["value"], field)
        checked_meta += 1
        if not ok:
            failures += 1
            print(json.dumps({"key": m["key"], "ok": False, "why": why}))
    tensors = {t.name: t for t in reader.tensors}
    for t in exp["tensors"]:
        rt = tensors.get(t["name"])
        rec = {"name": t["name"], "type": t["type"]}
        if rt is None:
            rec.update(ok=False, why="missing")
            failures += 1
            print(json.dumps(rec))
            continue
        want_bytes = open(os.path.join(base, t["bytes"]), "rb").read()
        want = np.fromfile(os.path.join(base, t["values"]), dtype="<f4")
        type_ok = rt.tensor_type.name == t["type"]
        dims_ok = [int(d) for d in rt.shape] == t["dims"]
        bytes_ok = rt.data.tobytes() == want_bytes
        got = None
        try:
            if t["type"] in PLAIN:
                got = rt.data.view(PLAIN[t["type"]]).astype(np.float32).reshape(-1)
            else:
                got = np.asarray(dequantize(rt.data, rt.tensor_type), dtype=np.float32)
                got = got.reshape(-1)
        except NotImplementedError:
            # gguf-py cannot decode this type (Q8_K): bytes, type and dims only.
            rec["dequant"] = "not implemented in gguf-py"
        values_ok = got is None or (
            got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
        )
        ok = type_ok and dims_ok and bytes_ok and values_ok
        rec.update(type_ok=type_ok, dims_ok=dims_ok, bytes_equal=bytes_ok)
        if got is not None:
            rec["values_equal"] = values_ok
            if not values_ok and got.shape == want.shape:
                rec["max_abs_diff"] = float(np.max(np.abs(got.astype(np.float64) - want)))
        print(json.dumps(rec))
        failures += 0 if ok else 1
    print(
        json.dumps(
            {
                "gguf_py": getattr(gguf, "__version__", None) or _version(),
                "metadata_checked": checked_meta,
                "tensors_checked": len(exp["tensors"]),
                "failures": failures,
            }
        )
    )
    return 1 if failures else 0


def _version():
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
