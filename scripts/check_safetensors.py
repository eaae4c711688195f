#!/usr/bin/env python3
"""Reads safetensors files by the published layout with NumPy and prints every tensor.

    /usr/bin/python3 scripts/check_safetensors.py FILE [FILE ...] [--values 6]

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each name to
{"dtype", "shape", "data_offsets": [begin, end]} (relative to the data buffer, which starts at
8 + N) plus an optional "__metadata__" string map, then the little-endian data. The script checks
what the engine's reader checks (offsets tile the buffer from 0, byte counts match the shape) and,
when the `safetensors` package is importable, loads the file with it too and compares.
"""
import argparse
import json
import struct
import sys

import numpy as np

DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
SIZES = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}
MAX_HEADER = 100_000_000


def element_size(dtype):
    if dtype in DTYPES:
        return np.dtype(DTYPES[dtype]).itemsize
    if dtype in SIZES:
        return SIZES[dtype]
    raise ValueError(f"unknown dtype {dtype!r}")


def to_array(dtype, shape, raw):
    if dtype == "BF16":  # the upper half of a float32
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u16.view(np.float32).reshape(shape)
    if dtype in DTYPES:
        return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)
    return np.frombuffer(raw, dtype="u1").reshape(shape)  # float8: raw bytes


def read(path):
    """Returns (metadata, {name: (dtype, shape, ndarray)}); raises ValueError on a bad file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER or 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} is over the cap or past the end")
    header_bytes = blob[8 : 8 + n]
    if not header_bytes.startswith(b"{"):
        raise ValueError(f"{path}: header does not start with '{{'")
    header = json.loads(header_bytes.decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = blob[8 + n :]

    spans = []
    tensors = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
        begin, end = (int(v) for v in info["data_offsets"])
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if not 0 <= begin <= end or count * element_size(dtype) != end - begin:
            raise ValueError(f"{path}: tensor {name!r}: offsets [{begin}, {end}] do not fit "
                             f"shape {shape} of {dtype}")
        spans.append((begin, end, name))
        tensors[name] = (dtype, shape, to_array(dtype, shape, data[begin:end]))
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise ValueError(f"{path}: tensor {name!r} starts at {begin}, expected {pos}")
        pos = end
    if pos != len(data):
        raise ValueError(f"{path}: data buffer holds {len(data)} bytes, tensors end at {pos}")
    return metadata, tensors


def compare_with_package(path, tensors):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("  (the safetensors package is not importable; NumPy reading only)")
        return True
    theirs = load_file(path)
    ok = set(theirs) == set(tensors)
    for name, (_, _, arr) in tensors.items():
        if name in theirs and not np.array_equal(theirs[name].view(np.uint8),
                                                 np.ascontiguousarray(arr).view(np.uint8)):
            print(f"  MISMATCH with the safetensors package: {name}")
            ok = False
    print("  safetensors package agrees" if ok else "  safetensors package DISAGREES")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--values", type=int, default=6, help="first values printed per tensor")
    args = parser.parse_args()
    ok = True
    for path in args.files:
        try:
            metadata, tensors = read(path)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
            print(f"{path}: INVALID: {e}")
            ok = False
            continue
        print(f"{path}: {len(tensors)} tensors, metadata {metadata}")
        for name in sorted(tensors):
            dtype, shape, arr = tensors[name]
            first = arr.reshape(-1)[: args.values].tolist()
            print(f"  {name:40s} {dtype:5s} {str(shape):18s} {first}")
        ok = compare_with_package(path, tensors) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
