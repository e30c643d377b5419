#!/usr/bin/env bash
# An agent that is alive but does not answer (SIGSTOP here; in life its loop stuck
# in a syscall on a hung origin) must not hang the programs under the shim: an open
# of a file outside the datasets never waits for it, and a dataset open or read
# waits at most the shim's deadline (~1 s, not restarted by signals) before it reads
# the real file. Once seen stuck, the agent is left alone for a while (back-off).
# (Before: a program with a 1 ms SA_RESTART timer never finished its first open,
# every EINTR restarting a 30 s receive timeout; `cat` took > 40 s.)
source "$(dirname "$0")/lib.sh"
TIMEROPEN="$DC_BUILD/tests/integration/dctimeropen"
write_config 64MiB
gen_files "$T/data" 3 200000 600000
start_agent
# The agent may be stopped at any moment: the EXIT trap wakes it before lib.sh's
# cleanup stops it (set +e first: under -e a false step would end the trap there
# and leave the agent running).
trap 'rc=$?; set +e; [ -n "$AGENT_PID" ] && kill -CONT "$AGENT_PID" 2>/dev/null; (exit $rc); cleanup' EXIT

OTHER=/etc/hostname
[ -r "$OTHER" ] || OTHER=/etc/passwd
F0="$T/data/f00000.bin"
F1="$T/data/f00001.bin"
cat "$OTHER" "$F0" "$F1" > "$T/expected"
cat "$OTHER" "$F0" > "$T/expected_cat"

kill -STOP "$AGENT_PID"

# elapsed_ms OUT CMD...: runs CMD (killed after 30 s) with stdout through a pipe
# to OUT (so cat reads and writes rather than copy_file_range), prints its wall
# time in ms.
elapsed_ms() {
  local t0 t1 out=$1
  shift
  t0=$(date +%s%N)
  { timeout -s KILL 30 "$@" || note "exit status $? from: $*"; } | cat > "$out"
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

ms=$(elapsed_ms "$T/got" env LD_PRELOAD="$SHIM" "$TIMEROPEN" "$OTHER" "$F0" "$F1" 2> "$T/timer.err")
cat "$T/timer.err" >&2
note "timer program, agent stopped: ${ms} ms"
[ "$ms" -lt 3000 ] || fail "timer program took ${ms} ms with the agent stopped (deadline ~1 s)"
cmp -s "$T/got" "$T/expected" || fail "timer program read wrong bytes with the agent stopped"
# The open outside the datasets must not have waited at all (100 ms: the machine is loaded).
first=$(awk '/^open /{print $2; exit}' "$T/timer.err")
"$PY" -c "import sys; sys.exit(0 if float('$first') < 0.1 else 1)" ||
  fail "the open of $OTHER (outside every dataset) waited ${first} s for a stopped agent"

ms=$(elapsed_ms "$T/got_cat" env LD_PRELOAD="$SHIM" cat "$OTHER" "$F0")
note "cat $OTHER <dataset file>, agent stopped: ${ms} ms"
[ "$ms" -lt 3000 ] || fail "cat took ${ms} ms with the agent stopped (deadline ~1 s)"
cmp -s "$T/got_cat" "$T/expected_cat" || fail "cat read wrong bytes with the agent stopped"

# Awake again, the same agent serves again.
kill -CONT "$AGENT_PID"
shim cat "$F1" | cmp -s - "$F1" || fail "wrong bytes after the agent woke up"
shim cat "$F1" | cmp -s - "$F1" || fail "wrong bytes after the agent woke up"
agent_alive || fail "agent died"
[ "$(counter hit_reads)" -gt 0 ] || fail "the woken agent serves no hits"
echo "stopped agent does not stall opens: ok"
