"""One PyTorch rank of an interop case (started by interop_common.launch_ranks).

usage: interop_worker.py save DIR           DTensor-shard the reference state and dcp.save it
       interop_worker.py save_new_dtypes DIR   dcp.save the 2.x-dtype state as Shard(0) DTensors
       interop_worker.py load DIR [zstd]    dcp.load DIR into DTensor-sharded zero state, compare

RANK, WORLD_SIZE and DCPLAN_STORE (a FileStore path) come from the environment.
Placements, by world size (FSDP2 / TP style on a CPU DeviceMesh):
  save, 4 ranks: 1-D mesh (4): Shard(0), Shard(1), Replicate; 2-D mesh (2, 2):
                 Shard(0)xShard(1), Shard(1)xShard(0), Replicate()xShard(1)
  load, N ranks: 2-D tensors Shard(1) (4 ranks: (2, 2) Shard(1)xShard(0)),
                 1-D Shard(0), 0-dim tensors plain
Every mismatch is reported with its rank and fqn.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402

SAVE_PLACEMENTS = {
    "model.embed.weight": ("1d", [Shard(0)]),
    "model.layers.0.attn.w": ("2d", [Shard(0), Shard(1)]),
    "model.layers.0.attn.b": ("1d", [Replicate()]),
    "model.layers.0.mlp.w": ("2d", [Replicate(), Shard(1)]),
    "model.counts": ("1d", [Shard(1)]),
    "model.mask": ("1d", [Shard(0)]),
    "model.bytes8": ("2d", [Shard(1), Shard(0)]),
    "optim.state.model.embed.weight.exp_avg": ("1d", [Shard(0)]),
    "optim.state.model.embed.weight.exp_avg_sq": ("2d", [Shard(0), Shard(1)]),
}


def load_placement(tensor, world_size):
    if tensor.dim() == 0:
        return None
    if tensor.dim() == 2 and world_size == 4:
        return ("2d", [Shard(1), Shard(0)])
    return ("1d", [Shard(tensor.dim() - 1)])


def meshes(world_size):
    out = {"1d": init_device_mesh("cpu", (world_size,))}
    if world_size == 4:
        out["2d"] = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    return out


def map_tree(tree, fn, prefix=""):
    """Rebuilds a nested state dict, applying fn(fqn, leaf) to tensors and values alike."""
    if isinstance(tree, dict):
        return {k: map_tree(v, fn, prefix + "." + k if prefix else k) for k, v in tree.items()}
    if isinstance(tree, list) and any(isinstance(v, (dict, torch.Tensor)) for v in tree):
        return [map_tree(v, fn, "%s.%d" % (prefix, i)) for i, v in enumerate(tree)]
    return fn(prefix, tree)


def save(directory):
    world_size = dist.get_world_size()
    mesh = meshes(world_size)

    def shard(fqn, value):
        if isinstance(value, torch.Tensor) and fqn in SAVE_PLACEMENTS:
            name, placements = SAVE_PLACEMENTS[fqn]
            return distribute_tensor(value, mesh[name], placements)
        return value

    dcp.save(map_tree(common.reference_state(), shard), checkpoint_id=directory)


def save_new_dtypes(directory):
    """Each rank builds its Shard(0) piece itself: gloo has no collectives for uint16/32/64 or float8."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world_size,))
    state = {fqn: DTensor.from_local(common.dim0_shard(t, rank, world_size).contiguous(), mesh, [Shard(0)],
                                     run_check=False, shape=t.shape, stride=t.contiguous().stride())
             for fqn, t in common.new_dtype_state().items()}
    dcp.save(state, checkpoint_id=directory)


def load(directory, *_):
    rank, world_size = dist.get_rank(), dist.get_world_size()
    mesh = meshes(world_size)
    reference = common.flatten(common.reference_state())
    expected = {}

    def destination(fqn, value):
        if not isinstance(value, torch.Tensor):
            return None  # replaced by the loaded value
        placement = load_placement(value, world_size)
        if placement is None:
            expected[fqn] = value
            return torch.full_like(value, 0) if value.dtype == torch.bool else torch.full_like(value, 77)
        name, placements = placement
        full = distribute_tensor(value, mesh[name], placements)
        expected[fqn] = full.to_local().clone()
        return DTensor.from_local(torch.zeros_like(full.to_local()), mesh[name], placements,
                                  shape=full.shape, stride=full.stride())

    state = map_tree(common.reference_state(), destination)
    dcp.load(state, checkpoint_id=directory)
    loaded = common.flatten(state)
    for fqn, want in expected.items():
        got = loaded[fqn]
        got = got.to_local() if isinstance(got, DTensor) else got
        common.compare_bitwise("rank %d of %d, tensor %s" % (rank, world_size, fqn), want, got)
    for fqn, want in reference.items():
        if not isinstance(want, torch.Tensor) and common.plain(loaded.get(fqn)) != common.plain(want):
            common.fail("rank %d of %d, value %s: loaded %r, expected %r" % (rank, world_size, fqn, loaded.get(fqn),
                                                                             want))


def main(argv):
    dist.init_process_group("gloo", init_method="file://" + os.environ["DCPLAN_STORE"],
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    try:
        {"save": save, "save_new_dtypes": save_new_dtypes, "load": load}[argv[1]](*argv[2:])
    except common.Failure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
