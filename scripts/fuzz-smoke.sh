#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR/fuzz briefly over its committed corpus
# (fuzz/corpus/<target>/), in a scratch copy so the repository is not written.
#   scripts/fuzz-smoke.sh build-fuzz [SECONDS per target, default 20]
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?build dir}
SECS=${2:-20}
shopt -s nullglob
targets=("$BUILD"/fuzz/*_fuzz)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-smoke: no fuzz targets in $BUILD/fuzz" >&2; exit 1; }
passed=0 failed=0
for t in "${targets[@]}"; do
  name=$(basename "$t" _fuzz)
  work=$(mktemp -d)
  [ -d "$HERE/fuzz/corpus/$name" ] && cp -r "$HERE/fuzz/corpus/$name/." "$work/"
  if "$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "$work" >"$work.log" 2>&1; then
    echo "fuzz-smoke: $name: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$') runs)"
    passed=$((passed + 1))
  else
    echo "fuzz-smoke: $name: FAILED"; tail -40 "$work.log"
    failed=$((failed + 1))
  fi
  rm -rf "$work" "$work.log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
