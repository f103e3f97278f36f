"""PyTorch 2.13 writes, dcplan reads.

usage: pytorch_writes_test.py INTEROP_HELPER DCPLAN   (run with the venv's Python)

Cases: dcp.save in one process; dcp.save from 4 gloo ranks of DTensors on CPU
device meshes (interop_worker.py); the dtypes PyTorch 2.x added; the format
records 2.13 writes; the zstd stream transform. Each checkpoint is loaded by
dcplan (interop_helper, in-process ranks) onto other shardings and compared
bitwise with the reference, and checked with `dcplan verify`.
"""

import io
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
import zipfile

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint._extension import ZStandard

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402

HELPER, DCPLAN = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="pytorch_writes_", dir=os.environ.get("TEST_TMPDIR"))
LISTS = ["optim.param_groups"]


def split_state(flat):
    tensors = {k: v for k, v in flat.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in flat.items() if not isinstance(v, torch.Tensor)}
    return tensors, values


def load_with_dcplan(directory, flat, world_size, shards_of, name):
    """dcplan loads `directory` on `world_size` ranks with the sharding shards_of gives; compares."""
    tensors, values = split_state(flat)
    case = os.path.join(WORK, name)
    os.makedirs(case)
    spec_path = os.path.join(case, "spec.json")
    spec = common.write_spec(spec_path, case, world_size, tensors, values, shards_of, LISTS)
    out = os.path.join(case, "out")
    os.makedirs(out)
    common.run([HELPER, "load", spec_path, directory, out], "dcplan load of %s on %d ranks" % (name, world_size))
    return common.check_helper_output(spec, out, tensors | values)


def last_dim_shards(world_size):
    def shards_of(fqn, tensor):
        return common.shard_on_dim(list(tensor.shape), world_size, max(tensor.dim() - 1, 0))
    return shards_of


def whole_on_every_rank(world_size):
    def shards_of(fqn, tensor):
        return [[[[0] * tensor.dim(), list(tensor.shape)]] for _ in range(world_size)]
    return shards_of


def verify(directory, what):
    proc = common.run([DCPLAN, "verify", directory], "dcplan verify of " + what)
    return proc.stdout.strip().splitlines()[-1]


def check_reference_checkpoint(directory, name):
    flat = common.flatten(common.reference_state())
    n = load_with_dcplan(directory, flat, 3, last_dim_shards(3), name + "_3ranks")
    n += load_with_dcplan(directory, flat, 2, whole_on_every_rank(2), name + "_whole")
    return "%d shards/values bitwise on 3 ranks (last-dim shards) and 2 ranks (whole); %s" % (
        n, verify(directory, name))


def single_process():
    directory = os.path.join(WORK, "single")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save(common.reference_state(), checkpoint_id=directory)
    return check_reference_checkpoint(directory, "single")


def four_ranks_dtensor():
    directory = os.path.join(WORK, "dtensor4")
    common.launch_ranks(4, ["save", directory], "dcp.save of DTensors")
    files = sorted(f for f in os.listdir(directory) if f.endswith(".distcp"))
    if files != ["__%d_0.distcp" % r for r in range(4)]:
        common.fail("expected one data file per rank, found %s" % files)
    return check_reference_checkpoint(directory, "dtensor4")


def helper_dtypes():
    return set(json.loads(common.run([HELPER, "dtypes"], "interop_helper dtypes").stdout))


def new_dtypes():
    directory = os.path.join(WORK, "new_dtypes")
    state = common.new_dtype_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=directory)
    supported = helper_dtypes()
    missing = sorted(common.dtype_name(t.dtype) for t in state.values()
                     if common.dtype_name(t.dtype) not in supported)
    if not missing:
        # torch.save writes these with torch._utils._rebuild_tensor_v3, which
        # LibTorch's C++ unpickler does not know: dcplan's own restricted
        # unpickler reads them. Unsharded (1 process) and Shard(0) DTensors
        # from 4 gloo ranks, each loaded onto other shardings, bitwise.
        n = load_with_dcplan(directory, state, 3, last_dim_shards(3), "new_dtypes_3ranks")
        n += load_with_dcplan(directory, state, 2, whole_on_every_rank(2), "new_dtypes_whole")
        sharded = os.path.join(WORK, "new_dtypes_dtensor4")
        common.launch_ranks(4, ["save_new_dtypes", sharded], "dcp.save of 2.x-dtype DTensors")
        n += load_with_dcplan(sharded, state, 3, last_dim_shards(3), "new_dtypes_dtensor4_3ranks")
        n += load_with_dcplan(sharded, state, 1, whole_on_every_rank(1), "new_dtypes_dtensor4_whole")
        return "%d shards of %s bitwise (1-process and 4-rank DTensor checkpoints); %s; %s" % (
            n, ", ".join(sorted(common.dtype_name(t.dtype) for t in state.values())),
            verify(directory, "new dtypes"), verify(sharded, "new dtypes from 4 ranks"))
    # This LibTorch lacks them: verify must refuse each one by name, and say why.
    proc = common.run([DCPLAN, "verify", directory], "dcplan verify of new dtypes", expect_rc=1)
    for name in missing:
        if not re.search(r"'[^']*' chunk \[[^\]]*\]: dtype %s is not supported by this LibTorch" % name, proc.stdout):
            common.fail("dcplan verify does not name dtype %s as unsupported:\n%s" % (name, proc.stdout))
    return "this LibTorch lacks %s: dcplan verify refuses each by key and dtype" % ", ".join(missing)


def format_records():
    """The records 2.13 writes are really there (so the cases above read them), and inspect shows them."""
    directory = os.path.join(WORK, "single")
    md = dcp.FileSystemReader(directory).read_metadata()
    if md.version != "1.0.0" or md.storage_meta is None:
        common.fail("PyTorch 2.13 wrote version %r, storage_meta %r" % (md.version, md.storage_meta))
    records = set()
    for index, info in md.storage_data.items():
        with open(os.path.join(directory, info.relative_path), "rb") as f:
            f.seek(info.offset)
            names = zipfile.ZipFile(io.BytesIO(f.read(info.length))).namelist()
        records |= {n.split("/", 1)[1] for n in names if not n.split("/", 1)[1].startswith("data/")}
    wanted = {"data.pkl", "byteorder", ".format_version", ".storage_alignment", ".data/serialization_id", "version"}
    if not wanted <= records:
        common.fail("PyTorch 2.13's items lack records %s (have %s)" % (sorted(wanted - records), sorted(records)))
    out = common.run([DCPLAN, "inspect", directory], "dcplan inspect").stdout
    if "version: 1.0.0" not in out or "checkpoint_id=" + directory not in out:
        common.fail("dcplan inspect does not show version 1.0.0 and the checkpoint_id:\n" + out)
    return "metadata version 1.0.0 + storage_meta; item records %s" % ", ".join(sorted(records))


def zstd_transform():
    directory = os.path.join(WORK, "zstd")
    writer = dcp.FileSystemWriter(directory, _extensions=[ZStandard()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(common.reference_state(), storage_writer=writer)
    md = dcp.FileSystemReader(directory).read_metadata()
    descriptors = {tuple(i.transform_descriptors or ()) for i in md.storage_data.values()}
    if descriptors != {("stream.zstd/1",)}:
        common.fail("expected every item to carry stream.zstd/1, found %s" % descriptors)
    read = check_reference_checkpoint(directory, "zstd")
    # A transform dcplan does not know is refused by name, by verify and by load.
    unknown = os.path.join(WORK, "unknown_transform")
    shutil.copytree(directory, unknown)
    for info in md.storage_data.values():
        info.transform_descriptors = ["stream.lz4/1"]
    with open(os.path.join(unknown, ".metadata"), "wb") as f:
        pickle.dump(md, f)
    proc = common.run([DCPLAN, "verify", unknown], "dcplan verify of an unknown transform", expect_rc=1)
    if not re.search(r"__0_0\.distcp @\d+ \+\d+ '[^']+' .*stream transforms \[stream\.lz4/1\]: stream transform "
                     r"'stream\.lz4/1' is not supported", proc.stdout):
        common.fail("dcplan verify does not name the unknown transform:\n" + proc.stdout)
    spec_path = os.path.join(WORK, "unknown_spec.json")
    tensors, values = split_state(common.flatten(common.reference_state()))
    common.write_spec(spec_path, WORK, 2, tensors, values, last_dim_shards(2), LISTS)
    load = common.run([HELPER, "load", spec_path, unknown, os.path.join(WORK, "unknown_out")],
                      "dcplan load of an unknown transform", expect_rc=1)
    if not re.search(r"rank \d+: .* at __0_0\.distcp offset \d+ length \d+ \(stream transforms \[stream\.lz4/1\]\): "
                     r"stream transform 'stream\.lz4/1' is not supported", load.stdout):
        common.fail("dcplan load does not name the unknown transform:\n" + load.stdout)
    return "read: %s; an unknown transform is refused by name" % read


if __name__ == "__main__":
    sys.exit(common.main_wrapper([
        ("PyTorch dcp.save, 1 process -> dcplan load + verify", single_process),
        ("PyTorch 2.13 format records", format_records),
        ("PyTorch dcp.save, 4 gloo ranks, DTensor 1-D/2-D meshes -> dcplan load + verify", four_ranks_dtensor),
        ("PyTorch 2.x dtypes (uint16/32/64, float8) -> dcplan load + verify", new_dtypes),
        ("zstd stream transform", zstd_transform),
    ]))
