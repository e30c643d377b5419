#!/usr/bin/env bash
# A member that stops answering without leaving placement (SIGSTOP: a hung agent;
# member_timeout is set long so it stays a member): every fetch sent to it must
# fail over to the origin at fetch_timeout, so a reader on the other node finishes
# while it is still stopped, with every byte right. Once it runs again its late
# answers are discarded, nothing stays in flight, and the connection still serves.
source "$(dirname "$0")/lib.sh"

CL_MEMBER_TIMEOUT=30s
cluster_up 2
for i in 1 2; do
  node_set_cluster_option "$i" fetch_timeout '"1s"'
  node_kill "$i"
done
for i in 1 2; do node_start "$i"; done
wait_member 1 n2 true 20 || true
wait_member 2 n1 true 20 || true
gen_dataset "$T/data" 4 > /dev/null
md5_ref "$T/data" "$T/ref.json"

peers_field() {
  "$DCCTL" --socket "${CL_SOCK[$1]}" peers --json | "$PY" -c 'import json,sys
print(json.load(sys.stdin)["peers"][0][sys.argv[1]])' "$2"
}

kill -STOP "${CL_PID[2]}"
stopped=$SECONDS
start_reader 1 1 0 cold
cold=$READER_PID
while kill -0 "$cold" 2>/dev/null; do
  if [ $((SECONDS - stopped)) -gt 20 ]; then
    kill -CONT "${CL_PID[2]}"
    fail "the reader on node 1 still waits 20 s after node 2 stopped (progress $(reader_progress cold))"
  fi
  sleep 0.2
done
took=$((SECONDS - stopped))
wait_reader cold "$cold"
timeouts=$(node_stat 1 peer_fetch_timeouts)
note "node 2 stopped: the reader on node 1 finished in ${took}s; $timeouts fetch(es) abandoned at the deadline"
[ "$timeouts" -gt 0 ] || fail "no fetch reached its deadline: the test tested nothing (did node 2 own no block?)"
[ "$(ring_member_live 1 n2)" = true ] || fail "node 2 left placement: the fetches failed over for that, not their deadline"
kill -CONT "${CL_PID[2]}"

# Late answers are discarded; the connection's accounting is back to nothing in
# flight, and it serves the next fetches.
end=$((SECONDS + 10))
while [ "$(peers_field 1 in_flight)" -ne 0 ] || [ "$(peers_field 1 in_flight_bytes)" -ne 0 ]; do
  [ $SECONDS -lt $end ] || fail "node 1: $(peers_field 1 in_flight) fetch(es), $(peers_field 1 in_flight_bytes) bytes still in flight"
  sleep 0.2
done
before=$(node_stat 1 bytes_peer)
mkdir -p "$T/data/more"
gen_dataset "$T/data/more" 4 7 > /dev/null
md5_ref "$T/data" "$T/ref.json"
start_reader 1 1 0 warm
wait_reader warm "$READER_PID"
after=$(node_stat 1 bytes_peer)
note "after node 2 resumed: $((after - before)) bytes from it"
[ "$after" -gt "$before" ] || fail "node 1 received nothing from node 2 after it resumed"
check_alive
note "fetch deadline ok"
