# Helpers of the tool's shell tests; source it after setting $out and $err
# (the files a check's stdout and stderr went to) and failures=0.

fail() {
  echo "FAIL: $*" >&2
  echo "--- stdout:" >&2; cat "$out" >&2
  echo "--- stderr:" >&2; cat "$err" >&2
  failures=$((failures + 1))
}
expect_in() {  # FILE TEXT
  grep -qF -- "$2" "$1" || fail "$(basename "$1") lacks \"$2\""
}
