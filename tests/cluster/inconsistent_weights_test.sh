#!/usr/bin/env bash
# Inconsistent placement: two nodes configured with mismatched static weights
# (each gives the other weight 4 and itself 1), so each thinks the other owns most
# blocks, and for many blocks each asks the other. Three readers on each node read
# three subsets of the files, reader k on both nodes the same subset in the same
# order, all six released at once, cold: the same blocks are asked for from both
# sides at about the same time. Every byte must be right, the readers must finish within a
# bound, no fetch may wait on the other node's copy fill (which waits on ours):
# none is abandoned at its deadline, and none is left in flight afterwards.
source "$(dirname "$0")/lib.sh"

CL_MEMBER_TIMEOUT=3s
cluster_up 2

# Each node gives its peer weight 4 (itself 1): placements disagree.
for i in 1 2; do
  "$PY" - "$T/n$i/agent.toml" <<'EOP'
import sys
p = sys.argv[1]
lines = open(p).read().splitlines()
out = []
for l in lines:
    out.append(l)
    if l.startswith('address = '):
        out.append('weight = 4.0')
open(p, 'w').write('\n'.join(out) + '\n')
EOP
  node_set_cluster_option "$i" fetch_timeout '"3s"'
  node_kill "$i"
done
for i in 1 2; do node_start "$i"; done
for i in 1 2; do
  j=$((3 - i))
  wait_member "$i" "n$j" true 20 || true
done

# peers_field I NAME: NAME of node I's only peer, from `dcctl peers --json`.
peers_field() {
  "$DCCTL" --socket "${CL_SOCK[$1]}" peers --json | "$PY" -c 'import json,sys
print(json.load(sys.stdin)["peers"][0][sys.argv[1]])' "$2"
}

# A shaped link with a deep queue: requests wait behind replies, so the two
# sides' requests for one block cross more often.
for i in 1 2; do link_shape "$i" 200mbit 256kb 50ms; done
# Rounds of fresh (cold) files: each round is another chance for requests to cross.
for round in 1 2 3; do
  total=0
  for k in 1 2 3; do
    total=$((total + $(gen_dataset "$T/data/$round/s$k" 12 "$round$k")))
    md5_ref "$T/data/$round/s$k" "$T/ref$round$k.json"
  done
  note "round $round: $total bytes in $(find "$T/data/$round" -type f | wc -l) files"
  declare -A rpid=()
  for i in 1 2; do
    for k in 1 2 3; do
      node_shim "$i" bash -c 'while [ ! -e "$1" ]; do sleep 0.005; done; shift; exec "$@"' _ "$T/go$round" \
        "$PY" "$T/reader.py" "$T/data/$round/s$k" "$T/ref$round$k.json" "$T/r$round$i$k.progress" 1 0 > "$T/r$round$i$k.log" 2>&1 &
      rpid[$i$k]=$!
      EXTRA_PIDS+=($!)
    done
  done
  sleep 1
  start=$SECONDS
  touch "$T/go$round"
  # A wait cycle holds reads until the shim's own timeout, block after block (the
  # two readers of a pair then stay in step, and meet again on the next block).
  for r in "${!rpid[@]}"; do
    while kill -0 "${rpid[$r]}" 2>/dev/null; do
      [ $((SECONDS - start)) -le 45 ] || fail "reader $r still reading after 45 s (progress $(reader_progress "r$round$r"))"
      sleep 0.2
    done
  done
  for r in "${!rpid[@]}"; do wait_reader "r$round$r" "${rpid[$r]}"; done
  took=$((SECONDS - start))
  check_alive
  note "round $round: readers done in ${took}s; peer fetches $(sum_stat peer_fetches), refused as not owner $(sum_stat peer_requests_not_owner), abandoned at the deadline $(sum_stat peer_fetch_timeouts)"
  [ "$took" -le 45 ] || fail "readers took ${took}s (a fetch waited on a fetch)"
  [ "$(sum_stat peer_fetches)" -gt 0 ] || fail "no peer fetch at all: the test tests nothing"
  # Nothing still waits: within a tick of the deadline every fetch was answered.
  for i in 1 2; do
    end=$((SECONDS + 5))
    while [ "$(peers_field "$i" in_flight)" -ne 0 ]; do
      [ $SECONDS -lt $end ] || fail "node $i: $(peers_field "$i" in_flight) fetch(es) still in flight after the readers finished"
      sleep 0.2
    done
  done
  [ "$(sum_stat peer_fetch_timeouts)" -eq 0 ] ||
    fail "$(sum_stat peer_fetch_timeouts) fetch(es) waited until their deadline (a wait cycle between the nodes' fills)"
  [ "$(sum_stat peer_crc_errors)" -eq 0 ] || fail "CRC errors on a local link"
done
note "inconsistent weights ok"
