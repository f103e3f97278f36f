#!/bin/bash
# Runs the consumer program and checks that it reports the round trip.
set -euo pipefail
output="$(./checkpoint_roundtrip)"
echo "${output}"
grep -q '^consumer: saved and loaded 3 tensors$' <<<"${output}"
