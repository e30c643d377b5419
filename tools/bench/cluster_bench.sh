#!/usr/bin/env bash
# Cluster benchmark, in network namespaces on this machine (root), side by side in
# one run:
#   a. peer block fetch throughput: a client-only node reads a dataset that its
#      owner holds warm in its arena (every byte crosses the peer link), vs iperf3
#      over the same veth path; target >= 0.8x;
#   b. the serving agent's CPU seconds per GB served (utime+stime from /proc),
#      copy path (sendmsg from arena pages); target <= 0.25 core-s/GB.
#
#   sudo bash tools/bench/cluster_bench.sh          (BUILD=dir, default ./build)
#   DC_BENCH_MIB=512 to change the dataset size (default 1024).
# Reuses the namespace harness of tests/cluster/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DC_BUILD=$(cd "${BUILD:-./build}" && pwd)
command -v iperf3 >/dev/null || { echo "cluster_bench: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
MIB=${DC_BENCH_MIB:-1024}
export CL_MEMORY=$((MIB + 512))MiB
source tests/cluster/lib.sh

CL_CLIENT_ONLY="2" cluster_up 2
gen_dataset "$T/data" "$MIB" >/dev/null
total=$(du -cb $(find "$T/data" -type f) | tail -n1 | cut -f1)
wait_member 2 n1 true 20 || fail "node 2 does not see node 1"

# Warm the owner: node 1 reads everything once (from the origin, into its arena).
node_shim 1 sh -c "find '$T/data' -type f -exec cat {} + > /dev/null"

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
read_all_on_2() {
  local t0 t1
  t0=$(date +%s.%N)
  node_shim 2 sh -c "find '$T/data' -type f -exec cat {} + > /dev/null"
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{print $2 - $1}'
}

best=0 best_cpu=""
for rep in 1 2 3; do
  # Node 2 starts cold each time: restart it so its arena holds no copies.
  node_kill 2 && node_start 2 && wait_member 2 n1 true 20
  c0=$(cpu_of "${CL_PID[1]}")
  peer0=$(node_stat 2 bytes_peer)
  secs=$(read_all_on_2)
  c1=$(cpu_of "${CL_PID[1]}")
  peer=$(( $(node_stat 2 bytes_peer) - peer0 ))
  [ "$(node_stat 2 bytes_origin)" -eq 0 ] || fail "node 2 read the origin"
  mbs=$(echo "$peer $secs" | awk '{printf "%.0f", $1 / $2 / 1e6}')
  cpu_per_gb=$(echo "$c0 $c1 $hz $peer" | awk '{printf "%.3f", ($2 - $1) / $3 / ($4 / 1e9)}')
  note "rep $rep: $peer bytes from the peer in ${secs}s = $mbs MB/s; owner CPU $cpu_per_gb core-s/GB"
  if [ "$mbs" -gt "$best" ]; then best=$mbs; best_cpu=$cpu_per_gb; fi
done

# iperf3 over the same path (node 1 serves, node 2 sends... receives: -R).
node_exec 1 iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
sleep 0.5
iperf=$(node_exec 2 iperf3 -c "$(node_addr 1)" -p 5299 -t 5 -R -J | /usr/bin/python3 -c \
  "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 8e6))")
ratio=$(echo "$best $iperf" | awk '{printf "%.2f", $1 / $2}')
printf '\n%-34s %12s %12s %8s %s\n' metric dc iperf3 ratio target
printf '%-34s %12s %12s %8s %s\n' "peer fetch throughput (MB/s)" "$best" "$iperf" "$ratio" ">=0.8"
printf '%-34s %12s %12s %8s %s\n' "owner CPU per GB served (core-s)" "$best_cpu" "" "" "<=0.25"
awk -v r="$ratio" 'BEGIN{exit !(r >= 0.8)}' && v1=PASS || v1=MISS
awk -v c="$best_cpu" 'BEGIN{exit !(c <= 0.25)}' && v2=PASS || v2=MISS
echo "RESULT peer_fetch_vs_iperf3 ratio=$ratio target>=0.8 $v1"
echo "RESULT owner_cpu_per_gb core_s=$best_cpu target<=0.25 $v2 (copy path: sendmsg from arena pages)"
