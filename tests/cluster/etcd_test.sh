#!/usr/bin/env bash
# Membership from a real etcd-server (started by the harness in the hub namespace):
# three agents with no static peers find each other through etcd leases, read a
# dataset cold with correct bytes and about one origin read in all; a member
# killed with -9 leaves the member list when its lease expires and comes back
# when restarted. Then the watch itself: agents watch the prefix (etcd counts
# their watchers, and no range reads happen while nothing changes); a key put or
# deleted by hand reaches every agent's peer list within about a second; a
# malformed entry is ignored; a revoked lease is replaced; and after etcd is
# killed and restarted on the same data dir, all members are back and changes
# flow again.
source "$(dirname "$0")/lib.sh"

# wait_listed I ID yes|no SECONDS: until node I's `dcctl peers --json` lists ID
# (or not); prints the milliseconds it took.
wait_listed() {
  local i=$1 id=$2 want=$3 secs=$4 t0 got
  t0=$(date +%s%N)
  while :; do
    got=no
    "$DCCTL" --socket "${CL_SOCK[i]}" peers --json | grep -q "\"id\": \"$id\"" && got=yes
    [ "$got" = "$want" ] && break
    [ $(($(date +%s%N) - t0)) -lt $((secs * 1000000000)) ] || fail "node $i: $id listed=$got, want $want after ${secs}s"
    sleep 0.02
  done
  echo $((($(date +%s%N) - t0) / 1000000))
}

# all_listed ID yes|no LIMIT_MS: every node lists ID (or not) within LIMIT_MS of
# now; the nodes are watched in parallel. Prints the slowest node's milliseconds
# (they include polling dcctl, ~30 ms a call on a busy box).
all_listed() {
  local id=$1 want=$2 limit=$3 i ms worst=0
  local -a w=()
  for i in 1 2 3; do
    wait_listed "$i" "$id" "$want" 10 > "$T/listed.$i" &
    w[i]=$!
  done
  for i in 1 2 3; do wait "${w[i]}" || fail "node $i: $id listed != $want after 10 s"; done
  for i in 1 2 3; do
    ms=$(cat "$T/listed.$i")
    [ "$ms" -gt "$worst" ] && worst=$ms
  done
  [ "$worst" -le "$limit" ] || fail "$id listed=$want on all nodes after $worst ms (want <= $limit ms; the lease TTL is 2 s)"
  echo "$worst"
}

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

# Watching, not polling: etcd holds a watcher per agent, and while nothing
# changes no agent reads the prefix (a 300 ms poll would be ~30 reads here).
watchers=$(etcd_call metric etcd_debugging_mvcc_watcher_total)
[ "$watchers" -ge 3 ] || fail "etcd has $watchers watchers, want one per agent (3)"
ranges0=$(etcd_call metric etcd_debugging_mvcc_range_total)
sleep 3
ranges1=$(etcd_call metric etcd_debugging_mvcc_range_total)
[ $((ranges1 - ranges0)) -le 3 ] || fail "$((ranges1 - ranges0)) range reads in 3 s of quiet: the agents poll"
note "etcd: $watchers watchers, $((ranges1 - ranges0)) range reads in 3 quiet seconds"

# A change reaches every agent far faster than the lease TTL (2 s).
etcd_call put /dc/members/ghost "$CL_NET.200:$CL_PORT 1"
ms_add=$(all_listed ghost yes 1000)
etcd_call del /dc/members/ghost
ms_del=$(all_listed ghost no 1000)
note "member change seen by all 3 agents: put $ms_add ms, delete $ms_del ms"

# A malformed entry is ignored (and said so); nobody lists it, all stay up.
etcd_call put /dc/members/bad "not an address"
etcd_call put /dc/members/ghost2 "$CL_NET.201:$CL_PORT 1"
all_listed ghost2 yes 1000 >/dev/null   # events are applied in order: "bad" was seen first
for i in 1 2 3; do
  "$DCCTL" --socket "${CL_SOCK[i]}" peers --json | grep -q '"id": "bad"' && fail "node $i lists the malformed entry"
  grep -q "malformed member entr" "$(node_log "$i")" || fail "node $i did not log the malformed entry"
  [ "$(node_stat "$i" etcd_bad_members)" -ge 1 ] || fail "node $i did not count the malformed entry"
  [ "$(node_stat "$i" etcd_watch_events)" -ge 4 ] || fail "node $i counted no watch events"
done
etcd_call del /dc/members/bad
etcd_call del /dc/members/ghost2
all_listed ghost2 no 1000 >/dev/null
check_alive

# A revoked lease (as if it had expired): n2's key goes; n2 grants a new lease
# and puts its key again, and the others still list it.
read -r lease_before _ < <(etcd_call get /dc/members/n2)
[ -n "$lease_before" ] || fail "no key for n2 in etcd"
regs=$(grep -c "registered in etcd" "$(node_log 2)")
etcd_call revoke "$lease_before"
for _ in $(seq 1 50); do
  read -r lease_now _ < <(etcd_call get /dc/members/n2) || lease_now=""
  [ -n "$lease_now" ] && [ "$lease_now" != "$lease_before" ] && break
  sleep 0.1
done
[ -n "$lease_now" ] && [ "$lease_now" != "$lease_before" ] || fail "n2 did not register again after its lease was revoked"
[ "$(grep -c "registered in etcd" "$(node_log 2)")" -gt "$regs" ] || fail "n2 did not log its new registration"
[ "$(node_stat 2 etcd_lease_grants)" -ge 2 ] || fail "n2 counts $(node_stat 2 etcd_lease_grants) lease grants, want 2"
wait_member 1 n2 true 10
wait_listed 3 n2 yes 10 >/dev/null

# etcd crashes and comes back on the same data dir: the agents keep their last
# member list meanwhile (peers stay live), then re-read, re-watch, and every
# member is registered again.
for i in 1 2 3; do watching[i]=$(grep -c "watching /dc/members/" "$(node_log "$i")"); done
cl_etcd_kill
sleep 3   # longer than the lease TTL
for i in 1 2 3; do
  for j in 1 2 3; do
    [ "$i" -eq "$j" ] || [ "$(ring_member_live "$i" "n$j")" = true ] || fail "node $i dropped n$j while etcd was down"
  done
done
check_alive
cl_etcd_start
for i in 1 2 3; do
  for _ in $(seq 1 100); do
    [ "$(grep -c "watching /dc/members/" "$(node_log "$i")")" -gt "${watching[i]}" ] && break
    sleep 0.1
  done
  [ "$(grep -c "watching /dc/members/" "$(node_log "$i")")" -gt "${watching[i]}" ] || fail "node $i did not watch again after etcd restarted"
  for _ in $(seq 1 50); do [ -n "$(etcd_call get "/dc/members/n$i")" ] && break; sleep 0.1; done
  [ -n "$(etcd_call get "/dc/members/n$i")" ] || fail "n$i is not registered after etcd restarted"
done
etcd_call put /dc/members/ghost3 "$CL_NET.202:$CL_PORT 1"
ms_after=$(all_listed ghost3 yes 1000)
etcd_call del /dc/members/ghost3
all_listed ghost3 no 1000 >/dev/null
for i in 1 2 3; do
  for j in 1 2 3; do [ "$i" -eq "$j" ] || wait_member "$i" "n$j" true 10; done
done
for i in 1 2 3; do
  [ "$(node_stat "$i" etcd_resyncs)" -ge 1 ] || fail "node $i counts no resync after the etcd restart"
  # The real etcd never sends anything malformed: a count here is a misread.
  [ "$(node_stat "$i" etcd_bad_responses)" -eq 0 ] || fail "node $i found $(node_stat "$i" etcd_bad_responses) bad answers from etcd"
done
start_reader 3 1 0 restarted
wait_reader restarted "$READER_PID"
check_alive
note "etcd membership ok: origin $origin bytes for $total; after the etcd restart a change took $ms_after ms"
