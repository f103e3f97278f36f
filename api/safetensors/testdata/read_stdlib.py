"""An independent reader of a Hugging Face safetensors directory, written
with Python's standard library only (json, struct): it checks every header
and the index against the format's rules and each tensor's bytes against
an expectation file.

usage: read_stdlib.py DIR EXPECTED.json
EXPECTED.json: {name: {"dtype": "F32", "shape": [...], "hex": "..."}}.
Prints one line per fault and exits 1 if there is any.
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
         "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8}


def read_file(path, faults):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if (8 + n) % 8:
        faults.append(f"{path}: data does not start 8-byte aligned")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        faults.append(f"{path}: __metadata__ is {meta!r}")
    buffer = data[8 + n:]
    end = 0
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, stop = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if begin != end:
            faults.append(f"{path}: {name} starts at {begin}, expected {end}")
        if stop - begin != count * SIZES[info["dtype"]]:
            faults.append(f"{path}: {name} holds {stop - begin} bytes")
        end = stop
        tensors[name] = (info["dtype"], info["shape"], buffer[begin:stop])
    if end != len(buffer):
        faults.append(f"{path}: tensors cover {end} of {len(buffer)} bytes")
    names = list(header)
    if names != sorted(names):
        faults.append(f"{path}: tensors are not in name order: {names}")
    return tensors


def main():
    directory, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    faults = []
    index_path = os.path.join(directory, "model.safetensors.index.json")
    found = {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
        total = 0
        for name in files:
            for tensor, value in read_file(os.path.join(directory, name), faults).items():
                if index["weight_map"].get(tensor) != name:
                    faults.append(f"{name}: {tensor} is not mapped to this file")
                found[tensor] = value
                total += len(value[2])
        if index["metadata"]["total_size"] != total:
            faults.append(f"total_size {index['metadata']['total_size']} != {total}")
    else:
        found = read_file(os.path.join(directory, "model.safetensors"), faults)
    if sorted(found) != sorted(expected):
        faults.append(f"tensors {sorted(found)} != expected {sorted(expected)}")
    for name, want in expected.items():
        if name not in found:
            continue
        dtype, shape, data = found[name]
        if dtype != want["dtype"] or shape != want["shape"] or data.hex() != want["hex"]:
            faults.append(f"{name}: {dtype} {shape} differs from {want['dtype']} {want['shape']} or its bytes do")
    for fault in faults:
        print(fault)
    print(f"checked {len(found)} tensors, {len(faults)} faults")
    sys.exit(1 if faults else 0)


if __name__ == "__main__":
    main()
