#!/usr/bin/env bash
# An authenticated peer asks for 600 blocks (1 MiB each) and reads none of the
# replies for a while: the owner must stop reading its requests once a bounded
# queue of replies waits (not copy all 600 MiB into its own memory), keep serving
# others meanwhile, and send every reply, right, once the peer reads them.
source "$(dirname "$0")/lib.sh"

write_config 64MiB
head -c 1500000 /dev/urandom > "$T/data/a.bin"
head -c 3000000 /dev/urandom > "$T/data/b.bin"
head -c 48 /dev/urandom > "$T/cluster.key"
chmod 600 "$T/cluster.key"
cp "$T/agent.toml" "$T/base.toml"
for attempt in 1 2 3 4 5; do
  PORT=$((20000 + RANDOM % 40000))
  cp "$T/base.toml" "$T/agent.toml"
  cat >> "$T/agent.toml" <<EOC
[cluster]
node_id = "lone"
listen = "127.0.0.1:$PORT"
secret_file = "$T/cluster.key"
EOC
  if "$DCAGENT" --config "$T/agent.toml" >>"$T/agent.log" 2>&1 & AGENT_PID=$!; sleep 0.3; kill -0 "$AGENT_PID" 2>/dev/null; then
    break
  fi
  AGENT_PID=""
done
[ -n "$AGENT_PID" ] || fail "could not start an agent on a free port"
for _ in $(seq 1 100); do "$DCCTL" stats >/dev/null 2>&1 && break; sleep 0.05; done

# rss_anon: the agent's private memory in KiB (the arena is shared memory: not in it).
rss_anon() { awk '/^RssAnon:/ {print $2}' "/proc/$AGENT_PID/status"; }
before=$(rss_anon)
COUNT=600
HOLD=6
"$DC_BUILD/tests/integration/dcbadpeer" --no-read 127.0.0.1 "$PORT" "$T/cluster.key" test "$T/data" a.bin "$COUNT" "$HOLD" \
  > "$T/peer.out" 2>&1 &
peer=$!
EXTRA_PIDS+=("$peer")
for _ in $(seq 1 200); do grep -q "^sent" "$T/peer.out" && break; sleep 0.05; done
grep -q "^sent" "$T/peer.out" || fail "the peer did not start: $(cat "$T/peer.out")"
# While the peer holds off reading: the owner's private memory stays bounded.
peak=$before
for _ in $(seq 1 16); do
  now=$(rss_anon)
  [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.25
done
growth=$(((peak - before) / 1024))
note "agent RssAnon $((before / 1024)) MiB before, peak $((peak / 1024)) MiB while $COUNT MiB of replies wait to be read (+$growth MiB); reads paused $(counter peer_reads_paused) time(s)"
[ "$growth" -lt 100 ] || fail "the owner's private memory grew by $growth MiB for a peer that reads nothing"
# Others are served meanwhile.
[ "$(shim cat "$T/data/b.bin" | md5sum)" = "$(md5sum < "$T/data/b.bin")" ] || fail "reader got wrong bytes"
# Then the peer reads: every reply arrives, right (the owner resumed).
rc=0
wait "$peer" || rc=$?
EXTRA_PIDS=()
[ $rc -eq 0 ] || fail "the peer did not get every reply: $(cat "$T/peer.out")"
note "$(tail -n 1 "$T/peer.out")"
[ "$(counter peer_reads_paused)" -gt 0 ] || fail "the owner never paused reading the peer"
agent_alive || fail "agent died"
echo "peer not reading replies: ok"
