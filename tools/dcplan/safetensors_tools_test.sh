#!/usr/bin/env bash
# The dcplan tool on Hugging Face safetensors directories: demo --format
# safetensors (threads and processes), inspect, verify (a sound checkpoint
# and damaged copies), and convert HF -> DCP -> HF byte-identical.
# Usage: safetensors_tools_test.sh PATH_TO_DCPLAN
set -u
export TMPDIR="$TEST_TMPDIR"

dcplan="$1"
hf="$TEST_TMPDIR/hf"
out="$TEST_TMPDIR/out"
err="$TEST_TMPDIR/err"
failures=0

source tools/dcplan/test_lib.sh
run() {  # EXPECTED_STATUS ARGS...
  local expected="$1"; shift
  "$dcplan" "$@" >"$out" 2>"$err"
  local status=$?
  [[ $status == "$expected" ]] || fail "dcplan $* exited $status, expected $expected"
}

# Threads: 4 ranks write the consolidated files, 3 ranks load them resharded.
run 0 demo --format safetensors --scale 1 --dir "$hf"
expect_in "$out" "loaded and verified"
expect_in "$out" "model.safetensors.index.json"
[[ -s "$hf/model-00001-of-00004.safetensors" || -s "$hf/model-00001-of-00005.safetensors" ]] ||
  fail "no multi-file checkpoint in $hf"
ls "$hf" | grep -q '\.tmp$' && fail "temporary files left in $hf"

# Processes over c10d.
run 0 demo --format safetensors --procs 3 --load-procs 2 --scale 1 --timeout 60 --dir "$TEST_TMPDIR/hf_procs"
expect_in "$out" "loaded and verified"
cmp -s "$hf/model.safetensors.index.json" "$TEST_TMPDIR/hf_procs/model.safetensors.index.json" ||
  fail "3 processes and 4 threads wrote different indexes"
for file in "$hf"/*.safetensors; do
  cmp -s "$file" "$TEST_TMPDIR/hf_procs/$(basename "$file")" || fail "$(basename "$file") differs between worlds"
done

run 0 verify "$hf"
expect_in "$out" "ok: safetensors checkpoint"
run 0 inspect "$hf" --json
expect_in "$out" '"format": "safetensors"'
expect_in "$out" '"dtype": "BF16"'

# HF -> DCP -> HF: the same bytes (the demo limits files to a quarter of the model).
run 0 convert "$hf" "$TEST_TMPDIR/dcp"
expect_in "$out" "to DCP checkpoint"
run 0 verify "$TEST_TMPDIR/dcp"
total=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metadata']['total_size'])" \
        "$hf/model.safetensors.index.json")
run 0 convert "$TEST_TMPDIR/dcp" "$TEST_TMPDIR/hf2" --to safetensors --max-shard-size $((total / 4))
for file in "$hf"/*; do
  cmp -s "$file" "$TEST_TMPDIR/hf2/$(basename "$file")" || fail "round trip changed $(basename "$file")"
done
run 2 convert "$TEST_TMPDIR/dcp" "$TEST_TMPDIR/hf2" --to safetensors
expect_in "$err" "already exists"
run 2 convert "$TEST_TMPDIR/dcp" "$TEST_TMPDIR/hf4" --to onnx
expect_in "$err" "unknown format"

# Damaged copies: verify names the file (and tensor) and exits 1.
damaged() {  # NAME
  rm -rf "$TEST_TMPDIR/$1"; cp -r "$hf" "$TEST_TMPDIR/$1"; echo "$TEST_TMPDIR/$1"
}
first=$(basename "$(ls "$hf"/*.safetensors | head -1)")
d=$(damaged long_header)
printf '\xff\xff\xff\x7f\x00\x00\x00\x00' | dd of="$d/$first" bs=1 count=8 conv=notrunc status=none
run 1 verify "$d"
expect_in "$out" "$first"
expect_in "$out" "exceeds the limit"
d=$(damaged truncated)
truncate -s -4 "$d/$first"
run 1 verify "$d"
expect_in "$out" "past the end of the data"
d=$(damaged missing)
rm "$d/$first"
run 1 verify "$d"
expect_in "$out" "'$first', which does not exist"
d=$(damaged total_size)
sed -i "s/\"total_size\": $total/\"total_size\": 12/" "$d/model.safetensors.index.json"
run 1 verify "$d"
expect_in "$out" "total_size is 12"
run 1 convert "$d/../missing" "$TEST_TMPDIR/dcp_missing"
expect_in "$err" "does not exist"

if ((failures)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all safetensors tool checks passed"
