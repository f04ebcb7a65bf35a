#!/usr/bin/env bash
# Fuzzes the readers of files users hand the tool (TIFF, PNG, safetensors checkpoints) with
# libFuzzer and the address sanitizer, each for a bounded time. Thrown errors are the readers'
# right answer to bad input; only crashes, hangs, memory blow-ups and sanitizer reports count.
#
#   bash scripts/fuzz.sh [--seconds N] [--ci] [tiff|png|safetensors ...]
#
# --seconds N  how long each reader is fuzzed (default 60)
# --ci         what CI runs: every reader, 60 s each
# Without names, every reader is fuzzed. Exit status 1 names each reader that failed and the input
# that made it fail; 0 when none did, and 0 too (with a loud SKIPPED) where this Swift toolchain
# has no libFuzzer runtime, the only case that is skipped.
#
# Each reader starts from the seeds in Fuzz/corpus/<reader>, with the dictionary Fuzz/dict/<reader>.dict.
# Everything it writes goes under .build-fuzz/ (ignored by git): the fuzzing build, the corpus it
# grows (corpus/<reader>, kept between runs so that a longer run goes on where the last stopped),
# crashing inputs (crashes/<reader>/) and the logs.
# Replay a crash with:  .build-fuzz/debug/FuzzTIFF .build-fuzz/crashes/tiff/crash-...
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=60
readers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds needs a whole number of seconds above 0, got '${2:-}'" >&2; exit 2; }
      seconds="$2"; shift 2 ;;
    --ci) seconds=60; shift ;;
    tiff|png|safetensors) readers+=("$1"); shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1'; use --seconds N, --ci, or reader names tiff, png, safetensors" >&2; exit 2 ;;
  esac
done
[ ${#readers[@]} -gt 0 ] || readers=(tiff png safetensors)

# MARK: - Readers

# Per reader: the product, the largest input (a few times the seeds: enough to forge offsets and
# sizes, small enough to keep runs fast), and the longest one input may take (a decode that the
# readers' size limits allow takes well under a second; more is a hang).
product() { case "$1" in tiff) echo FuzzTIFF ;; png) echo FuzzPNG ;; safetensors) echo FuzzSafeTensors ;; esac; }
max_len() { case "$1" in tiff) echo 8192 ;; png) echo 8192 ;; safetensors) echo 2048 ;; esac; }
timeout_s=20
# Past this a single input counts as a memory blow-up (the readers refuse to decode more than
# 1 GiB; the sanitizer roughly doubles what that costs).
rss_mb=3072

scratch=.build-fuzz
swift_flags=(-c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)

skip() {
  echo "=================================================================" >&2
  echo "fuzz.sh: SKIPPED: $1" >&2
  echo "fuzz.sh: readers not fuzzed: ${readers[*]}" >&2
  echo "=================================================================" >&2
  exit 0
}

# MARK: - Can this toolchain fuzz?

# A one-line program tells a missing libFuzzer runtime (skipped) apart from a package that does
# not build (a failure).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat >"$probe/probe.swift" <<'EOF'
@_cdecl("LLVMFuzzerTestOneInput")
public func probe(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { 0 }
EOF
if ! command -v swiftc >/dev/null; then
  skip "no swiftc on PATH"
fi
if ! swiftc -parse-as-library -sanitize=fuzzer,address "$probe/probe.swift" -o "$probe/probe" >"$probe/log" 2>&1; then
  sed 's/^/  /' "$probe/log" | tail -5 >&2
  skip "this Swift toolchain cannot link -sanitize=fuzzer,address (no libFuzzer or ASan runtime)"
fi

# MARK: - Build

mkdir -p "$scratch/logs"
for r in "${readers[@]}"; do
  echo "fuzz.sh: building $(product "$r") for fuzzing"
  if ! swift build --scratch-path "$scratch" "${swift_flags[@]}" --product "$(product "$r")" >"$scratch/logs/build.log" 2>&1; then
    # gold's warnings about the sanitizer's local symbols are noise.
    grep -v "Cannot export local symbol" "$scratch/logs/build.log" | tail -20 >&2
    echo "fuzz.sh: FAILED: $(product "$r") does not build for fuzzing (see above)" >&2
    exit 1
  fi
done

# MARK: - Fuzz

failed=()
for r in "${readers[@]}"; do
  bin="$scratch/debug/$(product "$r")"
  corpus="$scratch/corpus/$r" crashes="$scratch/crashes/$r" log="$scratch/logs/$r.log"
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  before=$(find "$crashes" -type f | sort)
  echo "fuzz.sh: fuzzing the $r reader for ${seconds} s (inputs up to $(max_len "$r") bytes, log $log)"
  # New inputs go to the first folder (outside git); the seeds in Fuzz/corpus are only read. The
  # dictionary gives the tags, chunk names and keys that libtiff and libpng (not instrumented,
  # so libFuzzer cannot learn them) compare against.
  # LeakSanitizer is off: the Swift runtime's and Foundation's one-time caches read as leaks.
  ASAN_OPTIONS=detect_leaks=0 "$bin" "$corpus" "Fuzz/corpus/$r" \
    -max_total_time="$seconds" -max_len="$(max_len "$r")" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
    -dict="Fuzz/dict/$r.dict" -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
  status=$?
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done )" "$log" | sed 's/^/  /'
  if [ $status -ne 0 ]; then
    found=$(comm -13 <(echo "$before") <(find "$crashes" -type f | sort) | sed '/^$/d')
    echo "fuzz.sh: FAILED: the $r reader ($bin) failed (exit status $status); the end of its log:" >&2
    grep -E "ERROR|SUMMARY|Fatal error|panic|==[0-9]+==|#[0-9]+ 0x" "$log" | head -30 | sed 's/^/  /' >&2
    tail -5 "$log" | sed 's/^/  /' >&2
    if [ -n "$found" ]; then
      echo "$found" | while read -r f; do echo "fuzz.sh: $r reader: failing input: $f (replay: $bin $f)" >&2; done
    else
      echo "fuzz.sh: $r reader: no input was saved; see $log" >&2
    fi
    failed+=("$r")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (crashing inputs under $scratch/crashes/)" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${readers[*]} (${seconds} s each)"
