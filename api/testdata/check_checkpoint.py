"""Checks a dcplan checkpoint the way PyTorch's FileSystemReader reads it.

usage: check_checkpoint.py CHECK_METADATA_PY CHECKPOINT_DIR EXPECTED_JSON

Run with PyTorch 2.13 (tools/setup's venv). CHECK_METADATA_PY is
api/pickle/testdata/check_metadata.py (its checks over PyTorch's own DCP
classes). Then:
  - `.metadata` must unpickle with plain `pickle.load` and pass its strict
    type checks (canonical(..., strict=True)), and PyTorch's own
    FileSystemReader.read_metadata must read the same metadata;
  - every storage_data entry must lie inside its data file;
  - every tensor item's (offset, length) slice must load with
    torch.load(weights_only=True), as the DCP reader loads it, with the dtype
    and chunk sizes of state_dict_metadata and, for the tensors listed in
    EXPECTED_JSON ({"tensors": {fqn: {"dtype", "shape", "values"}}} where a
    tensor is saved whole), exactly the listed values (complex numbers as
    [re, im] pairs);
  - every bytes item must torch.load to the Python literal listed under
    {"objects": {fqn: "literal"}}.
Every problem is reported on stderr; exit status 0 when there is none.
"""

import ast
import importlib.util
import io
import json
import os
import pickle
import sys

import torch
import torch.distributed.checkpoint as dcp


def load_module(path):
    spec = importlib.util.spec_from_file_location("check_metadata", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flat_values(tensor):
    values = tensor.reshape(-1).tolist()
    if tensor.is_complex():
        return [[v.real, v.imag] for v in values]
    return values


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    check_metadata = load_module(argv[1])
    directory = argv[2]
    with open(argv[3]) as f:
        expected = json.load(f)
    problems = []
    with open(os.path.join(directory, ".metadata"), "rb") as f:
        md = pickle.load(f)
    try:
        ours = check_metadata.canonical(md, strict=True)
        theirs = check_metadata.canonical(dcp.FileSystemReader(directory).read_metadata(), strict=True)
        # The reader stamps its own load_id into storage_meta.
        for canonical_form in (ours, theirs):
            if canonical_form["storage_meta"] is not None:
                canonical_form["storage_meta"]["load_id"] = None
        if theirs != ours:
            problems.append("metadata: FileSystemReader.read_metadata reads %r, pickle.load %r" % (theirs, ours))
    except check_metadata.Mismatch as e:
        problems.append("metadata: %s" % e)

    seen_tensors = set()
    seen_objects = set()
    for index, info in md.storage_data.items():
        path = os.path.join(directory, info.relative_path)
        size = os.path.getsize(path)
        if info.offset < 0 or info.offset + info.length > size:
            problems.append("%s: slice [%d, +%d) outside %s (%d bytes)" %
                            (index.fqn, info.offset, info.length, info.relative_path, size))
            continue
        with open(path, "rb") as f:
            f.seek(info.offset)
            payload = io.BytesIO(f.read(info.length))
        if index.offset is None:
            value = torch.load(payload, weights_only=False)
            seen_objects.add(index.fqn)
            want = expected["objects"].get(index.fqn)
            if want is None or value != ast.literal_eval(want):
                problems.append("%s: loaded %r, expected %s" % (index.fqn, value, want))
            continue
        tensor = torch.load(payload, weights_only=True)
        meta = md.state_dict_metadata[index.fqn]
        chunk = [c for c in meta.chunks if list(c.offsets) == list(index.offset)]
        if meta.properties.dtype != tensor.dtype:
            problems.append("%s: dtype %s, metadata says %s" % (index.fqn, tensor.dtype, meta.properties.dtype))
        if len(chunk) != 1 or list(chunk[0].sizes) != list(tensor.shape):
            problems.append("%s: shape %s does not match the metadata chunk" % (index.fqn, list(tensor.shape)))
        want = expected["tensors"].get(index.fqn)
        if want is not None:
            seen_tensors.add(index.fqn)
            if str(tensor.dtype) != "torch." + want["dtype"]:
                problems.append("%s: dtype %s, expected %s" % (index.fqn, tensor.dtype, want["dtype"]))
            if list(tensor.shape) != want["shape"]:
                problems.append("%s: shape %s, expected %s" % (index.fqn, list(tensor.shape), want["shape"]))
            elif flat_values(tensor) != want["values"]:
                problems.append("%s: values %s, expected %s" %
                                (index.fqn, flat_values(tensor)[:8], want["values"][:8]))
    for fqn in sorted(set(expected["tensors"]) - seen_tensors):
        problems.append("%s: no tensor item in storage_data" % fqn)
    for fqn in sorted(set(expected["objects"]) - seen_objects):
        problems.append("%s: no bytes item in storage_data" % fqn)
    for p in problems:
        sys.stderr.write(p + "\n")
    print("%d items checked, %d problems" % (len(md.storage_data), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
