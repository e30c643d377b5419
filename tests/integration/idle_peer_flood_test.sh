#!/usr/bin/env bash
# An agent with a cluster port on loopback, started with 128 descriptors, is
# flooded by 200 TCP connections that never say Hello: half from one address, half
# from 100 others. The agent must keep answering dcctl, stay nearly idle (no accept
# loop spinning on EMFILE), log a few lines rather than one per attempt, and drop
# every connection once the handshake deadline (member_timeout) has passed.
# Phase 1 runs the default caps (which keep peers under half the descriptors);
# in phase 2, 100 local clients that never say hello hold the other half, so that
# accept really runs out of descriptors on both sockets: the listeners must pause
# instead of spinning, and the agent recover once those clients leave.
source "$(dirname "$0")/lib.sh"

write_config 64MiB
head -c 48 /dev/urandom > "$T/cluster.key"
chmod 600 "$T/cluster.key"
cp "$T/agent.toml" "$T/base.toml"
CLK_TCK=$(getconf CLK_TCK)

cat > "$T/flood.py" <<'EOP'
# flood.py PORT N_SAME N_DISTINCT: N_SAME connections from 127.0.0.1 and one each
# from N_DISTINCT other loopback addresses, never sending a byte; prints "ready"
# once every connect has been started, then holds them until killed.
import socket, sys, time
port, same, distinct = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = []
srcs = ['127.0.0.1'] * same + ['127.0.%d.%d' % (1 + k // 250, 1 + k % 250) for k in range(distinct)]
for src in srcs:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(False)
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    socks.append(s)
print('ready', flush=True)
while True:
    time.sleep(1)
EOP
cat > "$T/hold_unix.py" <<'EOP'
# hold_unix.py PATH N: N connections to the agent's control socket that never
# send a byte; prints "ready", then holds them until killed.
import socket, sys, time
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    socks.append(s)
print('ready', flush=True)
while True:
    time.sleep(1)
EOP

# established: server-side TCP connections to $PORT in state ESTABLISHED (accepted
# or still in the backlog), from the kernel's table.
established() {
  "$PY" - "$PORT" <<'EOP'
import sys
port = int(sys.argv[1])
n = 0
for line in open('/proc/net/tcp').readlines()[1:]:
    f = line.split()
    if int(f[1].split(':')[1], 16) == port and f[3] == '01':
        n += 1
print(n)
EOP
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }

# start_limited EXTRA: the agent under `ulimit -n 128`, cluster port on a free port.
start_limited() {
  local attempt
  for attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 40000))
    cp "$T/base.toml" "$T/agent.toml"
    cat >> "$T/agent.toml" <<EOC
[cluster]
node_id = "lone"
listen = "127.0.0.1:$PORT"
secret_file = "$T/cluster.key"
member_timeout = "2s"
$1
EOC
    : > "$T/agent.log"
    (ulimit -n 128 && exec "$DCAGENT" --config "$T/agent.toml") >>"$T/agent.log" 2>&1 &
    AGENT_PID=$!
    for _ in $(seq 1 100); do "$DCCTL" stats >/dev/null 2>&1 && return 0; kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.05; done
    stop_agent
  done
  fail "could not start an agent on a free port"
}

# flood_phase NAME [LOCAL]: floods (with LOCAL idle control-socket clients held
# during the first seconds), then checks the agent through the flood and after it.
flood_phase() {
  local name=$1 locals=${2:-0} holders=()
  # hold N: N idle control-socket clients, held by a process in `holders`.
  hold() {
    "$PY" "$T/hold_unix.py" "$DC_SOCKET" "$1" > "$T/hold.out" 2>&1 &
    holders+=($!)
    EXTRA_PIDS+=($!)
    for _ in $(seq 1 100); do grep -q ready "$T/hold.out" && break; sleep 0.05; done
    grep -q ready "$T/hold.out" || fail "$name: control-socket holder did not start: $(cat "$T/hold.out")"
  }
  # Most local clients come before the flood (the peer listener then runs out),
  # the rest after (so does the control socket).
  [ "$locals" -eq 0 ] || { hold $((locals * 7 / 10)); sleep 0.5; }
  "$PY" "$T/flood.py" "$PORT" 100 100 > "$T/flood.out" 2>&1 &
  local flood=$!
  EXTRA_PIDS+=("$flood")
  for _ in $(seq 1 100); do grep -q ready "$T/flood.out" && break; sleep 0.05; done
  grep -q ready "$T/flood.out" || fail "$name: flood helper did not start: $(cat "$T/flood.out")"
  if [ "$locals" -gt 0 ]; then
    sleep 0.3
    hold $((locals * 3 / 10))
    local full=$((SECONDS + 5))
    until [ "$(ls "/proc/$AGENT_PID/fd" | wc -l)" -ge 120 ]; do
      [ $SECONDS -lt $full ] || fail "$name: the agent never ran short of descriptors ($(ls "/proc/$AGENT_PID/fd" | wc -l) open)"
      sleep 0.1
    done
  fi
  local est
  est=$(established)
  note "$name: $est connections established to the agent's port"
  # The agent's CPU over 1.5 s while the flood is fresh (before the deadline).
  local t0 t1
  t0=$(cpu_ticks)
  sleep 1.5
  t1=$(cpu_ticks)
  local pct=$(((t1 - t0) * 100 * 2 / 3 / CLK_TCK))
  note "$name: agent CPU $pct% of a core during the flood"
  [ "$pct" -lt 20 ] || fail "$name: the agent used $pct% of a core while flooded"
  if [ "$locals" -gt 0 ]; then
    # Out of descriptors, both listeners paused; now the local clients leave.
    local h
    for h in "${holders[@]}"; do kill -9 "$h" 2>/dev/null || true; wait "$h" 2>/dev/null || true; done
  fi
  # The control socket still answers (phase 2: once the deadline frees descriptors).
  local end=$((SECONDS + 15))
  until "$DCCTL" stats --json > "$T/stats.json" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "$name: dcctl stats did not answer during the flood"
    sleep 0.2
  done
  # Every idle connection is dropped after the deadline: the kernel's count falls.
  end=$((SECONDS + 20))
  while [ "$(established)" -gt 0 ]; do
    [ $SECONDS -lt $end ] || fail "$name: $(established) idle connections still established 20 s after the flood"
    sleep 0.2
  done
  t0=$(cpu_ticks)
  sleep 1
  t1=$(cpu_ticks)
  pct=$(((t1 - t0) * 100 / CLK_TCK))
  [ "$pct" -lt 20 ] || fail "$name: the agent used $pct% of a core after the flood"
  agent_alive || fail "$name: agent died"
  "$DCCTL" stats >/dev/null || fail "$name: dcctl stats failed after the flood"
  local lines
  lines=$(wc -l < "$T/agent.log")
  note "$name: agent log has $lines lines; handshake timeouts $(counter peer_handshake_timeouts), over cap $(counter peers_over_cap), accept pauses $(counter peer_accept_pauses) (control $(counter control_accept_pauses))"
  [ "$lines" -lt 80 ] || fail "$name: the flood wrote $lines log lines: $(sort "$T/agent.log" | uniq -c | sort -rn | head -3)"
  [ "$(counter peer_handshake_timeouts)" -gt 0 ] || fail "$name: no connection was dropped for its handshake deadline"
  kill -9 "$flood" 2>/dev/null || true
  wait "$flood" 2>/dev/null || true
  # A reader under the shim is served right bytes after it all.
  head -c 3000000 /dev/urandom > "$T/data/a.bin"
  [ "$(shim cat "$T/data/a.bin" | md5sum)" = "$(md5sum < "$T/data/a.bin")" ] || fail "$name: reader got wrong bytes"
}

start_limited ""
flood_phase "default caps"
[ "$(counter peers_over_cap)" -gt 0 ] || fail "default caps: no connection was refused over the caps"
stop_agent

# Local clients hold half the descriptors: accept fails with EMFILE on both sockets.
start_limited $'max_connections_per_address = 65536'
flood_phase "out of descriptors" 100
[ "$(counter peer_accept_pauses)" -gt 0 ] || fail "out of descriptors: the peer listener never paused (the test did not test EMFILE)"
[ "$(counter control_accept_pauses)" -gt 0 ] || fail "out of descriptors: the control socket never paused"
echo "idle peer flood: ok"
