#!/usr/bin/env bash
# errno after every intercepted call is the real call's: unchanged by a success
# (served from the arena, fetched, or fallen back to the file), the kernel's on a
# failure; also while the agent is dead (refused connects, a broken socket).
# Regression: a successful pread after the agent died left errno = ECONNREFUSED.
source "$(dirname "$0")/lib.sh"
write_config 64MiB
for i in 1 2 3; do head -c 3000000 /dev/urandom > "$T/data/f$i.bin"; done
head -c 100000 /dev/urandom > "$T/outside.bin"
PROG="$DC_BUILD/tests/integration/dcerrnokeep"
"$PROG" "$T/data/f1.bin" "$T/outside.bin" || fail "natively"
start_agent
shim "$PROG" "$T/data/f1.bin" "$T/outside.bin" || fail "cold (misses)"
shim "$PROG" "$T/data/f1.bin" "$T/outside.bin" || fail "warm (hits)"
[ "$(counter hit_reads)" -gt 0 ] || fail "the warm run was not served from the cache"
# The agent dies while a process uses it: later reads are misses it cannot answer.
# SIGTERM: the agent removes its socket (connects fail with ENOENT); SIGKILL: the
# socket stays and nobody listens (ECONNREFUSED, the case first reported).
killed_mid_run() {
  local sig=$1 paused
  rm -f "$T/go" && mkfifo "$T/go"
  [ -n "$AGENT_PID" ] || start_agent
  shim "$PROG" "$T/data/f1.bin" "$T/data/f2.bin" "$T/outside.bin" --pause <"$T/go" >"$T/paused.out" &
  paused=$!
  EXTRA_PIDS+=("$paused")
  exec 3>"$T/go"
  for _ in $(seq 1 200); do grep -q ready "$T/paused.out" && break; sleep 0.05; done
  grep -q ready "$T/paused.out" || fail "the paused run did not get ready"
  kill -"$sig" "$AGENT_PID"
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
  echo go >&3
  exec 3>&-
  wait "$paused" || fail "agent killed ($sig) mid-run: $(cat "$T/paused.out")"
}
killed_mid_run TERM
killed_mid_run KILL
# A process started with the agent gone: every connect is refused.
shim "$PROG" "$T/data/f3.bin" "$T/data/f1.bin" "$T/outside.bin" || fail "no agent (refused)"
echo "errno_kept_after_served_read: ok"
