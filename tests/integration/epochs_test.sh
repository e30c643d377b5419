#!/usr/bin/env bash
# The training workload end to end: a dataset of image-sized files twice the size
# of the cache, read whole by Debian's python3 under the shim, in a new random
# order each epoch. From the second epoch on, the share of bytes served from the
# cache must stay >= 0.45 (the bound is 0.5; LRU-like behaviour gives ~0.15).
# File sizes are whole 64 KiB pages so "twice the cache" holds in pages too: the
# arena stores whole pages, and files of arbitrary size waste part of their last
# page (see docs/architecture.md).
source "$(dirname "$0")/lib.sh"
write_config 32MiB
"$PY" - "$T/data" <<'EOP'
import os, random, sys
rng = random.Random(5)
pages = 0
i = 0
while pages < 1024:                      # 1024 pages of 64 KiB = 64 MiB, 2x the cache
    n = rng.choice((1, 2, 2, 3))
    with open(os.path.join(sys.argv[1], f"img{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(n * 65536))
    pages += n
    i += 1
EOP
start_agent

"$PY" - "$T/data" "$DCCTL" <<'EOP' || fail "epoch hit ratio below 0.45"
import json, os, random, subprocess, sys
root, dcctl = sys.argv[1], sys.argv[2]
paths = sorted(os.path.join(root, f) for f in os.listdir(root))
def stats():
    return json.loads(subprocess.run([dcctl, "stats", "--json"], capture_output=True, text=True, check=True).stdout)
rng = random.Random(42)
env = dict(os.environ, LD_PRELOAD=os.environ["SHIM"])
reader = "import sys\nfor p in sys.stdin.read().split():\n    open(p,'rb').read()\n"
ratios = []
for epoch in range(6):
    order = paths[:]
    rng.shuffle(order)
    before = stats()
    subprocess.run([sys.executable, "-c", reader], input="\n".join(order), text=True, env=env, check=True)
    after = stats()
    hit = after["bytes_hit"] - before["bytes_hit"]
    total = hit + (after["bytes_miss"] - before["bytes_miss"]) + (after["bytes_fallback"] - before["bytes_fallback"])
    ratios.append(hit / total)
    print(f"epoch {epoch + 1}: hit ratio {hit / total:.3f}", file=sys.stderr)
steady = sum(ratios[1:]) / len(ratios[1:])
print(f"steady hit ratio {steady:.3f} (epochs 2-6)", file=sys.stderr)
sys.exit(0 if steady >= 0.45 and min(ratios[1:]) >= 0.42 else 1)
EOP
echo "epochs: ok"
