#!/usr/bin/env bash
# Runs `swift test` (arguments are passed on, e.g. --filter HeaderCheck), then lists every test and
# suite that was skipped and why, so that nobody takes a skipped check for a passed one, and ends
# with one line "N passed, N failed, N skipped". Exits with `swift test`'s own status.
set -uo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp "${TMPDIR:-/tmp}/unet-test.XXXXXX")
trap 'rm -f "$log"' EXIT

swift test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# MARK: - What was skipped, and the counts

# Swift Testing prints "✔ Test x() passed after ...", "✘ Test x() failed after ...",
# "➜ Test x() skipped: "why"" or "➜ Suite X skipped: "why"" (then each of its tests is reported
# skipped too), and closes with "Test run with N tests ..."; a parameterized test's "Test case ..."
# lines are not counted. ANSI colours are removed first. A test that prints without a newline can
# put an event in the middle of a line (stdout is block-buffered into the pipe, and tests run in
# parallel), so events are looked for anywhere in a line, and the passed count is the closing
# total less the failed and skipped ones: counting "passed" lines came out short on a loaded machine.
awk '
  { gsub(/\033\[[0-9;]*m/, "") }
  match($0, /Test run with [0-9]+ tests?/) { total = substr($0, RSTART + 14) + 0; finished = 1; next }
  /✘ Test .* failed after / && !/✘ Test case / { failed++ }
  match($0, /[^ ]+ (Test|Suite) [^ ].* skipped(: |\.$)/) {
    line = substr($0, RSTART)
    sub(/^[^ ]+ /, "", line)
    what = line; sub(/ skipped(: .*|\.)$/, "", what)
    why = line; if (!sub(/^.* skipped: /, "", why)) why = "(no reason given)"
    gsub(/^"|"$/, "", why)
    if (what ~ /^Suite /) suites[++nsuites] = what ": " why
    else skipped[++nskipped] = what ": " why
  }
  END {
    print ""
    print "Skipped: " nskipped + 0
    for (i = 1; i <= nskipped; i++) print "  " skipped[i]
    if (nsuites > 0) {
      print "Skipped suites (their tests are among the above): " nsuites
      for (i = 1; i <= nsuites; i++) print "  " suites[i]
    }
    if (!finished) print "The test runner printed no closing summary: the run did not finish."
    else printf "%d passed, %d failed, %d skipped\n", total - failed - nskipped, failed, nskipped
  }
' "$log"

exit "$status"
