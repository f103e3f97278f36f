"""Plan parity: PyTorch 2.13's default planners against `dcplan plan`.

usage: plan_parity_test.py INTEROP_HELPER DCPLAN   (run with the venv's Python)

Generated scenarios (fixed seed) are written in the JSON scenario format of
spec/plan-json.md. PyTorch's planner functions (dedup_save_plans,
create_default_global_save_plan, _validate_global_plan,
create_read_items_for_chunk_list) plan the same scenario from Python, and the
results are compared:
  save: validity, the metadata (keys, dtypes, sizes, chunks in order), every
        rank's items after dedup with their index hints. Dedup ties differ on
        purpose (dcplan: lowest rank; PyTorch: Python set order), so owners
        are compared modulo that rule: an item may go to another rank than
        PyTorch's only where both ranks had the smallest running total, and
        dcplan's owner must then be the lowest such rank (a replay of the
        documented greedy over dcplan's own choices checks that).
  load: every rank's read items, as a set. Their order differs: PyTorch
        2.13 sweeps chunks sorted by their start on the widest dimension,
        dcplan lists them per requested chunk in metadata order (both are
        valid; the reader does not depend on the order).
"""

import json
import os
import random
import sys
import tempfile

import torch
from torch.distributed.checkpoint._dedup_save_plans import dedup_save_plans
from torch.distributed.checkpoint.default_planner import (_validate_global_plan, create_default_global_save_plan)
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, ChunkStorageMetadata, MetadataIndex,
                                                   TensorProperties)
from torch.distributed.checkpoint.planner import SavePlan, TensorWriteData, WriteItem, WriteItemType
from torch.distributed.checkpoint.planner_helpers import create_read_items_for_chunk_list

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_common as common  # noqa: E402

DCPLAN = sys.argv[2]
WORK = tempfile.mkdtemp(prefix="plan_parity_", dir=os.environ.get("TEST_TMPDIR"))
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int64, torch.int8, torch.bool, torch.float64]
SCENARIOS = 12


def grid_boxes(shape, parts_per_dim):
    """Every block of a grid split of `shape` (torch.chunk-like, possibly empty blocks)."""
    boxes = [([], [])]
    for extent, parts in zip(shape, parts_per_dim):
        boxes = [(o + [s], l + [n]) for o, l in boxes for s, n in common.even_chunks(extent, parts)]
    return boxes


def generate(rng, index):
    """One save scenario: per rank, a list of (fqn, type, dtype, size, offsets, lengths) items."""
    world = rng.choice([2, 3, 4, 5, 8, 12])
    ranks = [[] for _ in range(world)]
    for t in range(rng.randint(3, 8)):
        fqn, dtype = "m%d.t%d" % (index, t), rng.choice(DTYPES)
        kind = rng.choice(["fsdp", "grid", "hsdp", "whole", "bytes"])
        shape = [rng.randint(0 if rng.random() < 0.1 else 1, 9) for _ in range(rng.choice([1, 2, 2, 3]))]
        if kind == "bytes":
            for r in rng.sample(range(world), rng.randint(1, world)):
                ranks[r].append((fqn, "bytes", None, None, None, None))
        elif kind == "whole":
            shape = [] if rng.random() < 0.2 else shape
            for r in rng.sample(range(world), rng.randint(1, world)):
                ranks[r].append((fqn, "tensor", dtype, shape, [0] * len(shape), list(shape)))
        else:
            groups = 1 if kind != "hsdp" else rng.choice([2, world]) if world % 2 == 0 else 1
            per_group = world // groups
            parts = [per_group] + [1] * (len(shape) - 1)
            if kind == "grid" and len(shape) >= 2 and per_group % 2 == 0:
                parts = [per_group // 2, 2] + [1] * (len(shape) - 2)
            boxes = grid_boxes(shape, parts)
            for r in range(world):
                offsets, lengths = boxes[r % per_group]
                ranks[r].append((fqn, "shard", dtype, shape, offsets, lengths))
    if index == 0:  # a sure tie where Python's set order is not rank order: {12, 17} iterates 17 first
        ranks += [[] for _ in range(20 - len(ranks))]
        for r in (12, 17):
            ranks[r].append(("m0.tie", "bytes", None, None, None, None))
    if index % 4 == 3:  # an invalid one: a shard grows over its neighbour, or one goes missing
        r = rng.randrange(world)
        shards = [i for i, item in enumerate(ranks[r]) if item[1] == "shard" and item[3] and item[5][0] > 0]
        if shards:
            i = rng.choice(shards)
            fqn, kind, dtype, shape, offsets, lengths = ranks[r][i]
            if rng.random() < 0.5 and offsets[0] + lengths[0] < shape[0]:
                ranks[r][i] = (fqn, kind, dtype, shape, offsets, [lengths[0] + 1] + lengths[1:])
            else:
                del ranks[r][i]
    return ranks


def scenario_json(ranks):
    def item(fqn, kind, dtype, size, offsets, lengths):
        if kind == "bytes":
            return {"fqn": fqn, "type": "bytes"}
        out = {"fqn": fqn, "type": kind, "size": size, "dtype": common.dtype_name(dtype)}
        if kind == "shard":
            out.update(offsets=offsets, lengths=lengths)
        return out
    return {"kind": "save", "options": {"dedup": "pytorch", "rewrite_index_hints": True,
                                        "dedup_save_to_lowest_rank": False},
            "ranks": [{"rank": r, "items": [item(*i) for i in items]} for r, items in enumerate(ranks)]}


def write_item(fqn, kind, dtype, size, offsets, lengths):
    if kind == "bytes":
        return WriteItem(index=MetadataIndex(fqn), type=WriteItemType.BYTE_IO)
    return WriteItem(index=MetadataIndex(fqn, torch.Size(offsets)),
                     type=WriteItemType.SHARD if kind == "shard" else WriteItemType.TENSOR,
                     tensor_data=TensorWriteData(chunk=ChunkStorageMetadata(torch.Size(offsets), torch.Size(lengths)),
                                                 properties=TensorProperties(dtype=dtype), size=torch.Size(size)))


def dcplan_plan(scenario, name):
    path = os.path.join(WORK, name + ".json")
    with open(path, "w") as f:
        json.dump(scenario, f)
    proc = common.run([DCPLAN, "plan", path], "dcplan plan " + name, expect_rc=None)
    if proc.returncode not in (0, 1):
        common.fail("dcplan plan %s: exit %d\n%s" % (name, proc.returncode, proc.stdout))
    return json.loads(proc.stdout)


def item_key(item):
    """(fqn, offsets) of a plan item, from either side."""
    if isinstance(item, WriteItem):
        offset = item.index.offset
        return (item.index.fqn, None if offset is None else tuple(offset))
    return (item["fqn"], tuple(item["offsets"]) if "offsets" in item and item["offsets"] is not None else None)


def storage_size(item):
    """PyTorch's dedup weight: tensor storage bytes, or 1."""
    return item.tensor_storage_size() or 1


def check_owners(name, local_plans, theirs, ours):
    """Owners after dedup: equal, or a tie that dcplan broke to the lowest rank. Returns the tie count."""
    holders, first_item = {}, {}
    for rank, plan in enumerate(local_plans):
        for item in plan.items:
            holders.setdefault(item_key(item), []).append(rank)
            first_item.setdefault(item_key(item), item)
    owner_theirs = {item_key(i): r for r, p in enumerate(theirs) for i in p.items}
    owner_ours = {item_key(i): r for r, p in enumerate(ours) for i in p["items"]}
    if set(owner_ours) != set(holders):
        common.fail("%s: dcplan keeps items %s, expected %s" % (name, sorted(owner_ours), sorted(holders)))
    ties = sum(1 for key in holders if owner_theirs[key] != owner_ours[key])
    replay_greedy(name, "dcplan", holders, first_item, owner_ours, len(local_plans), lowest=True)
    replay_greedy(name, "PyTorch", holders, first_item, owner_theirs, len(local_plans), lowest=False)
    return ties


def replay_greedy(name, who, holders, first_item, owners, world, lowest):
    """Replays the greedy over `owners`: each item (first-seen order) must go to a holder with the
    smallest running total, and with `lowest` to the lowest such rank."""
    totals = [0] * world
    for key, ranks in holders.items():
        smallest = min(totals[r] for r in ranks)
        allowed = [r for r in ranks if totals[r] == smallest]
        if owners[key] not in (allowed[:1] if lowest else allowed):
            common.fail("%s: %s gives item %s to rank %d; the greedy allows %s" % (
                name, who, key, owners[key], allowed[:1] if lowest else allowed))
        totals[owners[key]] += storage_size(first_item[key])


def metadata_json(md):
    out = {}
    for fqn, value in md.state_dict_metadata.items():
        if isinstance(value, BytesStorageMetadata):
            out[fqn] = {"type": "bytes"}
        else:
            out[fqn] = {"type": "tensor", "dtype": common.dtype_name(value.properties.dtype),
                        "size": list(value.size),
                        "chunks": [{"offsets": list(c.offsets), "sizes": list(c.sizes)} for c in value.chunks]}
    return out


def compare_save(name, ranks):
    local_plans = [SavePlan([write_item(*i) for i in items]) for items in ranks]
    theirs_deduped = dedup_save_plans(local_plans, False)
    global_plan, md = create_default_global_save_plan(theirs_deduped, True)
    problems = _validate_global_plan(global_plan, md)
    ours = dcplan_plan(scenario_json(ranks), name)
    if ours["valid"] != (not problems):
        common.fail("%s: dcplan valid=%s, PyTorch problems %s; dcplan problems %s" % (
            name, ours["valid"], problems, ours["problems"]))
    if ours["metadata"] != metadata_json(md):
        common.fail("%s: metadata differs:\n dcplan  %s\n PyTorch %s" % (name, ours["metadata"], metadata_json(md)))
    ties = check_owners(name, local_plans, global_plan, ours["plans"])
    if ties == 0:
        for rank, (plan, our) in enumerate(zip(global_plan, ours["plans"])):
            want = [(i.index.fqn, i.index.index, item_key(i)[1]) for i in plan.items]
            got = [(i["fqn"], i["index"], item_key(i)[1]) for i in our["items"]]
            if want != got:
                common.fail("%s, rank %d: items (fqn, index hint, offsets) %s, PyTorch %s" % (name, rank, got, want))
    return md, ties


def load_requests(rng, md, world):
    """Per rank: (fqn, kind, size, offsets, lengths) requests; tensors split on a random dim."""
    ranks = [[] for _ in range(world)]
    for fqn, value in md.state_dict_metadata.items():
        if isinstance(value, BytesStorageMetadata):
            for r in range(world):
                ranks[r].append((fqn, "bytes", None, None, None))
            continue
        size = list(value.size)
        if not size or rng.random() < 0.2:
            for r in range(world):
                ranks[r].append((fqn, "tensor", size, [0] * len(size), size))
            continue
        dim = rng.randrange(len(size))
        for r, (start, length) in enumerate(common.even_chunks(size[dim], world)):
            offsets, lengths = [0] * len(size), list(size)
            offsets[dim], lengths[dim] = start, length
            ranks[r].append((fqn, "shard", size, offsets, lengths))
    return ranks


def read_item_key(fqn_dest, d_off, d_idx, dest_offsets, fqn_storage, s_off, s_idx, storage_offsets, lengths):
    return (fqn_dest, d_off, d_idx, tuple(dest_offsets), fqn_storage, s_off, s_idx, tuple(storage_offsets),
            tuple(lengths))


def compare_load(name, rng, md):
    world = rng.choice([1, 2, 3, 5])
    ranks = load_requests(rng, md, world)
    scenario = {"kind": "load", "options": {"strict": True}, "metadata": metadata_json(md), "ranks": [
        {"rank": r, "items": [dict({"fqn": f, "type": k}, **({} if k == "bytes" else {"size": s}),
                                   **({"offsets": o, "lengths": l} if k == "shard" else {}))
                              for f, k, s, o, l in items]} for r, items in enumerate(ranks)]}
    ours = dcplan_plan(scenario, name + "_load")
    if ours["errors"]:
        common.fail("%s load: dcplan errors %s" % (name, ours["errors"]))
    reads = 0
    for rank, items in enumerate(ranks):
        want = set()
        for fqn, kind, size, offsets, lengths in items:
            if kind == "bytes":
                want.add((fqn, None, None, (), fqn, None, None, (), ()))
                continue
            chunk = ChunkStorageMetadata(torch.Size(offsets), torch.Size(lengths))
            for ri in create_read_items_for_chunk_list(fqn, md.state_dict_metadata[fqn], [chunk]):
                want.add(read_item_key(ri.dest_index.fqn, tuple(ri.dest_index.offset), ri.dest_index.index,
                                       ri.dest_offsets, ri.storage_index.fqn, tuple(ri.storage_index.offset),
                                       ri.storage_index.index, ri.storage_offsets, ri.lengths))
        got = set()
        for i in ours["plans"][rank]["items"]:
            d, s = i["dest"], i["storage"]
            if i["type"] == "bytes":
                got.add((d["fqn"], None, None, (), s["fqn"], None, None, (), ()))
            else:
                got.add(read_item_key(d["fqn"], tuple(d["offsets"]), d["index"], i["dest_offsets"], s["fqn"],
                                      tuple(s["offsets"]), s["index"], i["storage_offsets"], i["lengths"]))
        if got != want:
            common.fail("%s load, rank %d of %d: read items only dcplan plans %s; only PyTorch plans %s" % (
                name, rank, world, sorted(got - want, key=str), sorted(want - got, key=str)))
        reads += len(got)
    return reads


def parity():
    rng = random.Random(20261203)
    invalid = ties = reads = 0
    for index in range(SCENARIOS):
        name = "scenario%d" % index
        ranks = generate(rng, index)
        md, t = compare_save(name, ranks)
        ties += t
        valid = not _validate_global_plan(*create_default_global_save_plan(dedup_save_plans(
            [SavePlan([write_item(*i) for i in items]) for items in ranks], False), True))
        if valid:
            reads += compare_load(name, rng, md)
        else:
            invalid += 1
    if invalid == 0 or ties == 0:
        common.fail("%d invalid scenarios, %d ties: validity or the tie rule is not exercised" % (invalid, ties))
    return "%d save scenarios (%d invalid), %d dedup ties broken differently (documented), %d read items" % (
        SCENARIOS, invalid, ties, reads)


if __name__ == "__main__":
    sys.exit(common.main_wrapper([("PyTorch 2.13 planners vs dcplan plan", parity)]))
