# Compatibility harness, on top of tests/integration/lib.sh (private $T, agent,
# socket, cleanup trap). A case runs one command natively and then under the shim
# against the running agent, with the same data and the same command line, and
# requires the same stdout, stderr and exit status. An accelerated case runs the
# shim pass twice and requires the second one to be served from the cache.
#
# Failures are collected, not fatal: one script checks a whole program family and
# reports every case that differs (compat_finish exits 1 if any did).
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

FDSHARE="${DC_FDSHARE:-$DC_BUILD/tests/compat/dcfdshare}"
DATA="$T/data"
OUT="$T/out"
SCRATCH="$T/scratch"   # outside the dataset root: where cases may write
mkdir -p "$OUT" "$SCRATCH"
declare -a FAILURES=()
CASE_SEQ=0

# A failed check: remembered, printed, and the script goes on.
bad() {
  FAILURES+=("$*")
  echo "FAIL: $*" >&2
}

# Several counters from one `dcctl stats --json`, printed space-separated.
counters() {
  "$DCCTL" stats --json | "$PY" -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join(str(s[k]) for k in sys.argv[1:]))' "$@"
}

# run_pass TAG PRELOAD CMD...: runs CMD in the dataset root (relative paths work),
# stdin from /dev/null; keeps stdout, stderr and exit status under $OUT.
run_pass() {
  local tag=$1 preload=$2 rc=0
  shift 2
  (
    cd "$DATA"
    if [ -n "$preload" ]; then export LD_PRELOAD="$preload"; fi
    "$@"
  ) </dev/null >"$OUT/$CASE_SEQ.$tag.out" 2>"$OUT/$CASE_SEQ.$tag.err" || rc=$?
  echo "$rc" >"$OUT/$CASE_SEQ.$tag.rc"
}

# same_as_native NAME TAG: the TAG pass matches the native one; else records why.
same_as_native() {
  local name=$1 tag=$2 base="$OUT/$CASE_SEQ" why=""
  local nrc srcs
  nrc=$(cat "$base.native.rc")
  srcs=$(cat "$base.$tag.rc")
  [ "$nrc" = "$srcs" ] || why+="exit status $srcs under the shim, $nrc natively; "
  cmp -s "$base.native.out" "$base.$tag.out" ||
    why+="stdout differs ($(cmp "$base.native.out" "$base.$tag.out" 2>&1 | head -n1 || true); sizes $(stat -c %s "$base.native.out") native, $(stat -c %s "$base.$tag.out") shim); "
  cmp -s "$base.native.err" "$base.$tag.err" || why+="stderr differs; "
  [ -z "$why" ] && return 0
  bad "$name ($tag pass): $why"
  {
    echo "--- $name: native stdout (head) / $tag stdout (head)"
    head -c 600 "$base.native.out" | cat -v | head -n 8
    echo "---"
    head -c 600 "$base.$tag.out" | cat -v | head -n 8
    echo "--- native stderr / $tag stderr (tails)"
    tail -n 5 "$base.native.err"
    echo "---"
    tail -n 5 "$base.$tag.err"
  } >&2
  return 1
}

# compat_case NAME accel|correct CMD...
#   accel:   the warm shim pass must hit the cache (bytes_hit grows) and miss nothing.
#   correct: only the output is checked (the program reads in a way the shim does
#            not serve, e.g. mmap or copy_file_range).
# The native pass must exit with ${EXPECT_RC:-0}: a case that fails natively (bad
# setup) would otherwise "match" the same failure under the shim and prove nothing.
compat_case() {
  local name=$1 kind=$2
  shift 2
  CASE_SEQ=$((CASE_SEQ + 1))
  run_pass native "" "$@"
  if [ "$(cat "$OUT/$CASE_SEQ.native.rc")" != "${EXPECT_RC:-0}" ]; then
    bad "$name: the native run itself exited $(cat "$OUT/$CASE_SEQ.native.rc") (expected ${EXPECT_RC:-0}):" \
      "$(tail -n 3 "$OUT/$CASE_SEQ.native.err")"
    return 0
  fi
  local c0 c1 c2
  c0=$(counters bytes_hit miss_reads fallback_reads)
  run_pass cold "$SHIM" "$@"
  c1=$(counters bytes_hit miss_reads fallback_reads)
  local ok=1
  same_as_native "$name" cold || ok=0
  if [ "$kind" = accel ]; then
    run_pass warm "$SHIM" "$@"
    c2=$(counters bytes_hit miss_reads fallback_reads)
    same_as_native "$name" warm || ok=0
    local h1 m1 f1 h2 m2 f2 h0 m0 f0
    read -r h0 m0 f0 <<<"$c0"
    read -r h1 m1 f1 <<<"$c1"
    read -r h2 m2 f2 <<<"$c2"
    note "$name: cold bytes_hit +$((h1 - h0)) miss_reads +$((m1 - m0)) fallback_reads +$((f1 - f0));" \
      "warm bytes_hit +$((h2 - h1)) miss_reads +$((m2 - m1)) fallback_reads +$((f2 - f1))"
    if [ $((h2 - h1)) -le 0 ]; then
      bad "$name: second pass under the shim was not served from the cache (bytes_hit +$((h2 - h1)))"
      ok=0
    elif [ $((m2 - m1)) -ne 0 ]; then
      bad "$name: second pass under the shim still missed (miss_reads +$((m2 - m1)))"
      ok=0
    fi
  else
    local h1 h0 rest
    read -r h0 rest <<<"$c0"
    read -r h1 rest <<<"$c1"
    note "$name: correctness only; shim pass bytes_hit +$((h1 - h0))"
  fi
  [ $ok = 1 ] && note "$name: identical to native"
  return 0
}

# End of a script: the agent must have survived without fetch errors.
compat_finish() {
  agent_alive || bad "the agent died"
  local errs
  errs=$(counter fetch_errors 2>/dev/null || echo "?")
  [ "$errs" = 0 ] || bad "agent fetch_errors = $errs"
  if [ ${#FAILURES[@]} -gt 0 ]; then
    echo "=== ${#FAILURES[@]} failure(s):" >&2
    printf '  %s\n' "${FAILURES[@]}" >&2
    exit 1
  fi
  echo "ok: $CASE_SEQ cases identical to native"
}

# Python helpers must be the Debian interpreter's, with its packages.
need_py_modules() {
  local m
  for m in "$@"; do
    "$PY" -c "import $m" 2>/dev/null || skip "$PY cannot import $m (install python3-$m)"
  done
}
