#!/usr/bin/env bash
# A dataset file rewritten through the shim is never served stale, even when the
# rewrite keeps its size and lands within the same mtime tick.
source "$(dirname "$0")/lib.sh"
write_config 64MiB
"$PY" -c "open('$T/data/f.bin','wb').write(b'A'*300000)"
start_agent
[ "$(shim cat "$T/data/f.bin" | md5sum)" = "$(md5sum < "$T/data/f.bin")" ] || fail "first read"
[ "$(shim cat "$T/data/f.bin" | md5sum)" = "$(md5sum < "$T/data/f.bin")" ] || fail "cached read"
# Same size, mtime forced back to the old value: the file key does not change.
old_mtime=$(stat -c %y "$T/data/f.bin")
shim "$PY" -c "open('$T/data/f.bin','r+b').write(b'B'*300000)"
touch -d "$old_mtime" "$T/data/f.bin"
[ "$(counter invalidations)" -ge 1 ] || fail "the write-open did not invalidate"
[ "$(shim cat "$T/data/f.bin" | md5sum)" = "$(md5sum < "$T/data/f.bin")" ] || fail "stale bytes served after a same-size rewrite"
echo "invalidate: ok"
