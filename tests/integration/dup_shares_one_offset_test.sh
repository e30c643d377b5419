#!/usr/bin/env bash
# Descriptors that share one open file description (dup, dup2, dup3, F_DUPFD,
# F_DUPFD_CLOEXEC, SCM_RIGHTS, fork) share its offset under concurrency as the
# kernel's do: two readers of a 64 MiB file through two such descriptors, 4 KiB
# read()s each, get every word of the file exactly once between them, natively and
# under the shim, cold (misses) and warm (hits, which the warm pass must get).
# Regression: the shim's per-number lock let both readers read 15,641 blocks
# twice through fd and dup(fd).
source "$(dirname "$0")/lib.sh"
write_config 256MiB
# Every 8-byte word holds its own offset: a read says where it came from.
"$PY" -c 'import numpy as np, sys; np.arange(0, 64 << 20, 8, dtype="<u8").tofile(sys.argv[1])' "$T/data/words.bin"
start_agent
PROG="$DC_BUILD/tests/integration/dcdupshare"
MODES="dup dup_cloexec dup2 dup2_cloexec dup3 dupfd dupfd_cloexec four four_cloexec scm_rights scm_rights_cloexec fork fork_cloexec"
for m in $MODES; do "$PROG" "$T/data/words.bin" "$m" >/dev/null || fail "natively, $m: $("$PROG" "$T/data/words.bin" "$m")"; done
bad=0
for pass in cold warm; do
  if [ $pass = warm ]; then
    # Make the whole file resident (pread is served whatever shares the description).
    shim "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); [os.pread(fd, 1 << 20, o) for o in range(0, os.fstat(fd).st_size, 1 << 20)]' "$T/data/words.bin"
  fi
  hits=$(counter hit_reads)
  for m in $MODES; do
    if out=$(shim "$PROG" "$T/data/words.bin" "$m"); then note "$pass $out"; else echo "WRONG ($pass) $out" >&2; bad=1; fi
  done
done
# Reads through two numbers of one description are served, not left to the kernel.
[ "$(counter hit_reads)" -gt "$hits" ] || fail "the warm pass was not served from the cache"

[ $bad = 0 ] || fail "under the shim, some readers sharing a description got wrong words (above)"
shim "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.pread(fd, 1 << 20, 0)' "$T/data/words.bin"
[ "$(counter hit_reads)" -gt 0 ] || fail "nothing was served from the cache: the warm pass was not warm"
# Once a close leaves the description one number, read() of it is served again.
before=$(counter hit_reads)
out=$(shim "$PROG" "$T/data/words.bin" dup2_close) || fail "under the shim, $out"
[ "$(counter hit_reads)" -gt "$before" ] || fail "dup2 then close: reads of the last number were not served"
before=$(counter hit_reads)
out=$(shim "$PROG" "$T/data/words.bin" dup2_over) || fail "under the shim, $out"
[ "$(counter hit_reads)" -gt "$before" ] || fail "dup2 over the dup: reads of the first number were not served"
echo "dup_shares_one_offset: ok"
