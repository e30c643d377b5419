#!/usr/bin/env bash
# Membership from a real etcd-server (started by the harness in the hub namespace):
# three agents with no static peers find each other through etcd leases, read a
# dataset cold with correct bytes and about one origin read in all; a member
# killed with -9 leaves the member list when its lease expires and comes back
# when restarted.
source "$(dirname "$0")/lib.sh"

CL_MEMBERSHIP=etcd cluster_up 3
total=$(gen_dataset "$T/data" 48)
md5_ref "$T/data" "$T/ref.json"
for i in 1 2 3; do
  for j in 1 2 3; do
    [ "$i" -eq "$j" ] || wait_member "$i" "n$j" true 30 || fail "node $i does not see n$j through etcd"
  done
done
grep -q "registered in etcd" "$(node_log 1)" || fail "node 1 did not register in etcd"

for i in 1 2 3; do start_reader "$i" 1 0 "cold$i"; pids[i]=$READER_PID; done
for i in 1 2 3; do wait_reader "cold$i" "${pids[i]}"; done
origin=$(sum_stat bytes_origin)
[ $((origin * 100)) -le $((total * 102)) ] || fail "origin read $origin bytes for a $total-byte dataset"
[ "$(node_stat 1 bytes_peer)" -gt 0 ] || fail "node 1 received nothing from its peers"

node_kill 2
wait_member 1 n2 false 30 || fail "n2 did not leave node 1's ring after kill -9"
node_ring_json 1 | grep -q '"id": "n2"' && note "n2 still listed (placement excludes it: not live)"
node_start 2
wait_member 1 n2 true 30 || fail "n2 did not rejoin node 1's ring"
wait_member 2 n1 true 30 || fail "the restarted n2 does not see n1"
start_reader 2 1 0 after
wait_reader after "$READER_PID"
check_alive
note "etcd membership ok: origin $origin bytes for $total"
