#!/usr/bin/env bash
# Runs the built `dcplan demo --procs` (one process per rank over c10d):
# a save on 3 processes loaded resharded on 2, a save refused on every rank,
# the default load world size, and a usage error. Usage: demo_procs_test.sh PATH_TO_DCPLAN
set -u
# The demo keeps a failed run's rank logs in a temporary directory.
export TMPDIR="$TEST_TMPDIR"

dcplan="$1"
dir="$TEST_TMPDIR/ck"
out="$TEST_TMPDIR/out"
err="$TEST_TMPDIR/err"
failures=0

source tools/dcplan/test_lib.sh

# 3 save ranks write __0_0 .. __2_0; 2 load ranks read them resharded.
"$dcplan" demo --procs 3 --load-procs 2 --scale 1 --timeout 60 --dir "$dir" >"$out" 2>"$err"
status=$?
[[ $status == 0 ]] || fail "demo --procs 3 --load-procs 2 exited $status"
expect_in "$out" "save: 3 processes"
expect_in "$out" "load: 2 processes, resharded"
expect_in "$out" "loaded and verified"
expect_in "$err" "save: 3/3 ranks done"
expect_in "$err" "load: 2/2 ranks done"
for file in .metadata __0_0.distcp __1_0.distcp __2_0.distcp; do
  [[ -s "$dir/$file" ]] || fail "missing $file"
done
[[ ! -e "$dir/__3_0.distcp" ]] || fail "a fourth data file appeared"

# The directory holds a checkpoint: every save rank refuses, each is reported
# with its output, and nothing is loaded.
"$dcplan" demo --procs 2 --scale 1 --timeout 60 --dir "$dir" >"$out" 2>"$err"
status=$?
[[ $status == 1 ]] || fail "save into a full directory exited $status, want 1"
expect_in "$err" "save rank 0 of 2 failed: process"
expect_in "$err" "save rank 1 of 2 failed: process"
expect_in "$err" "exited with code 1"
expect_in "$err" "already holds a checkpoint"
grep -qF "load:" "$out" && fail "a load ran after a failed save"

# --overwrite replaces it (FileSystemWriter leaves unrelated files alone); without --load-procs, 2 save ranks load on 1.
# --async: AsyncSave over a second c10d group while the ranks overwrite their
# tensors; the load checks the snapshot bitwise and verify accepts it.
"$dcplan" demo --procs 2 --scale 1 --timeout 60 --overwrite --async --dir "$dir" >"$out" 2>"$err"
status=$?
[[ $status == 0 ]] || fail "demo --procs 2 --overwrite --async exited $status"
expect_in "$out" "every rank saved with AsyncSave"
expect_in "$out" "load: 1 processes, resharded"
expect_in "$err" "load: 1/1 ranks done"
"$dcplan" verify "$dir" >"$out" 2>"$err"
status=$?
[[ $status == 0 ]] || fail "verify of the async checkpoint exited $status"

"$dcplan" demo --load-procs 2 >"$out" 2>"$err"
status=$?
[[ $status == 2 ]] || fail "--load-procs without --procs exited $status, want 2"
expect_in "$err" "--load-procs needs --procs"

if [[ $failures != 0 ]]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "PASS"
