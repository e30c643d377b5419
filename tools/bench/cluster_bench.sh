#!/usr/bin/env bash
# Cluster benchmark, in network namespaces on this machine (root). One run measures,
# side by side, for each peer send path (cluster.send = copy, zerocopy, sendfile):
#   a. peer block fetch throughput: a client-only node reads a dataset that its
#      owner holds warm in its arena (every byte crosses the peer link, 1 MiB
#      blocks, many in flight), vs iperf3 over the same veth path; target >= 0.8x;
#   b. the serving agent's CPU seconds per GB served (utime + stime from /proc,
#      split), its send syscalls per block, and what MSG_ZEROCOPY completions said
#      (copied by the kernel or not); target <= 0.25 core-s/GB. iperf3's own sender
#      CPU per GB is printed as the floor of a copying sender on this path.
# This is the measurement behind the default of cluster.send: keep it.
#
#   sudo bash tools/bench/cluster_bench.sh          (BUILD=dir, default ./build)
#   DC_BENCH_MIB=512 to change the dataset size (default 1024), DC_BENCH_REPS
#   (default 3; the best rep of each path is reported), DC_BENCH_PATHS to choose
#   paths (default "copy zerocopy sendfile").
# Reuses the namespace harness of tests/cluster/lib.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DC_BUILD=$(cd "${BUILD:-./build}" && pwd)
command -v iperf3 >/dev/null || { echo "cluster_bench: needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
MIB=${DC_BENCH_MIB:-1024}
REPS=${DC_BENCH_REPS:-3}
PATHS=${DC_BENCH_PATHS:-copy zerocopy sendfile}
export CL_MEMORY=$((MIB + 512))MiB
source tests/cluster/lib.sh

CL_CLIENT_ONLY="2" cluster_up 2
gen_dataset "$T/data" "$MIB" >/dev/null
wait_member 2 n1 true 20 || fail "node 2 does not see node 1"

hz=$(getconf CLK_TCK)
ticks_of() { awk '{print $14, $15}' "/proc/$1/stat"; }  # utime stime
read_all_on_2() {
  local t0 t1
  t0=$(date +%s.%N)
  node_shim 2 sh -c "find '$T/data' -type f -exec cat {} + > /dev/null"
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{print $2 - $1}'
}

# iperf3 over the same path (node 1 sends, node 2 receives: -R), with its CPU.
iperf_run() {
  node_exec 1 iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
  EXTRA_PIDS+=($!)
  sleep 0.5
  node_exec 2 iperf3 -c "$(node_addr 1)" -p 5299 -t 5 -R -J | "$PY" -c '
import json, sys
d = json.load(sys.stdin)["end"]
mbs = d["sum_received"]["bits_per_second"] / 8e6
cpu = d["cpu_utilization_percent"]["remote_total"] / 100  # the sender (server) process
print(round(mbs), "%.3f" % (cpu / (mbs / 1000)))'
}
declare -A R_MBS R_CPU R_USR R_SYS R_SC R_ZC R_IPERF
for path in $PATHS; do
  # iperf3 next to each path: on a shared machine the load drifts within a run.
  read -r iperf iperf_cpu < <(iperf_run)
  R_IPERF[$path]=$iperf
  note "iperf3 before $path: $iperf MB/s, sender $iperf_cpu core-s/GB"
  # The owner runs with this send path; it is warmed anew (reads the origin once).
  CL_SEND=$path
  node_kill 1
  cl_write_config 1
  node_start 1
  node_shim 1 sh -c "find '$T/data' -type f -exec cat {} + > /dev/null"
  best=0
  for ((rep = 1; rep <= REPS; rep++)); do
    # Node 2 starts cold each time: restart it so its arena holds no copies.
    node_kill 2 && node_start 2 && wait_member 2 n1 true 20 || fail "node 2 does not see node 1"
    read -r u0 s0 < <(ticks_of "${CL_PID[1]}")
    peer0=$(node_stat 2 bytes_peer)
    sc0=$(node_stat 1 peer_send_syscalls); req0=$(node_stat 1 peer_requests_served)
    zc0=$(node_stat 1 peer_zc_calls); zcc0=$(node_stat 1 peer_zc_copied)
    secs=$(read_all_on_2)
    read -r u1 s1 < <(ticks_of "${CL_PID[1]}")
    peer=$(($(node_stat 2 bytes_peer) - peer0))
    [ "$(node_stat 2 bytes_origin)" -eq 0 ] || fail "node 2 read the origin"
    [ "$(node_stat 2 peer_crc_errors)" -eq 0 ] || fail "CRC errors on path $path"
    sc=$(($(node_stat 1 peer_send_syscalls) - sc0)); req=$(($(node_stat 1 peer_requests_served) - req0))
    zc=$(($(node_stat 1 peer_zc_calls) - zc0)); zcc=$(($(node_stat 1 peer_zc_copied) - zcc0))
    mbs=$(echo "$peer $secs" | awk '{printf "%.0f", $1 / $2 / 1e6}')
    gb=$(echo "$peer" | awk '{print $1 / 1e9}')
    usr=$(echo "$u0 $u1 $hz $gb" | awk '{printf "%.3f", ($2 - $1) / $3 / $4}')
    sys=$(echo "$s0 $s1 $hz $gb" | awk '{printf "%.3f", ($2 - $1) / $3 / $4}')
    cpu=$(echo "$usr $sys" | awk '{printf "%.3f", $1 + $2}')
    per=$(echo "$sc $req" | awk '{printf "%.1f", $2 ? $1 / $2 : 0}')
    note "$path rep $rep: $peer bytes in ${secs}s = $mbs MB/s; owner CPU $cpu core-s/GB (user $usr, sys $sys); $per send syscalls per block; zerocopy calls $zc, reported copied $zcc"
    if [ "$mbs" -gt "$best" ]; then
      best=$mbs
      R_MBS[$path]=$mbs R_CPU[$path]=$cpu R_USR[$path]=$usr R_SYS[$path]=$sys R_SC[$path]=$per
      R_ZC[$path]="$zcc/$zc"
    fi
  done
done

printf '\n%-10s %9s %7s %8s %11s %8s %8s %9s %10s\n' path "MB/s" iperf3 "ratio" "core-s/GB" user sys "sc/block" "zc copied"
printf '%-10s %9s %7s %8s %11s %8s %8s %9s %10s\n' iperf3 "$iperf" "" "" "$iperf_cpu" "" "" "" "(sender)"
for path in $PATHS; do
  iperf=${R_IPERF[$path]}
  ratio=$(echo "${R_MBS[$path]} $iperf" | awk '{printf "%.2f", $1 / $2}')
  printf '%-10s %9s %7s %8s %11s %8s %8s %9s %10s\n' "$path" "${R_MBS[$path]}" "$iperf" "$ratio" "${R_CPU[$path]}" \
    "${R_USR[$path]}" "${R_SYS[$path]}" "${R_SC[$path]}" "$([ "$path" = zerocopy ] && echo "${R_ZC[$path]}" || echo -)"
done
echo
for path in $PATHS; do
  iperf=${R_IPERF[$path]}
  ratio=$(echo "${R_MBS[$path]} $iperf" | awk '{printf "%.2f", $1 / $2}')
  awk -v r="$ratio" 'BEGIN{exit !(r >= 0.8)}' && v1=PASS || v1=MISS
  awk -v c="${R_CPU[$path]}" 'BEGIN{exit !(c <= 0.25)}' && v2=PASS || v2=MISS
  vs=$(echo "${R_CPU[$path]} ${R_CPU[copy]:-${R_CPU[$path]}}" | awk '{printf "%.2f", $1 / $2}')
  echo "RESULT peer_fetch_vs_iperf3 path=$path mbs=${R_MBS[$path]} iperf3=$iperf ratio=$ratio target>=0.8 $v1"
  echo "RESULT owner_cpu_per_gb path=$path core_s=${R_CPU[$path]} vs_copy=$vs target<=0.25 $v2"
done
