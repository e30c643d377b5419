#!/usr/bin/env bash
# relay_cannot_alter_peer_data: an on-path relay (dcrelay) between a client-only
# node and the owner forwards the handshake untouched, so both ends authenticate
# each other, then rewrites the data of every FetchReply and recomputes every CRC
# (header, body, data_crc). The client must reject each altered reply (counted in
# peer_auth_errors) and its reader under the shim must read the right bytes (from
# the origin). Then: integrity = "crc" is opt-in on every node; a node set to crc
# alone is refused by the owner, with a log line on both sides.
# CL_INTEGRITY: the integrity both nodes use for the first part (default: the
# agent's default).
source "$(dirname "$0")/lib.sh"

RELAY="$DC_BUILD/tests/cluster/dcrelay"
[ -x "$RELAY" ] || fail "no $RELAY"
RELAY_PORT=$((CL_PORT + 1))

CL_CLIENT_ONLY="2" cluster_up 2
# The file of the report: all 'b', a few blocks, the last one short; and random bytes.
"$PY" - "$T/data" <<'EOP'
import os, sys
d = sys.argv[1]
open(os.path.join(d, 'bbbb.bin'), 'wb').write(b'b' * (3 * 1024 * 1024 + 12345))
open(os.path.join(d, 'random.bin'), 'wb').write(os.urandom(1536 * 1024 + 7))
EOP
md5_ref "$T/data" "$T/ref.json"

if [ -n "${CL_INTEGRITY:-}" ]; then
  for i in 1 2; do node_set_cluster_option "$i" integrity "\"$CL_INTEGRITY\""; done
  node_kill 1
  node_start 1
fi

# Node 2 reaches its owner only through the relay, which runs in node 2's namespace.
ip netns exec "${CL_NS[2]}" "$RELAY" "$CL_NET.2" "$RELAY_PORT" "$CL_NET.1" "$CL_PORT" >"$T/relay.log" 2>&1 &
EXTRA_PIDS+=($!)
for _ in $(seq 1 100); do grep -q "relay: listening" "$T/relay.log" && break; sleep 0.05; done
grep -q "relay: listening" "$T/relay.log" || fail "the relay did not start: $(cat "$T/relay.log")"
sed -i "s|address = \"$CL_NET.1:$CL_PORT\"|address = \"$CL_NET.2:$RELAY_PORT\"|" "$T/n2/agent.toml"
grep -q "address = \"$CL_NET.2:$RELAY_PORT\"" "$T/n2/agent.toml" || fail "could not point node 2 at the relay"
node_kill 2
node_start 2
wait_member 2 n1 true 20 || true   # status 2: no dcctl ring; the reads below still go to n1 first

start_reader 2 1 0 relayed
wait_reader relayed "$READER_PID"   # every byte right: fails if a poisoned reply got through
check_alive
rewrites=$(grep -c "relay: rewrote" "$T/relay.log" || true)
[ "$rewrites" -gt 0 ] || fail "the relay rewrote no reply: the test did not test anything"
auth=$(node_stat 2 peer_auth_errors)
[ "$auth" -gt 0 ] || fail "node 2 counted no authentication error for $rewrites altered replies"
grep -q "authentication failed on" "$T/n2/agent.log" || fail "node 2 did not log the altered replies"
[ "$(node_stat 2 peer_crc_errors)" -eq 0 ] || note "node 2 also counted CRC errors"
note "relay altered $rewrites replies; node 2 rejected them (peer_auth_errors $auth), reader read right bytes"

# crc is opt-in per node and must match: node 2 alone on crc is refused by n1,
# and still reads right bytes (the origin).
node_kill 2
node_set_cluster_option 2 integrity '"crc"'
sed -i "s|address = \"$CL_NET.2:$RELAY_PORT\"|address = \"$CL_NET.1:$CL_PORT\"|" "$T/n2/agent.toml"
node_start 2
for _ in $(seq 1 100); do grep -q "integrity mismatch" "$T/n2/agent.log" && break; sleep 0.1; done
grep -q "integrity mismatch: n1 uses" "$T/n2/agent.log" || fail "node 2 did not log the integrity mismatch"
grep -q 'peer n2 uses integrity "crc"' "$T/n1/agent.log" || fail "node 1 did not log the integrity mismatch"
start_reader 2 1 0 mismatched
wait_reader mismatched "$READER_PID"
[ "$(node_stat 2 bytes_peer)" -eq 0 ] || fail "node 2 (crc) got bytes from node 1 (not crc)"
check_alive
note "relay cannot alter peer data: ok"
