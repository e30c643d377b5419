#!/usr/bin/env bash
# Faults mid-epoch: readers keep getting every byte right, with no error, while a
# member is killed with -9 and restarted, and while a member is cut off the
# network and reconnected. If dcctl has `ring`, the members' views must follow.
source "$(dirname "$0")/lib.sh"

CL_MEMBER_TIMEOUT=2s
cluster_up 3
total=$(gen_dataset "$T/data" 32)
md5_ref "$T/data" "$T/ref.json"
rate=$((12 * 1024 * 1024))   # paced readers: an epoch lasts ~2.7 s, faults land inside one
note "dataset: $total bytes; readers paced at $rate bytes/s"

RING=1
node_ring_json 1 >/dev/null || { RING=0; note "dcctl has no ring subcommand: membership not checked"; }

# expect_member I ID true|false: node I's view of ID (when dcctl has ring).
expect_member() { [ $RING -eq 0 ] || wait_member "$1" "$2" "$3" 20; }

for i in 1 2 3; do for j in 1 2 3; do
  if [ "$i" -ne "$j" ]; then expect_member "$i" "n$j" true; fi
done; done
[ $RING -eq 1 ] || sleep 3

# 1. kill -9 node 2 in the middle of epoch 1 of a reader on node 1; restart it in
#    the middle of epoch 2.
start_reader 1 4 "$rate" kill1
r1=$READER_PID
wait_reader_at kill1 1 $((total * 4 / 10))
node_kill 2
note "node 2 killed at $(reader_progress kill1) (epoch bytes) of the reader on node 1"
expect_member 1 n2 false
expect_member 3 n2 false
wait_reader_at kill1 2 $((total / 2))
node_start 2
note "node 2 restarted at $(reader_progress kill1)"
expect_member 1 n2 true
expect_member 3 n2 true
expect_member 2 n1 true
wait_reader kill1 "$r1"
check_alive

# 2. cut node 3's link in the middle of an epoch of readers on nodes 1 and 2 (and
#    one on node 3, which must fall back to the origin on its own); reconnect.
start_reader 1 2 "$rate" cut1; c1=$READER_PID
start_reader 2 2 "$rate" cut2; c2=$READER_PID
start_reader 3 2 "$rate" cut3; c3=$READER_PID
wait_reader_at cut1 1 $((total * 4 / 10))
wait_reader_at cut2 1 $((total * 4 / 10))
link_down 3
note "node 3 cut off at $(reader_progress cut1) / $(reader_progress cut2)"
expect_member 1 n3 false
expect_member 2 n3 false
expect_member 3 n1 false
wait_reader cut1 "$c1"
wait_reader cut2 "$c2"
wait_reader cut3 "$c3"
check_alive
link_up 3
expect_member 1 n3 true
expect_member 2 n3 true
expect_member 3 n1 true
expect_member 3 n2 true

# 3. after the rejoin every node still serves every byte right.
for i in 1 2 3; do start_reader "$i" 1 0 "after$i"; pids[i]=$READER_PID; done
for i in 1 2 3; do wait_reader "after$i" "${pids[i]}"; done
check_alive
for i in 1 2 3; do
  note "node $i: bytes_origin $(node_stat "$i" bytes_origin), bytes_peer $(node_stat "$i" bytes_peer 2>/dev/null || echo '?')," \
    "peer_fetch_failures $(node_stat "$i" peer_fetch_failures 2>/dev/null || echo '?')"
done
note "faults ok"
