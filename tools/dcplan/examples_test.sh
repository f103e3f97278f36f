#!/usr/bin/env bash
# Runs the built `dcplan plan` on every example scenario and checks its exit
# status: 0 for a valid plan or an error-free load, 1 for an invalid plan, 2
# for a usage error. Usage: examples_test.sh PATH_TO_DCPLAN
set -u

dcplan="$1"
examples="tools/examples"
failures=0

expect_status() {
  local file="$1" want="$2"
  "$dcplan" plan "$examples/$file" >"$TEST_TMPDIR/out" 2>"$TEST_TMPDIR/err"
  local got=$?
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: dcplan plan $file exited $got, want $want; stderr:" >&2
    cat "$TEST_TMPDIR/err" >&2
    failures=$((failures + 1))
    return
  fi
  # Statuses 0 and 1 print the result and nothing on stderr; 2 the reverse.
  if [[ "$want" == 2 ]]; then
    [[ ! -s "$TEST_TMPDIR/out" && -s "$TEST_TMPDIR/err" ]] || { echo "FAIL: $file: output on usage error" >&2; failures=$((failures + 1)); }
  else
    [[ -s "$TEST_TMPDIR/out" && ! -s "$TEST_TMPDIR/err" ]] || { echo "FAIL: $file: missing result or stray stderr" >&2; failures=$((failures + 1)); }
  fi
  echo "ok: $file -> $got"
}

expect_status fsdp_save.json 0
expect_status tp2d_save.json 0
expect_status ddp_dedup_save.json 0
expect_status invalid_overlap_save.json 1
expect_status reshard_load.json 0
expect_status bad_usage.json 2

# Every example file is covered above.
count=$(ls "$examples"/*.json | wc -l)
if [[ "$count" != 6 ]]; then
  echo "FAIL: $count example files, this test knows 6" >&2
  failures=$((failures + 1))
fi

# Standard input, "-" and the error line of the usage example.
"$dcplan" plan - <"$examples/tp2d_save.json" >/dev/null || { echo "FAIL: plan - (stdin)" >&2; failures=$((failures + 1)); }
"$dcplan" plan <"$examples/tp2d_save.json" >/dev/null || { echo "FAIL: plan (stdin)" >&2; failures=$((failures + 1)); }
err=$("$dcplan" plan "$examples/bad_usage.json" 2>&1 >/dev/null)
[[ "$err" == "dcplan plan: ranks[1].items[0].lengths[1]: must not be negative, got -4" ]] ||
  { echo "FAIL: bad_usage error line: $err" >&2; failures=$((failures + 1)); }

# Dispatch: unknown subcommand -> 2; help -> 0.
"$dcplan" frobnicate >/dev/null 2>&1; [[ $? == 2 ]] || { echo "FAIL: unknown subcommand" >&2; failures=$((failures + 1)); }
"$dcplan" >/dev/null 2>&1; [[ $? == 2 ]] || { echo "FAIL: no subcommand" >&2; failures=$((failures + 1)); }
"$dcplan" --help | grep -q "plan" || { echo "FAIL: --help" >&2; failures=$((failures + 1)); }
"$dcplan" help plan | grep -q "usage: dcplan plan" || { echo "FAIL: help plan" >&2; failures=$((failures + 1)); }

exit $((failures > 0))
