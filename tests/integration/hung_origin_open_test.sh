#!/usr/bin/env bash
# A hung origin open stalls only the fetches that need that file. The agent's
# open of one file is made to hang in the kernel, as on a stuck NFS server
# (dcholdopen: a fanotify permission event left unanswered, for the agent's
# opens only). Meanwhile other programs read a file already cached, a file
# already open and files never opened before: each must finish in seconds with
# the right bytes (before, the agent's only loop sat in openat2 and every fetch
# waited for the shim's 30 s timeout), and dcctl must get its answer. Then the
# hung open is released and its reader gets the right bytes too.
source "$(dirname "$0")/lib.sh"
HOLD="$DC_BUILD/tests/integration/dcholdopen"
LIMIT=10   # seconds per program: far below the shim's 30 s fetch timeout

write_config 64MiB 1MiB 64KiB
gen_files "$T/data" 8 100000 3000000
head -c 4000000 /dev/urandom > "$T/data/hung.bin"
head -c 3000000 /dev/urandom > "$T/data/cached.bin"
head -c 8000000 /dev/urandom > "$T/data/open.bin"
start_agent

# Reads go through dd (read/write): cat and cp may copy in the kernel
# (copy_file_range), past the shim. cached.bin whole in the arena; open.bin open
# at the agent, only its first MiB read.
shim dd if="$T/data/cached.bin" of=/dev/null bs=1M status=none
shim dd if="$T/data/open.bin" of=/dev/null bs=1M count=1 status=none

"$HOLD" "$T/data/hung.bin" "$AGENT_PID" "$T/hold.log" 2> "$T/hold.err" &
HOLD_PID=$!
EXTRA_PIDS+=("$HOLD_PID")
for _ in $(seq 1 200); do
  grep -q ready "$T/hold.log" 2>/dev/null && break
  kill -0 "$HOLD_PID" 2>/dev/null || { wait "$HOLD_PID" && rc=0 || rc=$?; [ "$rc" = 77 ] && skip "no fanotify here: $(cat "$T/hold.err")"; fail "dcholdopen: $(cat "$T/hold.err")"; }
  sleep 0.05
done
grep -q ready "$T/hold.log" || fail "dcholdopen did not start"

shim dd if="$T/data/hung.bin" of="$T/hung.out" bs=1M status=none &
HUNG_READER=$!
EXTRA_PIDS+=("$HUNG_READER")
for _ in $(seq 1 400); do grep -q held "$T/hold.log" && break; sleep 0.05; done
grep -q held "$T/hold.log" || fail "the agent never tried to open hung.bin"
note "the agent's open of hung.bin is hanging"

timed() {  # timed WHAT CMD...: runs CMD, fails if it takes LIMIT seconds or errs
  local what=$1; shift
  local start=$(date +%s%N)
  timeout $((LIMIT * 3)) "$@" || fail "$what: failed or hung (exit $?)"
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  note "$what: ${ms} ms"
  [ "$ms" -lt $((LIMIT * 1000)) ] || fail "$what took ${ms} ms while another file's origin open hung"
}
timed "dcctl stats" "$DCCTL" stats --json > /dev/null
for f in cached.bin open.bin f00000.bin f00001.bin f00002.bin f00003.bin f00004.bin f00005.bin; do
  timed "read of $f" env LD_PRELOAD="$SHIM" dd if="$T/data/$f" of="$T/copy.out" bs=1M status=none
  cmp "$T/data/$f" "$T/copy.out" || fail "$f: wrong bytes"
done
[ "$(counter fetch_errors)" -eq 0 ] || fail "fetch_errors = $(counter fetch_errors)"
kill -0 "$HUNG_READER" 2>/dev/null || fail "the reader of hung.bin finished while its open was held"

note "releasing the hung open"
kill "$HOLD_PID"
wait "$HOLD_PID" 2>/dev/null || true
timeout 60 tail --pid="$HUNG_READER" -f /dev/null || fail "the reader of hung.bin never finished"
wait "$HUNG_READER" || fail "the reader of hung.bin failed"
cmp "$T/data/hung.bin" "$T/hung.out" || fail "hung.bin: wrong bytes"
agent_alive || fail "agent died"
echo "hung_origin_open_stalls_only_its_file: ok"
