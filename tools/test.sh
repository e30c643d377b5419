#!/usr/bin/env bash
# Sets up, builds and runs every test suite; CI runs this (.ci/run).
#   main   the whole suite in ./build (gcc, -Werror)             ~5-8 min
#   asan   unit + integration tests in ./build-asan (ASan+UBSan)
#   tsan   the shim's concurrency tests in ./build-tsan (TSan)
#   fuzz   every libFuzzer harness for DC_FUZZ_SECONDS (default 60) in ./build-fuzz (clang)
# DC_TEST_PARTS picks parts (default "asan tsan fuzz main"); arguments go to the
# main suite's meson test (e.g. a test name). The main suite runs last so its
# meson summary is the last runner output; one line per part with its time
# follows, then "test.sh: N passed, N failed, N skipped" over all parts.
set -uo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh || exit 1
./tools/build.sh || exit 1

PARTS=${DC_TEST_PARTS:-asan tsan fuzz main}
export DC_FUZZ_SECONDS=${DC_FUZZ_SECONDS:-60}
declare -a REPORT=()
total_ok=0
total_fail=0
total_skip=0

# run_part NAME BUILD_DIR COMMAND...: runs one part, records its time and its
# meson counts (from the build dir's testlog.json).
run_part() {
  local name=$1 dir=$2
  shift 2
  local start=$SECONDS rc=0
  echo "=== test.sh: $name ($dir) ==="
  "$@" || rc=$?
  local ok fail skip
  read -r ok fail skip < <(/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'EOP'
import json, sys
ok = fail = skip = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line).get("result", "")
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skip += 1
        else: fail += 1
except OSError:
    pass
print(ok, fail, skip)
EOP
)
  # A part that failed before running any test (a build error) counts as one failure.
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  total_ok=$((total_ok + ok))
  total_fail=$((total_fail + fail))
  total_skip=$((total_skip + skip))
  REPORT+=("test.sh: $name: $ok passed, $fail failed, $skip skipped, $((SECONDS - start)) s")
}

# setup_dir DIR MESON_ARGS... [-- TARGETS...]: configures DIR once, then builds
# TARGETS (default: everything).
setup_dir() {
  local dir=$1
  shift
  local -a args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && targets=("$@")
  if [ ! -f "$dir/build.ninja" ]; then meson setup "$dir" "${args[@]}" >/dev/null || return 1; fi
  ninja -C "$dir" "${targets[@]}" >/dev/null || { ninja -C "$dir" "${targets[@]}" | tail -30; return 1; }
}

gcc_runtime() { readlink -f "$(gcc -print-file-name="$1")"; }

part_asan() {
  setup_dir build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false || return 1
  # Leaks are not checked: integration tests stop agents with signals, and the
  # real programs the shim is preloaded into are not ours.
  DC_SANITIZER_RUNTIME="$(gcc_runtime libasan.so) $(gcc_runtime libubsan.so)" \
  ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 --suite unit --suite integration
}

# The shim's concurrency: offsets and dup under threads, many reader threads and
# processes, descriptors shared across fork. Not unit-seqlock_race: TSan does not
# model the fences of include/dc/barrier.h (-Wno-tsan says so) and a seqlock
# reader's copy races by design, so it would report the protocol itself.
TSAN_TESTS=(offsets stress compat_threads compat_fork)
# Only what those tests run (the unit tests are most of a full build).
TSAN_TARGETS=(daemon/dcagent tools/dcctl shim/libdcshim.so tests/integration/dcstress
              tests/integration/dcoffsets tests/integration/dcbadclient tests/integration/dcbadpeer
              tests/integration/dcfdkeep tests/compat/dcfdshare)
part_tsan() {
  setup_dir build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dcpp_args=-Wno-tsan \
    -- "${TSAN_TARGETS[@]}" || return 1
  DC_SANITIZER_RUNTIME="$(gcc_runtime libtsan.so)" \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    meson test -C build-tsan --no-rebuild --print-errorlogs --num-processes 2 "${TSAN_TESTS[@]}"
}

part_fuzz() {
  CXX=clang++ CC=clang setup_dir build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined \
    -Db_lundef=false || return 1
  meson test -C build-fuzz --print-errorlogs --num-processes 2 --suite fuzz
}

part_main() { meson test -C build --print-errorlogs --num-processes 2 "$@"; }

for p in $PARTS; do
  case $p in
    asan) run_part asan build-asan part_asan ;;
    tsan) run_part tsan build-tsan part_tsan ;;
    fuzz) run_part fuzz build-fuzz part_fuzz ;;
    main) run_part main build part_main "$@" ;;
    *) echo "test.sh: unknown part '$p'" >&2; exit 2 ;;
  esac
done
printf '%s\n' "${REPORT[@]}"
echo "test.sh: $total_ok passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
