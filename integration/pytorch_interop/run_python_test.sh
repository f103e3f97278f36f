#!/bin/sh
# usage: run_python_test.sh PYTHON HELPER DCPLAN SCRIPT
# Runs a driver script with the venv's Python (tools/setup makes it; see
# third_party/venv.bzl), passing it the helper and the dcplan tool.
python="$1" helper="$2" dcplan="$3" script="$4"
exec "$python" "$script" "$helper" "$dcplan"
