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
# lines are not counted. XCTest prints
# "Test Case 'x' passed|failed|skipped (...)", a skip after a line "... Test skipped - why".
# ANSI colours are removed first.
awk '
  { gsub(/\033\[[0-9;]*m/, "") }
  /^✔ Test / && / passed after / && !/^✔ Test (run with|case) / { passed++ }
  /^✘ Test / && / failed after / && !/^✘ Test (run with|case) / { failed++ }
  /^[^ ]+ (Test|Suite) .* skipped(: |\.$)/ {
    line = $0
    sub(/^[^ ]+ /, "", line)
    what = line; sub(/ skipped(: .*|\.)$/, "", what)
    why = line; if (!sub(/^.* skipped: /, "", why)) why = "(no reason given)"
    gsub(/^"|"$/, "", why)
    if (what ~ /^Suite /) suites[++nsuites] = what ": " why
    else skipped[++nskipped] = what ": " why
  }
  /Test skipped - / { xreason = $0; sub(/^.*Test skipped - /, "", xreason) }
  /^Test Case .* passed \(/ { passed++ }
  /^Test Case .* failed \(/ { failed++ }
  /^Test Case .* skipped \(/ {
    name = $0; sub(/^Test Case /, "", name); sub(/ skipped \(.*$/, "", name)
    skipped[++nskipped] = "Test " name ": " (xreason == "" ? "(no reason given)" : xreason)
    xreason = ""
  }
  /^(✔|✘) Test run with / { finished = 1 }
  END {
    print ""
    print "Skipped: " nskipped + 0
    for (i = 1; i <= nskipped; i++) print "  " skipped[i]
    if (nsuites > 0) {
      print "Skipped suites (their tests are among the above): " nsuites
      for (i = 1; i <= nsuites; i++) print "  " suites[i]
    }
    if (!finished) print "The test runner printed no closing summary: the run did not finish."
    else printf "%d passed, %d failed, %d skipped\n", passed, failed, nskipped
  }
' "$log"

exit "$status"
