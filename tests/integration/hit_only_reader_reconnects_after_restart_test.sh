#!/usr/bin/env bash
# A process whose every read hits must still notice that its agent was replaced:
# within seconds it drops the old arena (no longer mapped, so the dead agent's
# memory is freed), connects to the new agent (whose hit counters then rise from
# it), and so receives the new agent's invalidations: a writer rewriting the file
# in place under the shim is seen by the reader. Once for a clean exit (the agent
# marks its arena retired) and once for SIGKILL (the session socket hangs up).
# (Before: the reader kept the dead agent's memfd mapped and served its stale pages
# forever; the new agent showed hit_reads 0.)
source "$(dirname "$0")/lib.sh"
HITLOOP="$DC_BUILD/tests/integration/dchitloop"
write_config 64MiB
F="$T/data/shard.bin"
mkdir -p "$T/data"
head -c 262144 /dev/urandom > "$F"
start_agent

fnv() { "$PY" -c "
import sys
h = 1469598103934665603
for c in open(sys.argv[1], 'rb').read():
    h = ((h ^ c) * 1099511628211) & 0xffffffffffffffff
print('%016x' % h)" "$1"; }

LD_PRELOAD="$SHIM" "$HITLOOP" 120 "$F" "$T/seen" 2> "$T/reader.err" &
READER=$!
EXTRA_PIDS+=("$READER")

# wait_for SECONDS CONDITION...: polls CONDITION every 0.1 s.
wait_for() {
  local limit=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$limit"); do
    "$@" && return 0
    kill -0 "$READER" 2>/dev/null || { cat "$T/reader.err" >&2; fail "the reader died"; }
    sleep 0.1
  done
  return 1
}
last_seen_is() { [ -s "$T/seen" ] && [ "$(tail -n 1 "$T/seen")" = "$1" ]; }
# Inodes of the arena memfds the reader maps.
arena_inodes() { awk '/memfd:dc-arena/ {print $5}' "/proc/$READER/maps" | sort -u; }
maps_inode() { arena_inodes | grep -qx "$1"; }
hits_from_reader() { [ "$(counter hit_reads)" -gt 20 ]; }

wait_for 10 last_seen_is "$(fnv "$F")" || fail "the reader never read the file"
wait_for 10 hits_from_reader || fail "the first agent sees no hits from the reader"

for how in TERM KILL; do
  old=$(arena_inodes)
  [ -n "$old" ] && [ "$(echo "$old" | wc -l)" = 1 ] || fail "expected one arena mapped, got: $old"
  kill -"$how" "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
  start_agent
  t0=$(date +%s)
  wait_for 10 hits_from_reader ||
    fail "after SIG$how the new agent saw no hits from a hit-only reader (hit_reads $(counter hit_reads))"
  maps_inode "$old" && fail "after SIG$how the reader still maps the old agent's arena (inode $old)"
  note "SIG$how: reader on the new agent within $(( $(date +%s) - t0 )) s"
  # Rewrite in place, same size, through the shim: the new agent invalidates.
  head -c 262144 /dev/urandom > "$T/new"
  shim "$PY" -c "
import sys
data = open(sys.argv[2], 'rb').read()
with open(sys.argv[1], 'r+b') as f:
    f.write(data)" "$F" "$T/new"
  want=$(fnv "$T/new")
  wait_for 10 last_seen_is "$want" ||
    fail "after SIG$how the reader never saw the rewritten bytes (last $(tail -n 1 "$T/seen"), want $want)"
done
kill "$READER" 2>/dev/null || true
echo "hit-only reader reconnects after restart: ok"
