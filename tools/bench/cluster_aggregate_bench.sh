#!/usr/bin/env bash
# Aggregate read bandwidth of a warm cluster whose links are each limited to
# 1 Gbit/s, in network namespaces on this machine (root).
#
#   sudo BUILD=build bash tools/bench/cluster_aggregate_bench.sh
#   DC_AGG_NODES=5           members (default 3)
#   DC_BENCH_MIB=1536        dataset size (default 1536)
#   DC_AGG_READERS=4         reader processes per node (default 4)
#   DC_AGG_REPS=3            timed passes after the verified one (default 3)
#   DC_LINK_RATE=1gbit DC_TBF_BURST=256kb DC_TBF_LATENCY=10ms   the shaping
#   DC_AGG_AGENT_NICE=-10    renice the members' agents (to tell CPU starvation from the rest)
#   DC_AGG_CC=cubic          TCP congestion control in the namespaces (default: the system's)
#   DC_AGG_COPIES=0.25       copies_share of the members
#
# What it measures. N serving members, each node's link shaped by tbf in both
# directions (lib.sh link_shape). One more, client-only, unshaped node first reads
# the whole dataset once: every block is then in its owner's arena (the owners read
# the origin) and in no other member's. Then every member reads the whole dataset
# at once (READERS processes each, started from one barrier, each node in its own
# order): 1/N of it is local, the rest it must pull from the owners over its link.
# The headline is the bytes the members received from peers per second, summed
# (bytes_peer; the time is from the barrier to the last reader's end), against the
# sum of the members' link rates, N x RATE. Bytes read from the local arena are
# reported separately (total MB/s): they do not cross a link and would only inflate
# the ratio. Copies: copies_share (DC_AGG_COPIES, default 0.25, set explicitly) is a
# FIFO a fraction of what a pass pulls (about 240 of 1025 MiB per member at the
# defaults), so a pass re-reading in the same order finds the copies of the last one
# gone before it reaches them; the report shows it (local bytes vs bytes owned). It
# must still hold what the readers have fetched ahead and not yet read, or blocks are
# fetched twice (0.05 with 8 readers and a 384 MiB set did that: 22% extra).
# Baselines in the same run: iperf3 between two shaped nodes (the shaping works)
# and iperf3 all-to-all (every member sends to every other at once: the pattern of
# the cache, the most TCP gets out of these links).
# Diagnosis printed per pass: fetches in flight per peer connection (dcctl peers,
# every 0.5 s), tbf drops, TCP retransmissions/timeouts/loss probes, the machine's
# CPU, and how long the agents ran and waited for a CPU (schedstat); with
# DC_KEEP_TMP=1, $T/<pass>/ss_n1.txt keeps node 1's `ss -tmi` 3 s into the pass.
# The first pass checks every byte (md5sum vs the origin, read natively); the
# timed passes use cat. Exit 0 when it ran (targets missed included), 1 on a setup
# failure or wrong bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DC_BUILD=$(cd "${BUILD:-./build}" && pwd)
for c in iperf3 tc md5sum; do
  command -v "$c" >/dev/null || { echo "cluster_aggregate_bench: needs $c" >&2; exit 1; }
done
N=${DC_AGG_NODES:-3}
MIB=${DC_BENCH_MIB:-1536}
READERS=${DC_AGG_READERS:-4}
REPS=${DC_AGG_REPS:-3}
RATE=${DC_LINK_RATE:-1gbit}
BURST=${DC_TBF_BURST:-256kb}
LATENCY=${DC_TBF_LATENCY:-10ms}
CC=${DC_AGG_CC:-}   # TCP congestion control in the namespaces; empty: the system's
AGENT_NICE=${DC_AGG_AGENT_NICE:-}   # renice the members' agents (a diagnosis; empty: no)
COPIES=${DC_AGG_COPIES:-0.25}
TARGET=0.95
[ "$N" -ge 2 ] || { echo "cluster_aggregate_bench: DC_AGG_NODES must be >= 2" >&2; exit 1; }
link_Bps=$(awk -v r="$RATE" 'BEGIN{
  if (r ~ /gbit$/) m = 1e9; else if (r ~ /mbit$/) m = 1e6; else if (r ~ /kbit$/) m = 1e3; else exit 1
  sub(/[gmk]bit$/, "", r); printf "%.0f", r * m / 8 }') ||
  { echo "cluster_aggregate_bench: DC_LINK_RATE must be Ngbit, Nmbit or Nkbit" >&2; exit 1; }
# Each member owns about MIB/N; room for the placement's imbalance on ~MIB blocks,
# the copies share and partly used last pages.
export CL_MEMORY=$(awk -v m="$MIB" -v n="$N" -v c="$COPIES" 'BEGIN{printf "%d", m / n * 1.3 / (1 - c) + 64}')MiB
W=$((N + 1))   # the warming node
export CL_CLIENT_ONLY="$W"
source tests/cluster/lib.sh

cluster_up "$W"
for ((i = 1; i <= W; i++)); do
  # Per namespace; sockets take it when created, so before the agents restart.
  [ -z "$CC" ] || node_exec "$i" sysctl -qw net.ipv4.tcp_congestion_control="$CC" ||
    fail "congestion control $CC refused (a namespace may only pick one of the host's net.ipv4.tcp_allowed_congestion_control)"
done
CC=$(node_exec 1 sysctl -n net.ipv4.tcp_congestion_control)
for ((i = 1; i <= N; i++)); do
  node_set_cluster_option "$i" copies_share "$COPIES"
  node_kill "$i"
  node_start "$i"
done
for ((i = 1; i <= W; i++)); do
  for ((j = 1; j <= N; j++)); do [ "$i" -eq "$j" ] || wait_member "$i" "n$j" true 30; done
done
if [ -n "$AGENT_NICE" ]; then
  for ((i = 1; i <= N; i++)); do renice -n "$AGENT_NICE" -p "${CL_PID[i]}" >/dev/null || fail "renice failed"; done
fi
for ((i = 1; i <= N; i++)); do link_shape "$i" "$RATE" "$BURST" "$LATENCY"; done
note "$N members + client-only warmer n$W; links of n1..n$N: tbf $RATE burst $BURST latency $LATENCY each way; TCP $CC; agents' nice ${AGENT_NICE:-0}; arena $CL_MEMORY, copies_share $COPIES; $READERS readers per member"

gen_dataset "$T/data" "$MIB" >/dev/null
(cd "$T/data" && find . -type f -printf '%P\n' | sort) > "$T/files"
nfiles=$(wc -l < "$T/files")
total=$(cd "$T/data" && xargs -d '\n' stat -c %s < "$T/files" | awk '{s += $1} END {print s}')
(cd "$T/data" && xargs -d '\n' md5sum -- < "$T/files" | sort -k2) > "$T/ref.md5"
note "dataset: $nfiles files, $total bytes; reference md5 read natively"

# --- baselines: iperf3 over the shaped links --------------------------------------
iperf_json_mbs() { "$PY" -c 'import json,sys
print("%.1f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 8e6))' "$1"; }
iperf_pair() {
  node_exec 1 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  EXTRA_PIDS+=($!)
  sleep 0.5
  node_exec 2 iperf3 -c "$(node_addr 1)" -p 5201 -t 5 -J > "$T/iperf_pair.json" || fail "iperf3 pair failed"
  iperf_json_mbs "$T/iperf_pair.json"
}
# Every ordered pair (i receives from j) at once: N(N-1) flows, each node sending
# N-1 and receiving N-1, as in a pass.
iperf_all_to_all() {
  local i j cps=()
  for ((i = 1; i <= N; i++)); do
    for ((j = 1; j <= N; j++)); do
      [ "$i" -eq "$j" ] && continue
      node_exec "$i" iperf3 -s -1 -p $((5300 + j)) >/dev/null 2>&1 &
      EXTRA_PIDS+=($!)
    done
  done
  sleep 0.5
  for ((i = 1; i <= N; i++)); do
    for ((j = 1; j <= N; j++)); do
      [ "$i" -eq "$j" ] && continue
      node_exec "$j" iperf3 -c "$(node_addr "$i")" -p $((5300 + j)) -t 6 -J > "$T/iperf_a2a_${i}_$j.json" &
      cps+=($!)
    done
  done
  for p in "${cps[@]}"; do wait "$p" || fail "iperf3 all-to-all flow failed"; done
  for f in "$T"/iperf_a2a_*.json; do iperf_json_mbs "$f"; done | awk '{s += $1} END {printf "%.1f", s}'
}
pair_mbs=$(iperf_pair)
a2a_mbs=$(iperf_all_to_all)
link_mbs=$(awk -v b="$link_Bps" 'BEGIN{printf "%.1f", b / 1e6}')
sum_link_mbs=$(awk -v b="$link_Bps" -v n="$N" 'BEGIN{printf "%.1f", n * b / 1e6}')
note "iperf3 n2 -> n1: $pair_mbs MB/s (link $link_mbs MB/s); all-to-all: $a2a_mbs MB/s summed (links $sum_link_mbs MB/s)"

# --- warm: the client-only node reads everything once ------------------------------
node_shim "$W" sh -c "cd '$T/data' && xargs -d '\n' -P 4 -n 64 cat -- < '$T/files' > /dev/null" ||
  fail "warming read on n$W failed"
declare -a OWNED=()
owned_sum=0
for ((i = 1; i <= N; i++)); do
  OWNED[i]=$(node_stat "$i" bytes_origin)
  owned_sum=$((owned_sum + OWNED[i]))
  [ "$(node_stat "$i" evictions)" -eq 0 ] || fail "n$i evicted blocks while warming: arena too small"
done
[ "$(node_stat "$W" bytes_origin)" -eq 0 ] || fail "the warmer read the origin itself (owners not reachable?)"
[ "$owned_sum" -ge "$total" ] || fail "owners read $owned_sum bytes from the origin, dataset is $total"
note "warm: owners read $owned_sum bytes from the origin ($(for ((i = 1; i <= N; i++)); do printf 'n%d %s ' "$i" "${OWNED[i]}"; done))"

# --- passes ---------------------------------------------------------------------------
cat > "$T/agg_reader.sh" <<'EOR'
# agg_reader.sh MODE LIST READY FIFO OUT END: in the dataset dir, announce READY,
# wait at the barrier (opening FIFO blocks until the bench opens it for writing),
# then read every file of LIST (md5sum to OUT, or cat), and write the end time.
mode=$1 list=$2 ready=$3 fifo=$4 out=$5 end=$6
mapfile -t files < "$list"
: > "$ready"
: < "$fifo"
if [ "$mode" = md5 ]; then md5sum -- "${files[@]}" > "$out"; else cat -- "${files[@]}" > /dev/null; fi
rc=$?
date +%s.%N > "$end"
exit $rc
EOR
# Samples every 0.5 s until STOP exists: time, then per member bytes_peer and the
# fetches in flight to its peers (summed over its connections).
cat > "$T/agg_monitor.py" <<'EOP'
import json, os, subprocess, sys, time
dcctl, out, stop, socks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def q(sock, what):
    return json.loads(subprocess.run([dcctl, '--socket', sock, what, '--json'], capture_output=True, check=True).stdout)
with open(out, 'w') as f:
    while not os.path.exists(stop):
        t = time.time()
        row = [t]
        for s in socks:
            row.append(q(s, 'stats')['bytes_peer'])
        for s in socks:
            row.append(sum(p['in_flight'] for p in q(s, 'peers')['peers']))
        f.write(' '.join(map(str, row)) + '\n')
        f.flush()
        time.sleep(max(0.0, 0.5 - (time.time() - t)))
EOP

# forget_pids PID...: drop reaped pids from EXTRA_PIDS, so the cleanup never
# signals a recycled one.
forget_pids() {
  local p keep=()
  for p in "${EXTRA_PIDS[@]}"; do [[ " $* " == *" $p "* ]] || keep+=("$p"); done
  EXTRA_PIDS=("${keep[@]}")
}
stat_all() {   # "bytes_peer bytes_origin peer_fetch_failures" of each member, one line each
  local i
  for ((i = 1; i <= N; i++)); do
    node_stats_json "$i" | "$PY" -c 'import json,sys; d = json.load(sys.stdin); print(d["bytes_peer"], d["bytes_origin"], d["peer_fetch_failures"])'
  done
}
# cpu_now: "busy_jiffies all_jiffies run_ns wait_ns": the machine's CPU (all
# tenants: this machine is shared), then the time our members' agent threads (one
# event loop each) ran and spent runnable waiting for a CPU (schedstat).
cpu_now() {
  local i r=0 w=0 a b
  for ((i = 1; i <= N; i++)); do
    read -r a b _ < "/proc/${CL_PID[i]}/schedstat"
    r=$((r + a)); w=$((w + b))
  done
  awk -v r="$r" -v w="$w" '/^cpu /{t = 0; for (k = 2; k <= NF; k++) t += $k; print t - $5 - $6, t, r, w; exit}' /proc/stat
}
# tcp_all: TCP loss recovery summed over the members' namespaces (each has its own
# counters): "retransmitted_segments timeouts tail_loss_probes".
tcp_all() {
  local i
  for ((i = 1; i <= N; i++)); do
    node_exec "$i" awk '/^Tcp: [0-9]/ {r = $13} /^TcpExt:/ {if (!h) {for (k = 2; k <= NF; k++) f[$k] = k; h = 1}
      else {t = $f["TCPTimeouts"]; p = $f["TCPLossProbes"]}} END {print r, t, p}' /proc/net/snmp /proc/net/netstat
  done | awk '{r += $1; t += $2; p += $3} END {print r, t, p}'
}
drops_all() { local i; for ((i = 1; i <= N; i++)); do link_shape_drops "$i"; done | awk '{s += $1 + $2} END {print s + 0}'; }

# run_pass NAME MODE: one pass, every member reading the whole dataset at once.
# Appends "name node peer_bytes origin_bytes secs peer_fetch_failures" lines to $T/passes.
run_pass() {
  local name=$1 mode=$2 i k pids=() rot
  local dir="$T/$name"
  mkdir -p "$dir"
  mkfifo "$dir/go"
  for ((i = 1; i <= N; i++)); do
    # Each node starts at its own place in the list (as shuffles would), so the
    # members do not all ask the same owner for the same block at once.
    rot=$(((i - 1) * nfiles / N))
    { tail -n +$((rot + 1)) "$T/files"; head -n "$rot" "$T/files"; } |
      awk -v d="$dir" -v i="$i" -v r="$READERS" '{print > (d "/n" i ".r" (NR % r) ".list")}'
    for ((k = 0; k < READERS; k++)); do
      node_shim "$i" bash -c "cd '$T/data' && exec bash '$T/agg_reader.sh' $mode '$dir/n$i.r$k.list' \
        '$dir/n$i.r$k.ready' '$dir/go' '$dir/n$i.r$k.md5' '$dir/n$i.r$k.end'" 2>"$dir/n$i.r$k.err" &
      pids+=($!)
      EXTRA_PIDS+=($!)
    done
  done
  for _ in $(seq 1 600); do
    [ "$(ls "$dir"/*.ready 2>/dev/null | wc -l)" -eq $((N * READERS)) ] && break
    sleep 0.05
  done
  [ "$(ls "$dir"/*.ready 2>/dev/null | wc -l)" -eq $((N * READERS)) ] || fail "$name: readers not ready after 30 s"
  stat_all > "$dir/before"
  local drops0 tcp0 socks=()
  drops0=$(drops_all)
  tcp0=$(tcp_all)
  for ((i = 1; i <= N; i++)); do socks+=("${CL_SOCK[i]}"); done
  "$PY" "$T/agg_monitor.py" "$DCCTL" "$dir/samples" "$dir/stop" "${socks[@]}" &
  local mon=$!
  EXTRA_PIDS+=("$mon")
  sleep 0.3   # every reader is blocked in open(FIFO) by now
  local t0 cpu0
  cpu0=$(cpu_now)
  t0=$(date +%s.%N)
  exec 9>"$dir/go"   # the barrier: releases every reader at once
  sleep 3
  node_exec 1 ss -tmin state established "( sport = :$CL_PORT or dport = :$CL_PORT )" > "$dir/ss_n1.txt" 2>&1 || true
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  echo "$cpu0 $(cpu_now)" | awk '{printf "%.3f %.2f %.2f\n", ($5 - $1) / ($6 - $2), ($7 - $3) / 1e9, ($8 - $4) / 1e9}' > "$dir/cpu"
  exec 9>&-
  : > "$dir/stop"
  wait "$mon" || true
  forget_pids "${pids[@]}" "$mon"
  [ $rc -eq 0 ] || fail "$name: a reader failed: $(cat "$dir"/*.err | tail -n 5)"
  stat_all > "$dir/after"
  echo "$t0" > "$dir/t0"
  echo $(($(drops_all) - drops0)) > "$dir/drops"
  echo "$tcp0 $(tcp_all)" | awk '{print $4 - $1, $5 - $2, $6 - $3}' > "$dir/tcp"
  if [ "$mode" = md5 ]; then
    for ((i = 1; i <= N; i++)); do
      # md5sum prints paths as given (relative); the reference was made the same way.
      cat "$dir"/n$i.r*.md5 | sort -k2 | cmp -s - <(sort -k2 "$T/ref.md5") ||
        fail "$name: node $i read wrong bytes (md5 differs from the origin): $(cat "$dir"/n$i.r*.md5 | sort -k2 | diff - "$T/ref.md5" | head -n 4)"
    done
    note "$name: every member's bytes match the origin (md5 of $nfiles files on each of $N nodes)"
  fi
  for ((i = 1; i <= N; i++)); do
    local b a e
    b=$(sed -n "${i}p" "$dir/before")
    a=$(sed -n "${i}p" "$dir/after")
    e=$(cat "$dir"/n$i.r*.end | sort -n | tail -n 1)
    echo "$name $i $b $a $t0 $e" | awk '{printf "%s %d %d %d %.3f %d\n", $1, $2, $6 - $3, $7 - $4, $10 - $9, $8 - $5}' >> "$T/passes"
  done
}

: > "$T/passes"
run_pass verify md5
for ((r = 1; r <= REPS; r++)); do run_pass "timed$r" cat; done

# --- report ---------------------------------------------------------------------------
"$PY" - "$T" "$N" "$total" "$link_Bps" "$pair_mbs" "$a2a_mbs" "$TARGET" "$REPS" "${OWNED[@]:1}" <<'EOP'
import os, statistics, sys
T, N, total, link, pair, a2a, target, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
owned = [int(x) for x in sys.argv[9:9 + N]]
rows = {}
for line in open(os.path.join(T, 'passes')):
    name, node, peer, origin, secs, failures = line.split()
    rows.setdefault(name, []).append((int(node), int(peer), int(origin), float(secs), int(failures)))
M = 1e6
print()
print(f'{"pass":8} {"node":>4} {"owned MB":>9} {"peer MB":>8} {"local MB":>8} {"origin MB":>9} {"secs":>6} {"peer MB/s":>9} {"total MB/s":>10}')
agg = {}
for name, rs in rows.items():
    wall = max(r[3] for r in rs)
    for node, peer, origin, secs, _ in rs:
        local = total - peer - origin
        print(f'{name:8} {"n%d" % node:>4} {owned[node - 1] / M:9.0f} {peer / M:8.0f} {local / M:8.0f} {origin / M:9.1f} {secs:6.2f} {peer / secs / M:9.1f} {total / secs / M:10.1f}')
    peer_sum = sum(r[1] for r in rs)
    origin_sum = sum(r[2] for r in rs)
    d = open(os.path.join(T, name, 'drops')).read().strip()
    busy, agent_run, agent_wait = open(os.path.join(T, name, 'cpu')).read().split()
    retrans, rtos, probes = open(os.path.join(T, name, 'tcp')).read().split()
    # Steady state: from 1 s after the barrier until the first member finishes.
    t0 = float(open(os.path.join(T, name, 't0')).read())
    first = t0 + min(r[3] for r in rs)
    smp = [list(map(float, l.split())) for l in open(os.path.join(T, name, 'samples')) if l.strip()]
    win = [s for s in smp if t0 + 1.0 <= s[0] <= first]
    steady = inflight = None
    if len(win) >= 2:
        steady = (sum(win[-1][1:1 + N]) - sum(win[0][1:1 + N])) / (win[-1][0] - win[0][0])
        inflight = statistics.mean(sum(s[1 + N:1 + 2 * N]) for s in win) / (N * (N - 1))
    agg[name] = (peer_sum / wall, N * total / wall, steady)
    print(f'{name:8} {"all":>4} {sum(owned) / M:9.0f} {peer_sum / M:8.0f} {(N * total - peer_sum - origin_sum) / M:8.0f} {origin_sum / M:9.1f} {wall:6.2f} {peer_sum / wall / M:9.1f} {N * total / wall / M:10.1f}'
          + (f'   steady {steady / M:.1f} MB/s, {inflight:.1f} fetches in flight per peer connection' if steady else '')
          + f', failed peer fetches {sum(r[4] for r in rs)}, tbf drops {d}, TCP retransmitted segments {retrans}, timeouts {rtos}, loss probes {probes}; machine CPU {float(busy) * 100:.0f}% busy (all tenants), members\' agents ran {agent_run} s, waited {agent_wait} s for a CPU')
timed = [agg[n] for n in agg if n.startswith('timed')]
med = statistics.median(a[0] for a in timed)
best = max(a[0] for a in timed)
med_total = statistics.median(a[1] for a in timed)
sum_link = N * link
ratio = med / sum_link
print()
print(f'links: {N} x {link / M:.1f} MB/s = {sum_link / M:.1f} MB/s; iperf3 one pair {pair:.1f} MB/s ({pair * M / link:.3f} of the link); '
      f'iperf3 all-to-all {a2a:.1f} MB/s ({a2a * M / sum_link:.3f} of the links)')
print(f'timed passes, peer MB/s summed: {", ".join("%.1f" % (a[0] / M) for a in timed)} (median {med / M:.1f}, best {best / M:.1f})')
print(f'RESULT link_shaping iperf3_pair_MBs={pair:.1f} link_MBs={link / M:.1f} ratio={pair * M / link:.3f}')
print(f'RESULT aggregate_peer_read nodes={N} MBs={med / M:.1f} link_sum_MBs={sum_link / M:.1f} ratio={ratio:.3f} target>={target} {"PASS" if ratio >= target else "MISS"}')
print(f'RESULT aggregate_peer_read_vs_iperf3_all_to_all ratio={med / (a2a * M):.3f} (iperf3 {a2a:.1f} MB/s)')
print(f'RESULT aggregate_total_read nodes={N} MBs={med_total / M:.1f} (peer + local arena; local bytes cross no link, not comparable to the link sum)')
EOP
