"""dcplan writes, PyTorch 2.13 reads.

usage: dcplan_writes_test.py INTEROP_HELPER DCPLAN   (run with the venv's Python)

dcplan saves the reference state from 4 in-process ranks (2-D blocks, dim-0
shards, replicated tensors deduplicated, non-tensor values); PyTorch's
dcp.load reads it into DTensor-sharded state dicts on 1, 3 and 4 gloo ranks
(interop_worker.py), bitwise; format_utils.dcp_to_torch_save of it equals
`dcplan convert`'s output, both loaded with torch.load, and the reference.
The dtypes PyTorch 2.x added (uint16/32/64, float8), saved by dcplan from 4
ranks, load bitwise with dcp.load and convert like dcp_to_torch_save.
"""

import json
import os
import sys
import tempfile
import warnings

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402

HELPER, DCPLAN = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="dcplan_writes_", dir=os.environ.get("TEST_TMPDIR"))
CHECKPOINT = os.path.join(WORK, "ckpt")
SAVE_WORLD = 4


def save_shards(fqn, tensor):
    """2-D: 2x2 blocks; 1-D: dim-0 shards; the bias and 0-dim tensors: replicated on every rank."""
    if tensor.dim() == 0 or fqn.endswith("attn.b"):
        return "whole"
    if tensor.dim() == 1:
        return common.shard_on_dim(list(tensor.shape), SAVE_WORLD, 0)
    rows = common.even_chunks(tensor.shape[0], 2)
    cols = common.even_chunks(tensor.shape[1], 2)
    return [[[[rows[r // 2][0], cols[r % 2][0]], [rows[r // 2][1], cols[r % 2][1]]]] for r in range(SAVE_WORLD)]


def dcplan_save():
    flat = common.flatten(common.reference_state())
    tensors = {k: v for k, v in flat.items() if isinstance(v, torch.Tensor)}
    values = {k: v for k, v in flat.items() if not isinstance(v, torch.Tensor)}
    spec_path = os.path.join(WORK, "spec.json")
    common.write_spec(spec_path, WORK, SAVE_WORLD, tensors, values, save_shards, ["optim.param_groups"])
    common.run([HELPER, "save", spec_path, CHECKPOINT], "dcplan save on %d ranks" % SAVE_WORLD)
    files = sorted(f for f in os.listdir(CHECKPOINT) if f.endswith(".distcp"))
    return "%d tensors, %d values; files %s" % (len(tensors), len(values), " ".join(files))


def pytorch_load(world_size):
    def case():
        common.launch_ranks(world_size, ["load", CHECKPOINT], "dcp.load into DTensors")
        return "every rank's local shards and values bitwise"
    return case


def compare_trees(what, expected, actual):
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            common.fail("%s: a tensor was expected, found %r" % (what, type(actual)))
        common.compare_bitwise(what, expected, actual)
    elif isinstance(expected, dict):
        if not isinstance(actual, dict) or set(expected) != set(actual):
            common.fail("%s: keys %s, expected %s" % (what, sorted(actual) if isinstance(actual, dict) else actual,
                                                    sorted(expected)))
        for key in expected:
            compare_trees("%s.%s" % (what, key), expected[key], actual[key])
    elif isinstance(expected, (list, tuple)) and any(isinstance(v, (dict, torch.Tensor)) for v in expected):
        if len(expected) != len(actual):
            common.fail("%s: %d items, expected %d" % (what, len(actual), len(expected)))
        for i, (e, a) in enumerate(zip(expected, actual)):
            compare_trees("%s.%d" % (what, i), e, a)
    elif common.plain(expected) != common.plain(actual):
        common.fail("%s: %r, expected %r" % (what, actual, expected))


def convert_like_dcp_to_torch_save(checkpoint, directory, weights_only):
    """`dcplan convert` of `checkpoint` must load (torch.load) equal to dcp_to_torch_save's; returns that."""
    theirs, ours = os.path.join(directory, "dcp_to_torch_save.pt"), os.path.join(directory, "dcplan_convert.pt")
    dcp_to_torch_save(checkpoint, theirs)
    common.run([DCPLAN, "convert", checkpoint, ours], "dcplan convert of " + checkpoint)
    converted = torch.load(theirs, weights_only=weights_only)
    compare_trees("dcplan convert vs dcp_to_torch_save", converted, torch.load(ours, weights_only=weights_only))
    return converted


def torch_save_parity():
    converted = convert_like_dcp_to_torch_save(CHECKPOINT, WORK, weights_only=False)
    compare_trees("dcp_to_torch_save vs the reference", common.flatten(common.reference_state()),
                  common.flatten(converted))
    return "equal, and equal to the reference state"


def new_dtypes():
    state = common.new_dtype_state()
    case = os.path.join(WORK, "new_dtypes")
    os.makedirs(case)
    checkpoint = os.path.join(case, "ckpt")
    spec_path = os.path.join(case, "spec.json")
    common.write_spec(spec_path, case, SAVE_WORLD, state, {},
                      lambda fqn, t: common.shard_on_dim(list(t.shape), SAVE_WORLD, 0))
    names = sorted(common.dtype_name(t.dtype) for t in state.values())
    supported = set(json.loads(common.run([HELPER, "dtypes"], "interop_helper dtypes").stdout))
    missing = [n for n in names if n not in supported]
    if missing:
        # LibTorch 1.13: the helper cannot even hold such tensors; it says which.
        proc = common.run([HELPER, "save", spec_path, checkpoint], "dcplan save of the 2.x dtypes", expect_rc=1)
        if "dtype %s" % missing[0] not in proc.stdout:
            common.fail("the refusal does not name dtype %s:\n%s" % (missing[0], proc.stdout))
        return "this LibTorch lacks %s: refused by name" % ", ".join(missing)
    common.run([HELPER, "save", spec_path, checkpoint], "dcplan save of the 2.x dtypes on %d ranks" % SAVE_WORLD)
    loaded = {fqn: torch.empty_like(t) for fqn, t in state.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process"
        dcp.load(loaded, checkpoint_id=checkpoint)
    for fqn, want in state.items():
        common.compare_bitwise("dcp.load of %s" % fqn, want, loaded[fqn])
    converted = convert_like_dcp_to_torch_save(checkpoint, case, weights_only=True)
    compare_trees("the converted 2.x dtypes vs the saved state", state, converted)
    return "%s: dcp.load bitwise; dcplan convert == dcp_to_torch_save under torch.load(weights_only=True)" % (
        ", ".join(names))


if __name__ == "__main__":
    sys.exit(common.main_wrapper([
        ("dcplan saves on 4 ranks", dcplan_save),
        ("PyTorch dcp.load, 1 rank, DTensor", pytorch_load(1)),
        ("PyTorch dcp.load, 3 gloo ranks, DTensor", pytorch_load(3)),
        ("PyTorch dcp.load, 4 gloo ranks, DTensor 1-D and 2-D meshes", pytorch_load(4)),
        ("format_utils.dcp_to_torch_save == dcplan convert", torch_save_parity),
        ("dcplan saves the 2.x dtypes on 4 ranks -> dcp.load, convert", new_dtypes),
    ]))
