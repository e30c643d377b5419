#!/usr/bin/env bash
# The harness itself: three agents with cluster configs, each in its own network
# namespace. Needs nothing of the cluster feature beyond its config being accepted:
# every node must serve correct bytes on its own, whatever happens to the others.
source "$(dirname "$0")/lib.sh"

cluster_up 3
gen_dataset_total=$(gen_dataset "$T/data" 8)
md5_ref "$T/data" "$T/ref.json"
note "dataset: $gen_dataset_total bytes"

# Each agent answers on its own socket, and that socket lives in its node's
# namespace only (unix sockets are listed per network namespace).
for i in 1 2 3; do
  node_exec "$i" "$DCCTL" stats --json >/dev/null || fail "node $i: dcctl stats in its namespace failed"
  for j in 1 2 3; do
    if ip netns exec "${CL_NS[j]}" ss -xlH | grep -qF "${CL_SOCK[i]}"; then
      [ "$i" -eq "$j" ] || fail "node $i's socket is listening in node $j's namespace"
    else
      [ "$i" -ne "$j" ] || fail "node $i's socket is not listening in its own namespace"
    fi
  done
done

# The namespaces reach each other over the bridge, in both directions.
for i in 1 2 3; do
  for j in 1 2 3; do
    [ "$i" -eq "$j" ] && continue
    node_ping "$i" "$j" || fail "node $i cannot ping node $j ($(node_addr "$j"))"
  done
done

# check_file I FILE: node I reads FILE under the shim; bytes must match the origin.
check_file() {
  local want got
  want=$(md5sum < "$T/data/$2" | cut -d' ' -f1)
  got=$(node_shim "$1" cat "$T/data/$2" | md5sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || fail "node $1: $2 read wrong bytes under the shim ($got, want $want)"
}

# check_all I: node I reads the whole dataset under the shim, every byte right.
check_all() {
  local out
  out=$(node_shim "$1" "$PY" - "$T/data" "$T/ref.json" <<'EOP'
import hashlib, json, os, sys
root, ref = sys.argv[1], json.load(open(sys.argv[2]))
bad = [n for n in sorted(ref) if hashlib.md5(open(os.path.join(root, n), 'rb').read()).hexdigest() != ref[n]]
print(' '.join(bad[:5]) if bad else 'ok')
EOP
  ) || fail "node $1: reading the dataset under the shim failed"
  [ "$out" = ok ] || fail "node $1: wrong bytes in $out"
}

# A cold read on node 1 goes through node 1's agent, and only that one serves the
# reader (the others may fetch blocks they own for it, but count no client reads).
check_file 1 sub/f0009.bin
[ "$(node_stat 1 miss_reads)" -gt 0 ] || fail "node 1: the shim read did not reach node 1's agent"
[ "$(sum_stat bytes_origin)" -gt 0 ] || fail "no origin bytes counted after a cold read"
for i in 2 3; do
  for c in hit_reads miss_reads fallback_reads; do
    [ "$(node_stat "$i" $c)" -eq 0 ] || fail "node $i counted $c for a reader on node 1"
  done
done
check_file 1 sub/f0009.bin
[ "$(node_stat 1 hit_reads)" -gt 0 ] || fail "node 1: a warm read was not a hit"

for i in 1 2 3; do check_all "$i"; done
note "all nodes read the dataset right; origin bytes summed: $(sum_stat bytes_origin)"

# A node killed with -9 must not disturb the others.
node_kill 2
for i in 1 3; do check_all "$i"; done
check_file 1 f0008.bin
node_ping 1 3 || fail "node 1 cannot ping node 3 with node 2's agent dead"
check_alive
node_start 2
check_all 2
note "node 2 killed and restarted; nodes 1 and 3 served right meanwhile"

# A node cut off the network keeps serving its local readers; the others keep
# serving theirs; connectivity comes back with the link.
link_down 3
! node_ping 1 3 || fail "node 1 still reaches node 3 with its link down"
! node_ping 3 1 || fail "node 3 still reaches node 1 with its link down"
for i in 1 2 3; do check_all "$i"; done
check_alive
link_up 3
node_ping 1 3 || fail "node 1 cannot reach node 3 after link_up"
node_ping 3 2 || fail "node 3 cannot reach node 2 after link_up"
for i in 1 2 3; do check_file "$i" f0000.bin; check_file "$i" f0002.bin; done
check_alive

# throttle_origin is optional (a no-op where the blkio throttle is unavailable).
if throttle_origin 64M; then
  throttle_origin off || fail "throttle_origin off"
fi
note "smoke ok"
