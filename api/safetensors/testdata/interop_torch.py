"""Interop with real PyTorch 2.x and the safetensors library (the venv's).

usage: interop_torch.py check DIR EXPECTED.json
         safetensors.safe_open and torch.distributed.checkpoint's
         HuggingFaceStorageReader both read every tensor of DIR (written by
         dcplan) with the expected bytes.
       interop_torch.py write OUT_DIR EXPECTED.json
         writes a 2-file HF checkpoint with safetensors.torch.save_file and
         an index as transformers does; EXPECTED.json describes it.
"""
import json
import os
import sys

import torch
import torch.distributed.checkpoint as dcp
from safetensors import safe_open
from safetensors.torch import save_file

NAMES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
         "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
         "BOOL": torch.bool}
DTYPES = {v: k for k, v in NAMES.items()}


def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex() if t.numel() else ""


def check(directory, expected):
    faults = []
    index = os.path.join(directory, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    seen = {}
    for name in files:
        with safe_open(os.path.join(directory, name), framework="pt") as f:
            for key in f.keys():
                seen[key] = raw(f.get_tensor(key))
    for key, want in expected.items():
        if seen.get(key) != want["hex"]:
            faults.append(f"safe_open: {key} differs")
    state = {k: torch.empty(v["shape"], dtype=NAMES[v["dtype"]]) for k, v in expected.items()}
    dcp.load(state, storage_reader=dcp.HuggingFaceStorageReader(path=directory))
    for key, want in expected.items():
        if raw(state[key]) != want["hex"]:
            faults.append(f"HuggingFaceStorageReader: {key} differs")
    return faults


def write(directory, expected_path):
    g = torch.Generator().manual_seed(7)
    tensors = {
        "model.embed.weight": torch.randn(10, 6, generator=g).to(torch.bfloat16),
        "model.layers.0.w": torch.randn(8, 12, generator=g),
        "model.layers.1.w": torch.randn(12, 8, generator=g).to(torch.float16),
        "model.norm.bias": torch.arange(5, dtype=torch.int64),
        "lm_head.mask": torch.tensor([True, False, True]),
    }
    first = ["model.embed.weight", "model.layers.0.w"]
    os.makedirs(directory, exist_ok=True)
    parts = {"model-00001-of-00002.safetensors": {k: tensors[k] for k in first},
             "model-00002-of-00002.safetensors": {k: v for k, v in tensors.items() if k not in first}}
    weight_map = {}
    for name, part in parts.items():
        save_file(part, os.path.join(directory, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    with open(expected_path, "w") as f:
        json.dump({k: {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "hex": raw(t)} for k, t in tensors.items()}, f)
    return []


def main():
    mode, directory, expected_path = sys.argv[1:4]
    if mode == "write":
        faults = write(directory, expected_path)
    else:
        faults = check(directory, json.load(open(expected_path)))
    for fault in faults:
        print(fault)
    print(f"{mode}: {len(faults)} faults")
    sys.exit(1 if faults else 0)


if __name__ == "__main__":
    main()
