#!/bin/sh
# Runs every libFuzzer binary (fuzz_*) of a fuzz build for a while each.
# Usage: tools/fuzz.sh BUILD_DIR SECONDS
#   BUILD_DIR  where the fuzz_* binaries are (build/fuzz/fuzz for the fuzz preset)
#   SECONDS    time per target (-max_total_time)
#
# Each target starts from its seed corpus fuzz/corpus/<name>/ (and
# fuzz/regressions/<name>/ when present), which it only reads. New inputs go to
# build/fuzz-corpus/<name>/, kept between runs; crash, leak, timeout and OOM
# inputs go to build/fuzz-artifacts/<name>/, and the log to
# build/fuzz-logs/<name>.log. Prints one summary line per target and exits 1
# when any target found a crash.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
bindir=$1
seconds=$2
case $seconds in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$root/build/fuzz-corpus
artifacts=$root/build/fuzz-artifacts
logs=$root/build/fuzz-logs
dict=$root/fuzz/sip.dict

targets=$(find "$bindir" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x 2>/dev/null | sort)
if [ -z "$targets" ]; then
  echo "fuzz.sh: no fuzz_* binaries in $bindir (build the fuzz preset first)" >&2
  exit 2
fi

: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=1:symbolize=1}"
: "${UBSAN_OPTIONS:=print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS UBSAN_OPTIONS

# Crash, leak, timeout and out-of-memory inputs (not libFuzzer's slow-unit-* files).
count_artifacts() {
  find "$1" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
    | wc -l
}

status=0
summary=""
for bin in $targets; do
  target=$(basename "$bin")
  name=${target#fuzz_}
  mkdir -p "$scratch/$name" "$artifacts/$name" "$logs"
  log=$logs/$name.log

  case $name in
    msg) max_len=8192 ;;
    stream) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  seeds=""
  for d in "$root/fuzz/corpus/$name" "$root/fuzz/regressions/$name"; do
    [ -d "$d" ] && seeds="$seeds $d"
  done
  before=$(count_artifacts "$artifacts/$name")

  echo "== $target: ${seconds}s, log $log"
  # The first corpus directory receives new inputs; the seed directories are only read.
  # shellcheck disable=SC2086
  if "$bin" -max_total_time="$seconds" -dict="$dict" -max_len="$max_len" -timeout=25 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$name/" \
      "$scratch/$name" $seeds >"$log" 2>&1; then
    rc=0
  else
    rc=$?
  fi

  after=$(count_artifacts "$artifacts/$name")
  crashes=$((after - before))
  # A crash on an input already in the artifacts directory overwrites its file.
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
  corp=$(find "$scratch/$name" -type f | wc -l)
  line=$(printf '%-14s runs %-10s cov %-6s ft %-7s corpus %-6s crashes %s' \
    "$target" "${runs:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crashes")
  if [ "$crashes" -gt 0 ] || [ "$rc" -ne 0 ]; then
    status=1
    line="$line  (exit $rc; see $log and $artifacts/$name/)"
  fi
  summary="$summary$line
"
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '%s' "$summary"
exit $status
