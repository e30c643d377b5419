#!/usr/bin/env bash
# Origin reads survive fd reuse: with one io_uring read in flight and only 16
# origin files open, hundreds of misses from 32 processes x 2 threads queue reads
# behind each other while the open-file LRU closes and reopens descriptors. A read
# must keep reading the file it was queued for (never another file that reused its
# descriptor number), and every fetch must be answered (none left for the shim's
# timeout: no file may take SLOW seconds, and no read may fall back to the file
# itself). 2,048 small files, every byte checked in every process, cold then warm.
# Time is bounded per file, not per round, so a loaded or sanitized build is not
# flaky; each round also has a generous overall bound.
source "$(dirname "$0")/lib.sh"
MANY="$DC_BUILD/tests/integration/dcmanyfiles"
NFILES=2048 PROCS=32 THREADS=2 SLOW=15 ROUND_LIMIT=120

write_config 256MiB 64KiB 4KiB
cat >> "$T/agent.toml" <<EOC
[origin]
io_depth = 1
EOC
sed -i 's/^\[cache\]$/[cache]\nmax_open_files = 16/' "$T/agent.toml"
"$MANY" gen "$T/data" $NFILES
start_agent

for round in cold warm; do
  start=$(date +%s)
  # Bounded: a round stuck behind lost fetches is a failure, not a hung suite.
  rc=0
  timeout $ROUND_LIMIT env LD_PRELOAD="$SHIM" "$MANY" check "$T/data" $NFILES $PROCS $THREADS $SLOW \
    > "$T/$round.out" 2> "$T/$round.err" || rc=$?
  elapsed=$(( $(date +%s) - start ))
  note "$round round: ${elapsed}s, exit $rc; $(cat "$T/$round.out")"
  if [ $rc -ne 0 ]; then
    head -n 20 "$T/$round.err" >&2
    [ $rc -ne 124 ] || fail "$round round did not finish in ${ROUND_LIMIT}s: fetches left unanswered"
    fail "$round round: $(grep -c MISMATCH "$T/$round.err" || true) mismatches, $(grep -c LENGTH "$T/$round.err" || true) wrong lengths (other files' bytes), $(grep -c SLOW "$T/$round.err" || true) files slower than ${SLOW}s, or errors"
  fi
done
! grep -q "origin read failed" "$T/agent.log" || fail "origin reads failed: $(grep -m3 'origin read failed' "$T/agent.log")"
[ "$(counter fetch_errors)" -eq 0 ] || fail "fetch_errors = $(counter fetch_errors)"
[ "$(counter fallback_reads)" -eq 0 ] || fail "$(counter fallback_reads) reads fell back to the file: fetches failed or timed out"
[ "$(counter hit_reads)" -gt 0 ] || fail "no reads were served from the cache"
note "fetch_requests=$(counter fetch_requests) hits=$(counter hit_reads) origin_files_open=$(counter origin_files_open)"
echo "origin_reads_survive_fd_reuse: ok"
