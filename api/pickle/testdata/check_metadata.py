"""Loads DCP `.metadata` pickles with CPython's plain `pickle` and checks them.

usage: check_metadata.py CHECK [CHECK ...], where each CHECK is one of
  FILE EXPECTED_JSON
      FILE must unpickle, every field must have the exact Python type PyTorch
      2.x uses, and its canonical form must equal EXPECTED_JSON.
  FILE --reference REF_PICKLE [--version V]
      FILE and REF_PICKLE (e.g. a checkpoint written by PyTorch) must have the
      same canonical form; FILE is checked strictly, REF_PICKLE leniently (its
      checkpoint_id may be a pathlib path, compared as str). With --version,
      REF's version is taken to be V (a writer that fills the version in).

Every check runs; each failure is reported on stderr naming its FILE. Exit
status 0 when all pass, 1 otherwise (2 for a usage error).

The DCP classes are PyTorch 2.13's own (torch.distributed.checkpoint.metadata
and .filesystem, from tools/setup's venv): FILE must unpickle into exactly the
objects PyTorch's FileSystemReader builds.
"""

import difflib
import json
import pathlib
import pickle
import sys
from typing import Any, Dict, List, Optional

import torch
import torch.serialization  # registers _get_layout
from torch.distributed.checkpoint.filesystem import _StorageInfo
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, Metadata,
                                                   MetadataIndex, StorageMeta, TensorProperties,
                                                   TensorStorageMetadata)


class Mismatch(Exception):
    pass


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise Mismatch(f"{where}: {message}")


def _exact(value, expected_type, where: str) -> None:
    _require(type(value) is expected_type, where,
             f"expected {expected_type.__name__}, found {type(value).__name__} {value!r}")


def _size(value, where: str) -> List[int]:
    _exact(value, torch.Size, where)
    for i, d in enumerate(value):
        _exact(d, int, f"{where}[{i}]")
    return list(value)


def _opt_str(value, where: str):
    if value is not None:
        _exact(value, str, where)
    return value


def _short(obj) -> str:
    return str(obj).removeprefix("torch.")


def _properties(p, where: str) -> Dict[str, Any]:
    _exact(p, TensorProperties, where)
    _require(isinstance(p.dtype, torch.dtype), where + ".dtype", f"not a torch.dtype: {p.dtype!r}")
    _require(isinstance(p.layout, torch.layout), where + ".layout", f"not a torch.layout: {p.layout!r}")
    _exact(p.requires_grad, bool, where + ".requires_grad")
    _exact(p.pin_memory, bool, where + ".pin_memory")
    return {"dtype": _short(p.dtype), "layout": _short(p.layout), "requires_grad": p.requires_grad,
            "memory_format": _short(p.memory_format), "pin_memory": p.pin_memory}


def _storage(value, where: str) -> Dict[str, Any]:
    if type(value) is BytesStorageMetadata:
        _require(value.__dict__ == {}, where, f"BytesStorageMetadata with state {value.__dict__!r}")
        return {"type": "bytes"}
    _exact(value, TensorStorageMetadata, where)
    _require(list(value.__dict__) == ["properties", "size", "chunks"], where,
             f"state keys {list(value.__dict__)}")
    _exact(value.chunks, list, where + ".chunks")
    chunks = []
    for i, chunk in enumerate(value.chunks):
        cw = f"{where}.chunks[{i}]"
        _exact(chunk, ChunkStorageMetadata, cw)
        _require(list(chunk.__dict__) == ["offsets", "sizes"], cw, f"state keys {list(chunk.__dict__)}")
        chunks.append({"offsets": _size(chunk.offsets, cw + ".offsets"), "sizes": _size(chunk.sizes, cw + ".sizes")})
    return {"type": "tensor", **_properties(value.properties, where + ".properties"),
            "size": _size(value.size, where + ".size"), "chunks": chunks}


def _index(key, where: str) -> Dict[str, Any]:
    _exact(key, MetadataIndex, where)
    expected_keys = ["fqn", "index"] + (["offset"] if key.offset is not None else [])
    _require(list(key.__dict__) == expected_keys, where, f"state keys {list(key.__dict__)}")
    _exact(key.fqn, str, where + ".fqn")
    if key.index is not None:
        _exact(key.index, int, where + ".index")
    offset = None if key.offset is None else _size(key.offset, where + ".offset")
    return {"fqn": key.fqn, "offset": offset, "index": key.index}


def _info(info, where: str) -> Dict[str, Any]:
    _exact(info, _StorageInfo, where)
    expected_keys = ["relative_path", "offset", "length"]
    if info.transform_descriptors is not None:
        expected_keys.append("transform_descriptors")
        _exact(info.transform_descriptors, list, where + ".transform_descriptors")
        for i, d in enumerate(info.transform_descriptors):
            _exact(d, str, f"{where}.transform_descriptors[{i}]")
    _require(list(info.__dict__) == expected_keys, where, f"state keys {list(info.__dict__)}")
    _exact(info.relative_path, str, where + ".relative_path")
    _exact(info.offset, int, where + ".offset")
    _exact(info.length, int, where + ".length")
    return {"relative_path": info.relative_path, "offset": info.offset, "length": info.length,
            "transform_descriptors": info.transform_descriptors}


def _storage_meta(meta, strict: bool) -> Optional[Dict[str, Any]]:
    if meta is None:
        return None
    _exact(meta, StorageMeta, "storage_meta")
    checkpoint_id = meta.checkpoint_id
    if isinstance(checkpoint_id, pathlib.PurePath) and not strict:
        checkpoint_id = str(checkpoint_id)
    _opt_str(checkpoint_id, "storage_meta.checkpoint_id")
    _exact(meta.modules, list, "storage_meta.modules")
    for i, m in enumerate(meta.modules):
        _exact(m, str, f"storage_meta.modules[{i}]")
    return {"checkpoint_id": checkpoint_id, "save_id": _opt_str(meta.save_id, "storage_meta.save_id"),
            "load_id": _opt_str(meta.load_id, "storage_meta.load_id"), "modules": list(meta.modules)}


def canonical(md, strict: bool) -> Dict[str, Any]:
    """The JSON-able form of a Metadata, checking Python types on the way."""
    _exact(md, Metadata, "root")
    _exact(md.state_dict_metadata, dict, "state_dict_metadata")
    sdm = []
    for fqn, value in md.state_dict_metadata.items():
        _exact(fqn, str, "state_dict_metadata key")
        sdm.append([fqn, _storage(value, f"state_dict_metadata[{fqn!r}]")])
    planner = None
    if md.planner_data is not None:
        _exact(md.planner_data, dict, "planner_data")
        planner = []
        for key, path in md.planner_data.items():
            _exact(key, str, "planner_data key")
            _exact(path, tuple, f"planner_data[{key!r}]")
            for i, element in enumerate(path):
                _require(type(element) in (str, int), f"planner_data[{key!r}][{i}]", f"found {element!r}")
            planner.append([key, list(path)])
    storage = None
    if md.storage_data is not None:
        _exact(md.storage_data, dict, "storage_data")
        storage = []
        for i, (key, info) in enumerate(md.storage_data.items()):
            where = f"storage_data key #{i}"
            entry = [_index(key, where), _info(info, f"storage_data[{key!r}]")]
            # Lookup by a fresh key, as the reader does: (fqn, offset) only.
            probe = MetadataIndex(key.fqn, key.offset, index=None)
            _require(md.storage_data.get(probe) is info, where, "lookup by (fqn, offset) failed")
            storage.append(entry)
    return {"state_dict_metadata": sdm, "planner_data": planner, "storage_data": storage,
            "storage_meta": _storage_meta(md.storage_meta, strict),
            "version": _opt_str(md.version, "version")}


def _load(path: str):
    with open(path, "rb") as f:
        return pickle.load(f)


def _diff(actual, expected) -> str:
    a = json.dumps(actual, indent=1, sort_keys=True).splitlines()
    e = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(e, a, lineterm="", n=2))


def _parse_checks(args: List[str]):
    """[(file, expected_json or None, reference or None, version or None)]."""
    checks = []
    i = 0
    while i < len(args):
        if i + 1 >= len(args):
            raise ValueError(f"{args[i]}: missing EXPECTED_JSON or --reference")
        if args[i + 1] != "--reference":
            checks.append((args[i], args[i + 1], None, None))
            i += 2
            continue
        if i + 2 >= len(args):
            raise ValueError(f"{args[i]}: --reference needs a file")
        check = [args[i], None, args[i + 2], None]
        i += 3
        if i < len(args) and args[i] == "--version":
            if i + 1 >= len(args):
                raise ValueError("--version needs a value")
            check[3] = args[i + 1]
            i += 2
        checks.append(tuple(check))
    return checks


def _run(path: str, expected_json, reference, version) -> None:
    actual = canonical(_load(path), strict=True)
    if reference is not None:
        expected = canonical(_load(reference), strict=False)
        if version is not None:
            expected["version"] = version
    else:
        with open(expected_json) as f:
            expected = json.load(f)
    if actual != expected:
        raise Mismatch("canonical forms differ (--- expected, +++ actual):\n" + _diff(actual, expected))


def main(argv: List[str]) -> int:
    try:
        checks = _parse_checks(argv[1:])
    except ValueError as e:
        sys.stderr.write(f"{e}\n{__doc__}")
        return 2
    if not checks:
        sys.stderr.write(__doc__)
        return 2
    failures = 0
    for path, expected_json, reference, version in checks:
        try:
            _run(path, expected_json, reference, version)
        except Mismatch as e:
            failures += 1
            sys.stderr.write(f"{path}: {e}\n")
        except Exception as e:  # an unpickling error is a failed check too
            failures += 1
            sys.stderr.write(f"{path}: cannot load: {type(e).__name__}: {e}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
