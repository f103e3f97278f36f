#!/bin/bash
# Builds and tests this consumer workspace against the dcplan checkout two
# directories up. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")"
bazel test //...
bazel run //:checkpoint_roundtrip
