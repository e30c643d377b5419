#!/usr/bin/env bash
# File offsets stay right for sendfile, fork, exec and dup while the shim serves
# reads; run cold (misses) and warm (hits).
source "$(dirname "$0")/lib.sh"
write_config 64MiB
head -c 3000000 /dev/urandom > "$T/data/a.bin"
head -c 2500000 /dev/urandom > "$T/data/b.bin"
start_agent
shim "$DC_BUILD/tests/integration/dcoffsets" "$T/data/a.bin" "$T/data/b.bin" || fail "cold run"
shim "$DC_BUILD/tests/integration/dcoffsets" "$T/data/a.bin" "$T/data/b.bin" || fail "warm run"
[ "$(counter hit_reads)" -gt 0 ] || fail "the warm run was not served from the cache"
echo "offsets: ok"
