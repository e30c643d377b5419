#!/usr/bin/env bash
# Sets up, builds, starts a single-node agent on the embedded default config
# (socket /run/dc/agent.sock, dataset "datasets" at /srv/datasets), generates a
# sample dataset of small files, reads it twice under the shim and prints the cold
# and warm times and `dcctl stats`.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
./tools/build.sh >/dev/null

BUILD=$PWD/build
SOCK=/run/dc/agent.sock
DATA=/srv/datasets/dc-demo
PY=/usr/bin/python3
export DC_SOCKET=$SOCK

agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then
    kill "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if "$BUILD/tools/dcctl" stats >/dev/null 2>&1; then
  echo "demo: using the agent already running on $SOCK"
else
  echo "demo: starting dcagent on the embedded default config"
  "$BUILD/daemon/dcagent" 2> /tmp/dc-demo-agent.log &
  agent_pid=$!
  for _ in $(seq 1 100); do "$BUILD/tools/dcctl" stats >/dev/null 2>&1 && break; sleep 0.05; done
  "$BUILD/tools/dcctl" stats >/dev/null || { cat /tmp/dc-demo-agent.log; exit 1; }
fi

if [ ! -f "$DATA/.complete" ]; then
  echo "demo: generating a sample dataset in $DATA (2000 files of 20-200 KiB)"
  "$PY" - "$DATA" <<'EOP'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
for i in range(2000):
    d = os.path.join(root, f"class{i % 20:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"img{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(rng.randint(20 << 10, 200 << 10)))
open(os.path.join(root, ".complete"), "w").close()
EOP
fi

read_all() {
  LD_PRELOAD=${1:-} "$PY" - "$DATA" <<'EOP'
import hashlib, os, sys, time
root = sys.argv[1]
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".bin"))
t = time.perf_counter()
h = hashlib.blake2b(digest_size=8)
n = 0
for p in paths:
    with open(p, "rb") as f:
        b = f.read()
    n += len(b)
    h.update(b[:64])
dt = time.perf_counter() - t
print(f"{len(paths)} files, {n / 2**20:.0f} MiB in {dt:.3f} s ({n / 2**20 / dt:.0f} MiB/s), digest {h.hexdigest()}")
EOP
}

sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "demo: (cannot drop the page cache; the cold pass may be warm)"
echo "native, cold page cache:    $(read_all)"
echo "native, warm page cache:    $(read_all)"
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
echo "shim, first pass (cold):    $(read_all "$BUILD/shim/libdcshim.so")"
echo "shim, second pass (warm):   $(read_all "$BUILD/shim/libdcshim.so")"
echo
"$BUILD/tools/dcctl" stats
