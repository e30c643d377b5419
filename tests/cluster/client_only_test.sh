#!/usr/bin/env bash
# A client-only node (serve = false) reads from the cluster and owns nothing: every
# block it needs comes from the serving members, it never reads the origin, and it
# is in nobody's placement.
source "$(dirname "$0")/lib.sh"

CL_CLIENT_ONLY="3" cluster_up 3
total=$(gen_dataset "$T/data" 32)
md5_ref "$T/data" "$T/ref.json"
for j in 1 2; do wait_member 3 "n$j" true 20 || fail "client-only node 3 does not see n$j"; done

start_reader 3 1 0 client
wait_reader client "$READER_PID"
check_alive
[ "$(node_stat 3 bytes_origin)" -eq 0 ] || fail "the client-only node read $(node_stat 3 bytes_origin) bytes from the origin"
[ "$(node_stat 3 bytes_peer)" -ge "$total" ] || fail "the client-only node got $(node_stat 3 bytes_peer) bytes from peers for a $total-byte dataset"
origin=$(sum_stat bytes_origin)
[ $((origin * 100)) -le $((total * 102)) ] || fail "origin read $origin bytes for $total"
ring=$(node_ring_json 3)
echo "$ring" | grep -q '"serving": false' || fail "node 3 does not say it is client-only: $ring"
echo "$ring" | grep -q '"id": "n3"' && fail "the client-only node is a member of its own ring: $ring"
for i in 1 2; do
  node_ring_json "$i" | grep -q '"id": "n3"' && fail "node $i counts the client-only node as a member"
done
note "client only ok: node 3 got $(node_stat 3 bytes_peer) bytes from peers, 0 from the origin"
