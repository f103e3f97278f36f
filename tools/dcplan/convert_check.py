"""Loads a torch.save file written by `dcplan convert` with Python's torch.load.

usage: convert_check.py FILE.pt [EXPECTED_TXT]
       convert_check.py --write-sample OUT.pt
       convert_check.py --write-new-dtypes OUT.pt
       convert_check.py --compare [--weights-only] ORIGINAL.pt CONVERTED.pt

Run with PyTorch 2.13 (tools/setup's venv). Files are read with
torch.load(weights_only=False) (values dcplan keeps from LibTorch's pickler
use torch.jit._pickle.build_*list, which weights_only refuses; README), and
with --weights-only the way PyTorch's DCP reader reads tensor items.

Prints the loaded state dict flattened the way DCP flattens it, one line per
value, in the fixtures' expected.txt format (api/testdata/fixtures/README.md):
  tensor <fqn> shape=[d0, d1] dtype=<name> sha256=<first 16 hex digits>
  object <fqn> <python type> <python repr>
followed by one line per container: `container <path> dict|list`.
With EXPECTED_TXT, the value lines must equal that file's lines (as sets);
every difference is reported on stderr and the exit status is 1.

--write-sample saves a state dict the way training code does (a module's
OrderedDict state dict with _metadata, an optimizer state dict with int keys,
tied and strided tensors sharing a storage, bytes, a set, a big int, NaN, a
tuple holding a tensor). --compare checks that CONVERTED holds the same values
as ORIGINAL, int dict keys read as strings (what DCP flattening keeps).
--write-new-dtypes saves tensors of the dtypes PyTorch 2.x added (uint16/32/64,
the float8 kinds; one a strided view with a storage offset), which torch.save
writes with torch._utils._rebuild_tensor_v3.
"""

import hashlib
import sys

import torch


def is_leaf_list(value):
    for item in value:
        if isinstance(item, (torch.Tensor, dict)):
            return False
        if isinstance(item, list) and not is_leaf_list(item):
            return False
    return True


def flatten(value, path, values, containers):
    if isinstance(value, dict):
        containers.append("container %s dict" % ".".join(path))
        for key, item in value.items():
            flatten(item, path + [str(key)], values, containers)
        return
    if isinstance(value, list) and not is_leaf_list(value):
        containers.append("container %s list" % ".".join(path))
        for index, item in enumerate(value):
            flatten(item, path + [str(index)], values, containers)
        return
    fqn = ".".join(path)
    if isinstance(value, torch.Tensor):
        flat = value.detach().contiguous().reshape(-1)
        raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        values.append("tensor %s shape=[%s] dtype=%s sha256=%s" % (
            fqn, ", ".join(str(d) for d in value.shape), str(value.dtype).replace("torch.", ""),
            hashlib.sha256(raw).hexdigest()[:16]))
    else:
        values.append("object %s %s %r" % (fqn, type(value).__name__, value))


def write_sample(path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    w = torch.randn(4, 6)
    torch.save({
        "model": model.state_dict(),
        "optim": optimizer.state_dict(),
        "tied": {"a": w, "b": w, "transposed": w.t(), "rows": w[1:3]},
        "blob": b"\x00xyz\xff",
        "nothing": None,
        "big": 2 ** 70,
        "negative": -5,
        "nan": float("nan"),
        "set": {1, 2},
        "pair": (torch.ones(2, dtype=torch.float64), "x"),
        "half": torch.arange(6, dtype=torch.float16).reshape(2, 3),
    }, path)
    return 0


def write_new_dtypes(path):
    g = torch.Generator().manual_seed(3)
    f8 = torch.randn(24, generator=g).to(torch.float8_e5m2)
    torch.save({
        "u16": torch.randint(0, 65535, (3, 4), generator=g).to(torch.uint16),
        "u32": torch.randint(0, 2**31 - 1, (5,), generator=g).to(torch.uint32),
        "u64": torch.randint(0, 2**62, (2, 2), generator=g).to(torch.uint64),
        "f8": {
            "e4m3fn": torch.randn(4, 3, generator=g).to(torch.float8_e4m3fn),
            "e5m2_view": f8[3::4],
            "e4m3fnuz": torch.randn(7, generator=g).to(torch.float8_e4m3fnuz),
            "e5m2fnuz": torch.randn(2, 3, generator=g).to(torch.float8_e5m2fnuz).t(),
        },
        "plain": torch.arange(4, dtype=torch.int32),
    }, path)
    return 0


def as_bytes(tensor):
    """The tensor's elements as raw bytes (bitwise comparison, NaNs included)."""
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def same(x, y, path, problems):
    if isinstance(x, dict):
        if not isinstance(y, dict):
            problems.append("%s: %s became %s" % (path, type(x).__name__, type(y).__name__))
            return
        x = {str(k): v for k, v in x.items()}
        if list(x) != list(y):
            problems.append("%s: keys %s became %s" % (path, list(x), list(y)))
            return
        for k in x:
            same(x[k], y[k], path + "." + k, problems)
    elif isinstance(x, torch.Tensor):
        if not (isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape and
                torch.equal(as_bytes(x), as_bytes(y))):
            problems.append("%s: tensor differs" % path)
    elif isinstance(x, (list, tuple)) and any(isinstance(i, (torch.Tensor, dict)) for i in x):
        if type(x) != type(y) or len(x) != len(y):
            problems.append("%s: %r became %r" % (path, x, y))
            return
        for i, (u, v) in enumerate(zip(x, y)):
            same(u, v, "%s.%d" % (path, i), problems)
    elif repr(x) != repr(y) or type(x) != type(y):
        problems.append("%s: %r became %r" % (path, x, y))


def main(argv):
    if len(argv) == 3 and argv[1] == "--write-sample":
        return write_sample(argv[2])
    if len(argv) == 3 and argv[1] == "--write-new-dtypes":
        return write_new_dtypes(argv[2])
    if argv[1:2] == ["--compare"] and len(argv) in (4, 5) and (len(argv) == 4 or argv[2] == "--weights-only"):
        weights_only = len(argv) == 5
        problems = []
        same(torch.load(argv[-2], weights_only=weights_only), torch.load(argv[-1], weights_only=weights_only), "",
             problems)
        for problem in problems:
            sys.stderr.write(problem + "\n")
        return 1 if problems else 0
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    state = torch.load(argv[1], weights_only=False)
    if not isinstance(state, dict):
        sys.stderr.write("the file holds a %s, not a dict\n" % type(state).__name__)
        return 1
    values, containers = [], []
    flatten(state, [], values, containers)
    for line in values + containers:
        print(line)
    if len(argv) == 3:
        with open(argv[2]) as f:
            expected = set(line for line in f.read().splitlines() if line)
        got = set(values)
        for line in sorted(expected - got):
            sys.stderr.write("missing: %s\n" % line)
        for line in sorted(got - expected):
            sys.stderr.write("unexpected: %s\n" % line)
        if expected != got or len(values) != len(got):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
