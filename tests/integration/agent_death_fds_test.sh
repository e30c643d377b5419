#!/usr/bin/env bash
# The agent dies (kill -9) and comes back, repeatedly, while a reader holding many
# dataset descriptors keeps missing: every read succeeds and every descriptor is
# still its own file afterwards. (A failed receive once made the shim parse stale
# control bytes and close descriptor numbers the application had reused.)
source "$(dirname "$0")/lib.sh"
write_config 32MiB
gen_files "$T/data" 24 2000000 6000000   # ~96 MiB: three times the cache
start_agent
shim "$DC_BUILD/tests/integration/dcfdkeep" 14 "$T"/data/*.bin > "$T/keep.out" 2>&1 &
READER=$!
EXTRA_PIDS+=("$READER")
for round in 1 2 3 4 5; do
  sleep 1.2
  kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
  sleep 0.5
  start_agent
done
wait "$READER" || { cat "$T/keep.out" >&2; fail "the reader lost descriptors or reads across agent deaths"; }
cat "$T/keep.out" >&2
echo "agent death fds: ok"
