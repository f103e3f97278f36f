"""Checks that Python torch loads dcplan's tensor records.

Usage: check_tensor_record.py DIR
DIR holds pairs NAME.pt (a record written by dcplan) and NAME.expect (a line
"dtype shape..." followed by the values, one per line, as Python literals).
Each record must load with torch.load(weights_only=True) -- the mode PyTorch's
DCP reader uses for tensor items -- and hold exactly the expected values.
"""
import ast
import os
import sys

import torch


def main(directory):
    names = sorted(n[:-3] for n in os.listdir(directory) if n.endswith(".pt"))
    if not names:
        print("no records in", directory)
        return 1
    failures = 0
    for name in names:
        with open(os.path.join(directory, name + ".expect")) as f:
            header, *values = f.read().splitlines()
        dtype, *shape = header.split()
        t = torch.load(os.path.join(directory, name + ".pt"), weights_only=True)
        got_shape = [int(s) for s in shape]
        problems = []
        if str(t.dtype) != "torch." + dtype:
            problems.append("dtype %s, expected %s" % (t.dtype, dtype))
        if list(t.shape) != got_shape:
            problems.append("shape %s, expected %s" % (list(t.shape), got_shape))
        flat = t.reshape(-1).tolist()
        expected = [ast.literal_eval(v) for v in values]
        if flat != expected:
            problems.append("values %s, expected %s" % (flat[:8], expected[:8]))
        if problems:
            failures += 1
            print("FAIL", name, "; ".join(problems))
        else:
            print("ok", name)
    print("%d passed, %d failed" % (len(names) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
