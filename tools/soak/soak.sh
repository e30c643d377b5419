#!/usr/bin/env bash
# Differential soak: random reads (pread/read/readv/preadv/lseek/dup/fork/exec)
# by SOAK_WORKERS processes under the shim against a real agent, every byte
# compared with the version of the file each descriptor has open
# (tools/soak/soak_worker.cc). Meanwhile, per SOAK_MODES (space separated):
#   replace     files replaced at the origin by rename, with a new size
#   same_stat   ... keeping size and mtime (cp -p, rsync -a, tar -x, touch -r)
#   restart     the agent killed (SIGKILL or SIGTERM) and started again
# Prints ops, bytes, mismatches and errors; exit 0 only if both are 0.
#   DC_BUILD=build SOAK_OPS=1000000 tools/soak/soak.sh
set -euo pipefail
source "$(dirname "$0")/../../tests/integration/lib.sh"
WORKER="$DC_BUILD/tools/soak/soak_worker"
OPS=${SOAK_OPS:-100000}
WORKERS=${SOAK_WORKERS:-4}
MODES=${SOAK_MODES-replace same_stat restart}
FILES=${SOAK_FILES:-32}
SEED=${SOAK_SEED:-$RANDOM}
has_mode() { [[ " $MODES " == *" $1 "* ]]; }

# A small arena with small blocks: many blocks per file, evictions all along.
write_config 24MiB 256KiB 64KiB
"$WORKER" gen "$T/data" "$FILES" 1500000 "$SEED" || fail "gen"
start_agent
note "soak: $OPS ops, $WORKERS workers, modes '$MODES', seed $SEED"

declare -a WPIDS=()
for w in $(seq 1 "$WORKERS"); do
  shim "$WORKER" run "$T/data" "$FILES" $((OPS / WORKERS)) $((SEED * 100 + w)) >"$T/w$w.out" 2>"$T/w$w.err" &
  WPIDS+=($!)
  EXTRA_PIDS+=($!)
done

running() {
  for p in "${WPIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
replaced=0 restarts=0 tick=0
while running; do
  sleep 0.2
  tick=$((tick + 1))
  if has_mode replace; then
    "$WORKER" replace "$T/data" "$FILES" $((SEED + tick)) 1 0 && replaced=$((replaced + 1))
  fi
  if has_mode same_stat && [ $((tick % 2)) -eq 0 ]; then
    "$WORKER" replace "$T/data" "$FILES" $((SEED + tick + 7)) 1 1 && replaced=$((replaced + 1))
  fi
  if has_mode restart && [ $((tick % 25)) -eq 0 ]; then
    if [ $((tick % 50)) -eq 0 ]; then kill -9 "$AGENT_PID"; else kill "$AGENT_PID"; fi
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
    rm -f "$DC_SOCKET"
    sleep 0.5   # a window with no agent: reads fall back to the origin
    start_agent
    restarts=$((restarts + 1))
  fi
done

status=0
for w in $(seq 1 "$WORKERS"); do
  wait "${WPIDS[$((w - 1))]}" || status=1
done
cat "$T"/w*.err >&2
agent_alive || fail "the agent died on its own"
# A soak the shim did not serve would compare the kernel with itself.
served=$(( $(counter hit_reads) + $(counter miss_reads) ))
note "soak: the last agent served $served reads (hit_reads $(counter hit_reads), miss_reads $(counter miss_reads))"
if ! has_mode restart && [ "$served" -eq 0 ]; then fail "the shim served no read from the cache"; fi
"$PY" - "$T" "$replaced" "$restarts" <<'EOP'
import glob, sys
t = {"ops": 0, "bytes": 0, "mismatches": 0, "errors": 0}
for f in glob.glob(sys.argv[1] + "/w*.out"):
    for line in open(f):
        w = line.split()
        if w and w[0] == "soak:":
            for k in t:
                t[k] += int(w[w.index(k) + 1])
print(f"soak: ops {t['ops']} bytes {t['bytes']} mismatches {t['mismatches']} errors {t['errors']}"
      f" (files replaced {sys.argv[2]}, agent restarts {sys.argv[3]})")
EOP
[ "$status" -eq 0 ] || fail "mismatches or errors (see above; seed $SEED)"
