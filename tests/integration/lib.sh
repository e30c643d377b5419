# Shared helpers for integration tests. Each test sources this, gets a private
# directory ($T), its own agent socket and config, and a trap that stops everything
# it started, pass or fail. Exit 77 means "skipped" (meson's convention).
set -euo pipefail

: "${DC_BUILD:?DC_BUILD must point at the build directory}"
DCAGENT="$DC_BUILD/daemon/dcagent"
DCCTL="$DC_BUILD/tools/dcctl"
SHIM="$DC_BUILD/shim/libdcshim.so"
# A sanitizer build's shim needs its runtime loaded first in every program it is
# preloaded into (tools/test.sh sets this for build-asan and build-tsan).
# LD_PRELOAD takes a space-separated list.
if [ -n "${DC_SANITIZER_RUNTIME:-}" ]; then SHIM="$DC_SANITIZER_RUNTIME $SHIM"; fi
PY=/usr/bin/python3   # Debian's interpreter, with numpy/PIL/h5py/torch

T=$(mktemp -d "${TMPDIR:-/tmp}/dc-test.XXXXXX")
export DC_SOCKET="$T/agent.sock"
AGENT_PID=""
declare -a EXTRA_PIDS=()

cleanup() {
  local rc=$?
  for p in "${EXTRA_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "$AGENT_PID" ]; then
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$T/agent.log" ]; then
    echo "--- agent log (last 40 lines) ---" >&2
    tail -n 40 "$T/agent.log" >&2 || true
  fi
  [ -n "${DC_KEEP_T:-}" ] || rm -rf "$T"
  exit $rc
}
trap cleanup EXIT
# meson stops a test that timed out with SIGTERM: exit, so the EXIT trap stops the agent.
trap 'exit 143' TERM
trap 'exit 130' INT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
note() { echo "# $*" >&2; }

# write_config MEMORY [BLOCK] [PAGE]: one dataset "test" rooted at $T/data.
write_config() {
  mkdir -p "$T/data"
  cat > "$T/agent.toml" <<EOC
[agent]
socket = "$DC_SOCKET"
log_level = "${DC_LOG_LEVEL:-info}"
[cache]
memory = "$1"
block_size = "${2:-1MiB}"
page_size = "${3:-64KiB}"
[[dataset]]
name = "test"
path = "$T/data"
EOC
}

start_agent() {
  "$DCAGENT" --config "$T/agent.toml" >>"$T/agent.log" 2>&1 &
  AGENT_PID=$!
  for _ in $(seq 1 200); do
    [ -S "$DC_SOCKET" ] && "$DCCTL" stats --json >/dev/null 2>&1 && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || fail "agent exited at start: $(tail -n 5 "$T/agent.log")"
    sleep 0.05
  done
  fail "agent did not come up"
}

stop_agent() {
  [ -n "$AGENT_PID" ] || return 0
  kill "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}

agent_alive() { [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; }

# counter NAME: one counter from `dcctl stats --json`.
counter() {
  "$DCCTL" stats --json | "$PY" -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

# gen_files DIR COUNT MIN MAX: COUNT files of random sizes in [MIN, MAX] bytes.
gen_files() {
  "$PY" - "$@" <<'EOP'
import os, random, sys
d, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(d, exist_ok=True)
rng = random.Random(1234)
for i in range(n):
    size = rng.randint(lo, hi)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(size))
EOP
}

shim() { LD_PRELOAD="$SHIM" "$@"; }
export SHIM
