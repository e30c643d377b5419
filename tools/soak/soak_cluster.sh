#!/usr/bin/env bash
# Differential soak on a cluster (tests/cluster/lib.sh): 3 members reading one
# origin, soak workers under the shim on nodes 1 and 3, while member 2 (which
# owns a third of the blocks) is killed with -9 and restarted, and files are
# replaced at the origin with a new size. Every byte compared as in soak.sh.
#   DC_BUILD=build SOAK_OPS=1000000 tools/soak/soak_cluster.sh
set -euo pipefail
source "$(dirname "$0")/../../tests/cluster/lib.sh"
WORKER="$DC_BUILD/tools/soak/soak_worker"
OPS=${SOAK_OPS:-100000}
FILES=${SOAK_FILES:-32}
SEED=${SOAK_SEED:-$RANDOM}
CL_MEMORY=24MiB
CL_MEMBER_TIMEOUT=2s
cluster_up 3
"$WORKER" gen "$T/data" "$FILES" 1500000 "$SEED" || fail "gen"
note "soak-cluster: $OPS ops, workers on nodes 1 and 3, seed $SEED"

declare -a WPIDS=()
w=0
for node in 1 3 1 3; do
  w=$((w + 1))
  node_shim "$node" "$WORKER" run "$T/data" "$FILES" $((OPS / 4)) $((SEED * 100 + w)) \
    >"$T/w$w.out" 2>"$T/w$w.err" &
  WPIDS+=($!)
  EXTRA_PIDS+=($!)
done
running() {
  for p in "${WPIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
replaced=0 kills=0 tick=0
while running; do
  sleep 0.2
  tick=$((tick + 1))
  "$WORKER" replace "$T/data" "$FILES" $((SEED + tick)) 1 0 && replaced=$((replaced + 1))
  if [ $((tick % 20)) -eq 0 ]; then
    if node_alive 2; then node_kill 2; kills=$((kills + 1)); else node_start 2; fi
  fi
done
node_alive 2 || node_start 2
status=0
for p in "${WPIDS[@]}"; do wait "$p" || status=1; done
cat "$T"/w*.err >&2
check_alive
"$PY" - "$T" "$replaced" "$kills" <<'EOP'
import glob, sys
t = {"ops": 0, "bytes": 0, "mismatches": 0, "errors": 0}
for f in glob.glob(sys.argv[1] + "/w*.out"):
    for line in open(f):
        w = line.split()
        if w and w[0] == "soak:":
            for k in t:
                t[k] += int(w[w.index(k) + 1])
print(f"soak-cluster: ops {t['ops']} bytes {t['bytes']} mismatches {t['mismatches']} errors {t['errors']}"
      f" (files replaced {sys.argv[2]}, member kills {sys.argv[3]})")
EOP
note "peer fetches: node 1 $(node_stat 1 peer_fetches 2>/dev/null || echo ?), node 3 $(node_stat 3 peer_fetches 2>/dev/null || echo ?)"
[ "$status" -eq 0 ] || fail "mismatches or errors (see above; seed $SEED)"
