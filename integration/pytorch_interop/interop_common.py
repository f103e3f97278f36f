"""Shared pieces of the PyTorch 2.13 interop tests.

- The reference state dict: full tensors and values, made from a fixed seed,
  so every process (Python rank or dcplan helper) agrees on every element.
- Specs: the JSON files the C++ helper (interop_helper.cc) reads. A spec names
  the world size, every tensor (dtype, global shape, a raw file of its
  row-major bytes, and each rank's shards as [offsets, lengths] boxes) and
  every non-tensor value (JSON).
- Bitwise comparison that names the tensor and the rank that differs.
- Launching N Python ranks over gloo on loopback (a FileStore rendezvous: no
  TCP port to pick), with a deadline.
"""

import json
import os
import subprocess
import sys
import tempfile

import torch

DEADLINE_SECONDS = 120


class Failure(Exception):
    pass


def fail(message):
    raise Failure(message)


def reference_state(seed=1234):
    """The state dict every interop case saves: model, optimizer-like state, values."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(shape, generator=g).to(dtype)

    def randint(*shape, dtype=torch.int64, high=1000):
        return torch.randint(-high, high, shape, generator=g).to(dtype)

    return {
        "model": {
            "embed": {"weight": randn(10, 6)},
            "layers": {
                "0": {
                    "attn": {"w": randn(8, 6), "b": randn(6, dtype=torch.bfloat16)},
                    "mlp": {"w": randn(9, 5, dtype=torch.float16)},
                },
            },
            "counts": randint(3, 9),
            "mask": torch.rand(5, generator=g) > 0.5,
            "scale": randn(dtype=torch.float64),
            "bytes8": randint(4, 4, dtype=torch.int8, high=100),
        },
        "optim": {
            "state": {
                "model.embed.weight": {
                    "exp_avg": randn(10, 6),
                    "exp_avg_sq": randn(10, 6).abs(),
                    "step": torch.tensor(5.0),
                },
            },
            "param_groups": [
                {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "params": ["model.embed.weight"], "name": "adam"},
            ],
        },
        "step": 42,
        "tag": "run-7",
    }


def new_dtype_state(seed=99):
    """Tensors of the dtypes PyTorch 2.x added (unsigned 16/32/64, the float8 kinds), one of them a view."""
    g = torch.Generator().manual_seed(seed)
    return {
        "u16": torch.randint(0, 65535, (7,), generator=g).to(torch.uint16),
        "u32": torch.randint(0, 2**31 - 1, (2, 3), generator=g).to(torch.uint32),
        "u64": torch.randint(0, 2**62, (3,), generator=g).to(torch.uint64),
        "f8e4m3": torch.randn(4, 2, generator=g).to(torch.float8_e4m3fn),
        "f8e5m2": torch.randn(5, generator=g).to(torch.float8_e5m2),
        "f8e4m3fnuz": torch.randn(6, 3, generator=g).to(torch.float8_e4m3fnuz).t(),
        "f8e5m2fnuz": torch.randn(9, generator=g).to(torch.float8_e5m2fnuz),
    }


def dim0_shard(tensor, rank, world_size):
    """This rank's Shard(0) piece of `tensor` (torch.chunk's split, as DTensor makes it)."""
    start, length = even_chunks(tensor.shape[0], world_size)[rank]
    return tensor.narrow(0, start, length)


def flatten(tree, prefix=""):
    """{"a": {"b": x}} -> {"a.b": x}; lists by index; leaves: tensors and plain values."""
    out = {}
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list) and any(isinstance(v, (dict, torch.Tensor)) for v in tree):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        out[prefix] = tree
        return out
    for key, value in items:
        out.update(flatten(value, prefix + "." + key if prefix else key))
    return out


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def raw_bytes(tensor):
    """The tensor's elements in row-major order, as bytes (bool: one byte each)."""
    t = tensor.detach().contiguous()
    if t.dim() == 0:
        t = t.reshape(1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def plain(value):
    """A value as JSON would carry it: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def write_spec(path, directory, world_size, tensors, values, shards_of, lists=()):
    """Writes a helper spec. shards_of(fqn, tensor) -> one list of [offsets, lengths] per rank,
    or "whole": a plain tensor on every rank (replicated)."""
    spec = {"world_size": world_size, "lists": list(lists), "tensors": {}, "values": {}}
    for i, (fqn, tensor) in enumerate(sorted(tensors.items())):
        data_file = os.path.join(directory, "t%d.bin" % i)
        with open(data_file, "wb") as f:
            f.write(raw_bytes(tensor))
        shards = shards_of(fqn, tensor)
        spec["tensors"][fqn] = {
            "dtype": dtype_name(tensor.dtype),
            "shape": list(tensor.shape),
            "file": data_file,
            "whole": shards == "whole",
            "shards": [[[[0] * tensor.dim(), list(tensor.shape)]]] * world_size if shards == "whole" else shards,
        }
    spec["values"] = {fqn: plain(v) for fqn, v in values.items()}
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    return spec


def box_slice(tensor, offsets, lengths):
    t = tensor
    for dim, (o, n) in enumerate(zip(offsets, lengths)):
        t = t.narrow(dim, o, n)
    return t


def even_chunks(extent, parts):
    """torch.chunk-like split of `extent` into `parts` (offset, length) pairs, empty ones at the end."""
    step = -(-extent // parts) if extent else 0
    out = []
    for p in range(parts):
        start = min(p * step, extent)
        out.append((start, min(step, extent - start)))
    return out


def shard_on_dim(shape, world_size, dim):
    """One box per rank: the tensor split along `dim` (whole on a 0-dim tensor: rank 0 only)."""
    if not shape:
        return [[[[], []]]] + [[] for _ in range(world_size - 1)]
    boxes = []
    for start, length in even_chunks(shape[dim], world_size):
        offsets = [0] * len(shape)
        lengths = list(shape)
        offsets[dim], lengths[dim] = start, length
        boxes.append([[offsets, lengths]])
    return boxes


def compare_bitwise(what, expected, actual):
    """Fails naming `what` when dtype, shape or any byte differs."""
    if expected.dtype != actual.dtype:
        fail("%s: dtype %s, expected %s" % (what, actual.dtype, expected.dtype))
    if tuple(expected.shape) != tuple(actual.shape):
        fail("%s: shape %s, expected %s" % (what, list(actual.shape), list(expected.shape)))
    a, b = raw_bytes(expected), raw_bytes(actual)
    if a != b:
        first = next(i for i in range(len(a)) if a[i] != b[i])
        element = first // max(expected.element_size(), 1)
        fail("%s: differs first at element %d (flat index)" % (what, element))


def saved_object(value):
    """A value dcplan kept as its torch.save archive (helper: {"saved_object": path}), loaded."""
    if isinstance(value, dict) and set(value) == {"saved_object"}:
        return plain(torch.load(value["saved_object"], weights_only=False))
    if isinstance(value, dict):
        return {k: saved_object(v) for k, v in value.items()}
    if isinstance(value, list):
        return [saved_object(v) for v in value]
    return value


def check_helper_output(spec, out_dir, reference):
    """Compares every rank's loaded shards and values (helper `load` output) with the reference."""
    checked = 0
    for rank in range(spec["world_size"]):
        rank_dir = os.path.join(out_dir, "rank%d" % rank)
        for fqn, t in spec["tensors"].items():
            for k, (offsets, lengths) in enumerate(t["shards"][rank]):
                with open(os.path.join(rank_dir, "%s.%d.bin" % (fqn, k)), "rb") as f:
                    got = f.read()
                want = box_slice(reference[fqn], offsets, lengths)
                if got != raw_bytes(want):
                    fail("rank %d, tensor %s, shard %d (offsets %s, lengths %s): loaded bytes differ from "
                         "PyTorch's" % (rank, fqn, k, offsets, lengths))
                checked += 1
        with open(os.path.join(rank_dir, "values.json")) as f:
            values = json.load(f)
        for fqn, want in spec["values"].items():
            if saved_object(values.get(fqn)) != want:
                fail("rank %d, value %s: loaded %r, expected %r" % (rank, fqn, values.get(fqn), want))
            checked += 1
    return checked


def run(argv, what, expect_rc=0, timeout=DEADLINE_SECONDS):
    """Runs a command; fails with its output unless it exits with expect_rc."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, text=True)
    if expect_rc is not None and proc.returncode != expect_rc:
        fail("%s: exit %d (expected %d): %s\n%s" % (what, proc.returncode, expect_rc, " ".join(argv), proc.stdout))
    return proc


def launch_ranks(world_size, worker_args, what):
    """Runs interop_worker.py as `world_size` ranks meeting through a FileStore; all must succeed."""
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop_worker.py")
    with tempfile.TemporaryDirectory(prefix="rdzv", dir=os.environ.get("TEST_TMPDIR")) as rdzv:
        store = os.path.join(rdzv, "store")
        procs = []
        for rank in range(world_size):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world_size), DCPLAN_STORE=store,
                       GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
            log = open(os.path.join(rdzv, "rank%d.log" % rank), "w+")
            procs.append((subprocess.Popen([sys.executable, worker] + worker_args, env=env, stdout=log,
                                           stderr=subprocess.STDOUT), log))
        problems = []
        for rank, (proc, log) in enumerate(procs):
            try:
                rc = proc.wait(timeout=DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = "killed at the deadline"
            log.seek(0)
            output = log.read()
            log.close()
            if rc != 0:
                problems.append("rank %d of %d (%s): exit %s\n%s" % (rank, world_size, what, rc, output[-3000:]))
        if problems:
            fail("\n".join(problems))


def main_wrapper(cases):
    """Runs named cases in order; prints one line per case; exit 1 on the first failure."""
    for name, case in cases:
        try:
            detail = case()
        except Failure as e:
            print("FAIL %s: %s" % (name, e))
            return 1
        print("ok   %s%s" % (name, ": " + detail if detail else ""))
        sys.stdout.flush()
    return 0
