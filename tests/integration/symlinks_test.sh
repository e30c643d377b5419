#!/usr/bin/env bash
# Symbolic links inside a dataset. The shim names a file by the absolute path the
# application opened when that path looks canonical (no kernel lookup); the agent
# opens no symbolic link below a root, so a path through one fails its first fetch
# and the shim re-keys the file by its canonical path. Checks: every spelling reads
# the right bytes, cold and warm; each real file leaves the origin exactly once
# (links add no second copy); a link out of the root is read natively, never by
# the agent.
source "$(dirname "$0")/lib.sh"
write_config 64MiB
mkdir -p "$T/data/real/sub"
head -c 3000000 /dev/urandom > "$T/data/real/sub/a.bin"
head -c 2000000 /dev/urandom > "$T/data/real/b.bin"
head -c 100000 /dev/urandom > "$T/outside.bin"
ln -s real "$T/data/linkdir"               # a directory link inside the root
ln -s real/b.bin "$T/data/link.bin"        # a file link inside the root
ln -s "$T/outside.bin" "$T/data/out.bin"   # a link out of the root
start_agent

paths=(real/sub/a.bin linkdir/sub/a.bin real/b.bin link.bin linkdir/b.bin out.bin)
read_all() {  # [launcher...]: each path three times in one process, as a training loop would
  "$@" "$PY" - "$T/data" "${paths[@]}" <<'PYEOF'
import hashlib, sys
root = sys.argv[1]
for rel in sys.argv[2:]:
    sums = set()
    for _ in range(3):
        with open(f"{root}/{rel}", "rb") as f:
            sums.add(hashlib.md5(f.read()).hexdigest())
    print(rel, *sorted(sums))
PYEOF
}
want=$(read_all)
[ "$(echo "$want" | wc -l)" -eq 6 ] || fail "native reference incomplete: $want"
for pass in 1 2; do
  got=$(read_all env LD_PRELOAD="$SHIM")
  [ "$got" = "$want" ] || fail "pass $pass read other bytes:\n$got\nwant:\n$want"
  for p in linkdir/sub/a.bin link.bin; do
    [ "$(shim cat "$T/data/$p" | md5sum)" = "$(md5sum < "$T/data/$p")" ] || fail "cat $p (pass $pass) differs"
  done
done
# Through a link only, in a fresh process: the first open misses its fetch and
# re-keys; the next opens (same directory: asked of the kernel at once) are hits.
h0=$(counter hit_reads)
paths=(linkdir/sub/a.bin)
got=$(read_all env LD_PRELOAD="$SHIM")
[ "$got" = "$(read_all)" ] || fail "linkdir/sub/a.bin read other bytes"
[ $(( $(counter hit_reads) - h0 )) -ge 2 ] || fail "reads through a directory link were not served after re-keying"
hits=$(counter hit_reads)
origin=$(counter bytes_origin)
[ "$hits" -gt 0 ] || fail "nothing was served from the cache"
[ "$origin" -eq 5000000 ] || fail "origin read $origin bytes, want exactly 5000000 (each real file once; never the outside file)"
echo "symlinks: ok (hit_reads=$hits, bytes_origin=$origin)"
