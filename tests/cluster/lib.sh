# Harness for multi-node tests. Each test sources this, then calls `cluster_up N`:
# N agents, each in its own network namespace, joined by a bridge that lives in a
# further "hub" namespace, so nothing is added to the host's own network stack and
# two runs in parallel cannot see each other (names, subnets, ports, dirs are all
# private). Exit 77 means "skipped" (meson's convention). A trap stops every agent
# and reader this file started and deletes the namespaces and the temp dir, pass or
# fail.
#
# Layout of one run ($T is private, P is the run's name prefix "dc<pid>x<rand>"):
#   netns P-hub : br0 (NET.254/24), veth1..vethN enslaved to it
#   netns P-nI  : lo, eth0 (NET.I/24), the agent of node I (member id "nI",
#                 cluster listen NET.I:$CL_PORT), config $T/nI/agent.toml,
#                 socket $T/nI/agent.sock, log $T/nI/agent.log
#   $T/data     : the dataset "test", one shared directory (the origin)
#   $T/cluster.key : the shared secret, mode 0600
# DC_KEEP_TMP=1 keeps $T (configs, agent logs, reader logs) after the run.
set -euo pipefail

: "${DC_BUILD:?DC_BUILD must point at the build directory}"
DCAGENT="$DC_BUILD/daemon/dcagent"
DCCTL="$DC_BUILD/tools/dcctl"
SHIM="$DC_BUILD/shim/libdcshim.so"
PY=/usr/bin/python3   # Debian's interpreter

# Knobs a test may set before cluster_up.
: "${CL_MEMORY:=128MiB}"          # arena per node
: "${CL_MEMBER_TIMEOUT:=2s}"
: "${CL_PORT:=7070}"              # private to each namespace, so fixed is fine
: "${CL_CLIENT_ONLY:=}"           # node numbers (space-separated) that own nothing (serve = false)
: "${CL_MEMBERSHIP:=static}"       # static ([[peer]] lists) or etcd (a real etcd in the hub namespace)
: "${CL_SEND:=}"                  # cluster.send of every node (copy, zerocopy, sendfile); empty: the default
: "${CL_ETCD_SCHEME:=}"           # "https://" to name the etcd endpoint so (the test starts etcd with TLS)
CL_ETCD_PID=""

# realpath: the shim and the agent compare canonical dataset paths.
T=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/dc-cl.XXXXXX")")
echo $$ > "$T/owner"   # lets a later run reap this dir if we are SIGKILLed
CL_N=0
CL_PREFIX=""
CL_HUB=""
CL_NET=""        # first three octets, e.g. 10.123.45
CL_CGROUP=""     # blkio cgroup holding the agents once throttle_origin was called
declare -a CL_NS=() CL_PID=() CL_SOCK=()
declare -a EXTRA_PIDS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
note() { echo "# $*" >&2; }

cl_cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  for p in "${EXTRA_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  local i
  for ((i = 1; i <= CL_N; i++)); do
    [ -n "${CL_PID[i]:-}" ] && kill "${CL_PID[i]}" 2>/dev/null
  done
  for ((i = 1; i <= CL_N; i++)); do
    [ -n "${CL_PID[i]:-}" ] || continue
    for _ in $(seq 1 50); do kill -0 "${CL_PID[i]}" 2>/dev/null || break; sleep 0.05; done
    kill -9 "${CL_PID[i]}" 2>/dev/null
    wait "${CL_PID[i]}" 2>/dev/null
  done
  for p in "${EXTRA_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for ((i = 1; i <= CL_N; i++)); do
      [ -s "$T/n$i/agent.log" ] || continue
      echo "--- node $i agent log (last 30 lines) ---" >&2
      tail -n 30 "$T/n$i/agent.log" >&2
    done
  fi
  # Whatever still runs inside our namespaces was started by this test (an agent
  # or reader that escaped the lists above): end it, or the namespace outlives us.
  local ns
  for ns in "${CL_NS[@]:1}" ${CL_HUB:+"$CL_HUB"}; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  # Deleting a namespace destroys its interfaces; a veth pair dies with either end.
  for ns in "${CL_NS[@]:1}" ${CL_HUB:+"$CL_HUB"}; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "$CL_CGROUP" ]; then
    for _ in $(seq 1 40); do rmdir "$CL_CGROUP" 2>/dev/null && break; sleep 0.05; done
  fi
  if [ -n "${DC_KEEP_TMP:-}" ]; then
    rm -f "$T/owner"
    echo "# kept $T (DC_KEEP_TMP)" >&2
  else
    rm -rf "$T"
  fi
  exit $rc
}
trap cl_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# A run killed with SIGKILL (e.g. by a test runner) leaves its namespaces behind.
# Delete those of runs whose harness process is gone; never touch a live run's.
cl_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ "$ns" =~ ^dc([0-9]+)x[0-9a-z]+-(hub|n[0-9]+)$ ]] || continue
    pid=${BASH_REMATCH[1]}
    kill -0 "$pid" 2>/dev/null && continue
    if ip netns del "$ns" 2>/dev/null; then note "deleted stale namespace $ns (run $pid is gone)"; fi
  done
  local d
  for d in "${TMPDIR:-/tmp}"/dc-cl.*; do
    [ "$d" != "$T" ] && [ -f "$d/owner" ] || continue
    pid=$(cat "$d/owner" 2>/dev/null) || continue
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then rm -rf "$d"; fi
  done
  local cg
  for cg in /sys/fs/cgroup/blkio/dc*x*; do
    [ -d "$cg" ] || continue
    [[ "$(basename "$cg")" =~ ^dc([0-9]+)x[0-9a-z]+$ ]] || continue
    kill -0 "${BASH_REMATCH[1]}" 2>/dev/null || rmdir "$cg" 2>/dev/null || true
  done
}

# cl_ping NS ADDR: one ICMP echo from inside NS, 1 s to answer. Uses ping if
# installed (iputils-ping is not in Debian's minimal images), else a raw socket.
cl_ping() {
  local ns=$1 addr=$2
  if command -v ping >/dev/null 2>&1; then
    ip netns exec "$ns" ping -c1 -W1 -q "$addr" >/dev/null 2>&1
  else
    ip netns exec "$ns" "$PY" "$T/icmp_echo.py" "$addr" 1.0
  fi
}

cl_write_helpers() {
  cat > "$T/icmp_echo.py" <<'EOP'
# icmp_echo.py ADDR TIMEOUT: exit 0 if ADDR answers one ICMP echo in time.
import os, select, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst, timeout = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
pkt = struct.pack('!BBHHH', 8, 0, 0, ident, 1) + b'dc-cluster-ping'
pkt = pkt[:2] + struct.pack('!H', csum(pkt)) + pkt[4:]
try:
    s.sendto(pkt, (dst, 0))
except OSError:
    sys.exit(1)
end = time.monotonic() + timeout
while (left := end - time.monotonic()) > 0:
    if not select.select([s], [], [], left)[0]:
        break
    d, a = s.recvfrom(2048)
    h = (d[0] & 0xf) * 4
    if a[0] == dst and d[h] == 0 and struct.unpack('!H', d[h + 4:h + 6])[0] == ident:
        sys.exit(0)
sys.exit(1)
EOP
  cat > "$T/reader.py" <<'EOP'
# reader.py ROOT REF PROGRESS EPOCHS RATE: read every file under ROOT (sorted) in
# 256 KiB reads, EPOCHS times, paced to RATE bytes/s (0: no pacing), and compare
# each file's md5 with REF (json relpath -> md5). Writes "epoch done_bytes" to
# PROGRESS after every read. Exit 1 on the first wrong byte or failed read.
import hashlib, json, os, sys, time
root, ref_path, progress, epochs, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ref = json.load(open(ref_path))
names = sorted(ref)
t0, done, worst = time.monotonic(), 0, 0.0
def report(epoch, nbytes):
    tmp = progress + '.tmp'
    with open(tmp, 'w') as f:
        f.write(f'{epoch} {nbytes}\n')
    os.replace(tmp, progress)
for e in range(1, epochs + 1):
    epoch_bytes = 0
    for name in names:
        h = hashlib.md5()
        try:
            with open(os.path.join(root, name), 'rb', buffering=0) as f:
                while True:
                    s = time.monotonic()
                    b = f.read(256 * 1024)
                    worst = max(worst, time.monotonic() - s)
                    if not b:
                        break
                    h.update(b)
                    done += len(b)
                    epoch_bytes += len(b)
                    report(e, epoch_bytes)
                    if rate > 0:
                        ahead = t0 + done / rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
        except OSError as ex:
            print(f'reader: epoch {e}: {name}: {ex}', file=sys.stderr)
            sys.exit(1)
        if h.hexdigest() != ref[name]:
            print(f'reader: epoch {e}: {name}: wrong bytes (md5 {h.hexdigest()}, want {ref[name]})', file=sys.stderr)
            sys.exit(1)
    report(e, -1)  # -1: epoch complete
print(f'reader: {epochs} epoch(s), {done} bytes, {time.monotonic() - t0:.1f} s, longest read {worst * 1000:.0f} ms', file=sys.stderr)
EOP
}

cl_client_only() { [[ " $CL_CLIENT_ONLY " == *" $1 "* ]]; }

# cl_write_config I: node I's config; peers are all other serving nodes (a
# client-only node is nobody's member: it only connects out).
cl_write_config() {
  local i=$1 j serve=true
  cl_client_only "$i" && serve=false
  mkdir -p "$T/n$i"
  {
    cat <<EOC
[agent]
socket = "${CL_SOCK[i]}"
log_level = "${DC_LOG_LEVEL:-info}"
[cache]
memory = "$CL_MEMORY"
[[dataset]]
name = "test"
path = "$T/data"
[cluster]
node_id = "n$i"
listen = "$CL_NET.$i:$CL_PORT"
serve = $serve
secret_file = "$T/cluster.key"
member_timeout = "$CL_MEMBER_TIMEOUT"
EOC
    [ -z "$CL_SEND" ] || printf 'send = "%s"\n' "$CL_SEND"
    if [ "$CL_MEMBERSHIP" = etcd ]; then
      printf 'membership = "etcd"\netcd = ["%s%s.254:2379"]\n' "${CL_ETCD_SCHEME:-}" "$CL_NET"
      # A test may add [cluster] keys per node (etcd TLS and auth settings).
      if declare -F cl_config_extra >/dev/null; then cl_config_extra "$i"; fi
    fi
    for ((j = 1; j <= CL_N; j++)); do
      [ "$CL_MEMBERSHIP" = etcd ] && break
      [ "$j" -eq "$i" ] && continue
      cl_client_only "$j" && continue
      printf '[[peer]]\nid = "n%d"\naddress = "%s.%d:%d"\n' "$j" "$CL_NET" "$j" "$CL_PORT"
    done
  } > "$T/n$i/agent.toml"
}

# cluster_up N: namespaces, bridge, secret, configs, and N running agents.
cluster_up() {
  local n=$1 i
  [ "$n" -ge 1 ] && [ "$n" -le 250 ] || fail "cluster_up: N must be 1..250"
  [ "$(id -u)" -eq 0 ] || skip "cluster tests need root (network namespaces)"
  command -v ip >/dev/null 2>&1 || skip "no 'ip' command (iproute2)"
  [ -x "$DCAGENT" ] && [ -x "$DCCTL" ] && [ -f "$SHIM" ] || fail "build products missing under $DC_BUILD"
  cl_reap_stale
  CL_N=$n
  local rnd
  rnd=$(head -c 64 /dev/urandom | tr -dc 'a-z0-9' | head -c 3)
  CL_PREFIX="dc$$x${rnd:-0}"
  CL_HUB="$CL_PREFIX-hub"
  CL_NET="10.$((100 + $$ % 100)).$((($$ / 100) % 250))"
  local err
  if ! err=$(ip netns add "$CL_HUB" 2>&1); then
    CL_HUB=""
    skip "cannot create network namespaces (ip netns add: $err)"
  fi
  ip -n "$CL_HUB" link set lo up
  ip -n "$CL_HUB" link add br0 type bridge stp_state 0 forward_delay 0 ||
    fail "cannot create a bridge in namespace $CL_HUB (bridge module?)"
  ip -n "$CL_HUB" addr add "$CL_NET.254/24" dev br0
  ip -n "$CL_HUB" link set br0 up
  for ((i = 1; i <= n; i++)); do
    CL_NS[i]="$CL_PREFIX-n$i"
    CL_SOCK[i]="$T/n$i/agent.sock"
    CL_PID[i]=""
    ip netns add "${CL_NS[i]}" || fail "ip netns add ${CL_NS[i]} failed"
    ip -n "${CL_NS[i]}" link set lo up
    # Created straight inside the two namespaces: no name ever exists on the host.
    ip -n "${CL_NS[i]}" link add eth0 type veth peer name "veth$i" netns "$CL_HUB" ||
      fail "cannot create a veth pair for node $i (veth module?)"
    ip -n "$CL_HUB" link set "veth$i" master br0 up
    ip -n "${CL_NS[i]}" addr add "$CL_NET.$i/24" dev eth0
    ip -n "${CL_NS[i]}" link set eth0 up
  done
  cl_write_helpers
  mkdir -p "$T/data"
  (umask 077 && head -c 32 /dev/urandom > "$T/cluster.key")
  for ((i = 1; i <= n; i++)); do cl_write_config "$i"; done
  [ "$CL_MEMBERSHIP" = etcd ] && cl_etcd_up
  for ((i = 1; i <= n; i++)); do cl_wait_link "$i"; done
  for ((i = 1; i <= n; i++)); do cl_spawn "$i"; done
  for ((i = 1; i <= n; i++)); do cl_wait_up "$i"; done
  note "cluster of $n up: prefix $CL_PREFIX, subnet $CL_NET.0/24, dir $T"
}

# cl_etcd_up: a real etcd-server in the hub namespace, clients on $CL_NET.254:2379
# (private to this run's namespaces); its data lives in $T/etcd. The cleanup's
# sweep of our namespaces stops it.
cl_etcd_up() {
  command -v etcd >/dev/null 2>&1 || fail "etcd not installed (tools/setup.sh installs etcd-server)"
  cat > "$T/etcd_call.py" <<'EOP'
# etcd_call.py URL OP ARGS: one call to etcd's v3 JSON gateway (keys and values
# are base64 there). Ops: ready | put KEY VALUE [LEASE] | del KEY |
# get KEY (prints "LEASE VALUE", nothing if absent) | revoke LEASE |
# metric NAME (from /metrics; 0 if absent).
import base64, json, sys, urllib.request
url, op, args = sys.argv[1], sys.argv[2], sys.argv[3:]
b64 = lambda s: base64.b64encode(s.encode()).decode()
def call(path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode())
    return json.load(urllib.request.urlopen(req, timeout=2))
if op == 'ready':
    call('/v3/kv/range', {'key': 'AA=='})
elif op == 'put':
    body = {'key': b64(args[0]), 'value': b64(args[1])}
    if len(args) > 2:
        body['lease'] = args[2]
    call('/v3/kv/put', body)
elif op == 'del':
    call('/v3/kv/deleterange', {'key': b64(args[0])})
elif op == 'get':
    for kv in call('/v3/kv/range', {'key': b64(args[0])}).get('kvs', []):
        print(kv.get('lease', '0'), base64.b64decode(kv.get('value', '')).decode())
elif op == 'revoke':
    call('/v3/lease/revoke', {'ID': args[0]})
elif op == 'metric':
    text = urllib.request.urlopen(url + '/metrics', timeout=2).read().decode()
    vals = [l.split()[1] for l in text.splitlines() if l.split(' ')[0] == args[0]]
    print(int(float(vals[0])) if vals else 0)
else:
    sys.exit('etcd_call.py: unknown op ' + op)
EOP
  cl_etcd_start
}

# cl_etcd_start: (re)start etcd on $T/etcd and wait until it answers.
cl_etcd_start() {
  [ -z "$CL_ETCD_PID" ] || fail "etcd is already running (pid $CL_ETCD_PID)"
  ip netns exec "$CL_HUB" etcd --name hub --data-dir "$T/etcd" \
    --listen-client-urls "http://$CL_NET.254:2379" --advertise-client-urls "http://$CL_NET.254:2379" \
    --listen-peer-urls "http://127.0.0.1:2380" --initial-advertise-peer-urls "http://127.0.0.1:2380" \
    --initial-cluster "hub=http://127.0.0.1:2380" >>"$T/etcd.log" 2>&1 &
  CL_ETCD_PID=$!   # ip netns exec execs: this is etcd itself
  for _ in $(seq 1 100); do
    if etcd_call ready 2>/dev/null; then
      note "etcd up in $CL_HUB at $CL_NET.254:2379"
      return 0
    fi
    kill -0 "$CL_ETCD_PID" 2>/dev/null || fail "etcd exited: $(tail -n 5 "$T/etcd.log")"
    sleep 0.1
  done
  fail "etcd did not come up: $(tail -n 5 "$T/etcd.log")"
}

# cl_etcd_kill: kill -9 etcd (as on a crash); its data dir stays.
cl_etcd_kill() {
  [ -n "$CL_ETCD_PID" ] || fail "cl_etcd_kill: etcd is not running"
  kill -9 "$CL_ETCD_PID" 2>/dev/null || true
  wait "$CL_ETCD_PID" 2>/dev/null || true
  CL_ETCD_PID=""
}

# etcd_call OP ARGS...: see etcd_call.py above; runs in the hub namespace.
etcd_call() {
  ip netns exec "$CL_HUB" "$PY" "$T/etcd_call.py" "http://$CL_NET.254:2379" "$@"
}

# cl_wait_link I: until node I reaches the hub over its link (carrier, bridge port).
cl_wait_link() {
  local i=$1
  for _ in $(seq 1 50); do
    cl_ping "${CL_NS[i]}" "$CL_NET.254" && return 0
    sleep 0.1
  done
  fail "node $i cannot reach the bridge at $CL_NET.254"
}

cl_spawn() {
  local i=$1
  [ -z "${CL_PID[i]}" ] || fail "node $i is already running (pid ${CL_PID[i]})"
  if [ -n "$CL_CGROUP" ]; then
    # Join the throttled cgroup before exec, so no origin read escapes it.
    bash -c 'echo $$ > "$1/cgroup.procs" && exec "${@:2}"' _ "$CL_CGROUP" \
      ip netns exec "${CL_NS[i]}" "$DCAGENT" --config "$T/n$i/agent.toml" >>"$T/n$i/agent.log" 2>&1 &
  else
    ip netns exec "${CL_NS[i]}" "$DCAGENT" --config "$T/n$i/agent.toml" >>"$T/n$i/agent.log" 2>&1 &
  fi
  CL_PID[i]=$!   # ip netns exec execs: this is the agent itself
}

cl_wait_up() {
  local i=$1
  for _ in $(seq 1 200); do
    [ -S "${CL_SOCK[i]}" ] && "$DCCTL" --socket "${CL_SOCK[i]}" stats --json >/dev/null 2>&1 && return 0
    kill -0 "${CL_PID[i]}" 2>/dev/null || fail "agent of node $i exited at start: $(tail -n 5 "$T/n$i/agent.log")"
    sleep 0.05
  done
  fail "agent of node $i did not answer on ${CL_SOCK[i]} within 10 s"
}

cl_check_node() { [ "$1" -ge 1 ] && [ "$1" -le "$CL_N" ] || fail "no node $1 (cluster of $CL_N)"; }

# node_exec I CMD...: CMD inside node I's namespace, DC_SOCKET = node I's agent.
node_exec() {
  local i=$1; shift
  cl_check_node "$i"
  ip netns exec "${CL_NS[i]}" env DC_SOCKET="${CL_SOCK[i]}" "$@"
}

# node_shim I CMD...: as node_exec, with the shim preloaded (into CMD only).
node_shim() {
  local i=$1; shift
  cl_check_node "$i"
  ip netns exec "${CL_NS[i]}" env DC_SOCKET="${CL_SOCK[i]}" LD_PRELOAD="$SHIM" "$@"
}

# node_stats_json I: node I's `dcctl stats --json`.
node_stats_json() {
  cl_check_node "$1"
  "$DCCTL" --socket "${CL_SOCK[$1]}" stats --json || fail "node $1: dcctl stats failed"
}

# node_stat I NAME: one counter of node I.
node_stat() {
  local out
  out=$(node_stats_json "$1")
  "$PY" -c 'import json,sys
d = json.loads(sys.argv[1])
if sys.argv[2] not in d:
    sys.exit("node %s has no counter %r (has: %s)" % (sys.argv[3], sys.argv[2], ", ".join(sorted(d))))
print(d[sys.argv[2]])' "$out" "$2" "$1" || fail "node_stat $1 $2"
}

# sum_stat NAME: NAME summed over the nodes whose agent is running.
sum_stat() {
  local i s=0 v
  for ((i = 1; i <= CL_N; i++)); do
    [ -n "${CL_PID[i]}" ] || continue
    v=$(node_stat "$i" "$1") || exit 1
    s=$((s + v))
  done
  echo "$s"
}

# node_alive I: the agent of node I runs (and was not killed by node_kill).
node_alive() { [ -n "${CL_PID[$1]}" ] && kill -0 "${CL_PID[$1]}" 2>/dev/null; }

# check_alive: fail if an agent that should run has exited (crashed).
check_alive() {
  local i
  for ((i = 1; i <= CL_N; i++)); do
    [ -n "${CL_PID[i]}" ] || continue
    kill -0 "${CL_PID[i]}" 2>/dev/null || fail "agent of node $i died: $(tail -n 5 "$T/n$i/agent.log")"
  done
}

# node_kill I: kill -9 node I's agent (its socket file stays, as after a crash).
node_kill() {
  local i=$1
  cl_check_node "$i"
  [ -n "${CL_PID[i]}" ] || fail "node_kill $i: not running"
  kill -9 "${CL_PID[i]}" 2>/dev/null || true
  wait "${CL_PID[i]}" 2>/dev/null || true
  CL_PID[i]=""
  echo "--- killed -9 at $(date +%T.%N) ---" >> "$T/n$i/agent.log"
}

# node_start I: start node I's agent again (same config) and wait until it answers.
node_start() {
  local i=$1
  cl_check_node "$i"
  echo "--- started at $(date +%T.%N) ---" >> "$T/n$i/agent.log"
  cl_spawn "$i"
  cl_wait_up "$i"
}

# link_down I: cut node I's cable. The hub end goes down, so node I's eth0 loses
# carrier (NO-CARRIER) while keeping its address: packets in both directions are
# dropped, established TCP connections go silent (no RST), as on a real cut.
link_down() {
  cl_check_node "$1"
  ip -n "$CL_HUB" link set "veth$1" down
}

# link_up I: reconnect node I and wait until it reaches the bridge and every other
# node again. ARP entries that failed while the link was down are retried only
# every second or so: the first packets after the cut heals may still be dropped.
link_up() {
  local i=$1 j
  cl_check_node "$i"
  ip -n "$CL_HUB" link set "veth$i" up
  cl_wait_link "$i"
  for ((j = 1; j <= CL_N; j++)); do
    [ "$j" -eq "$i" ] && continue
    for _ in $(seq 1 10); do node_ping "$i" "$j" && continue 2; done
    fail "link_up $i: node $i cannot reach node $j"
  done
}

# node_ping I J: node I pings node J's address (one echo, 1 s).
node_ping() {
  cl_check_node "$1"; cl_check_node "$2"
  cl_ping "${CL_NS[$1]}" "$CL_NET.$2"
}

node_addr() { echo "$CL_NET.$1"; }
node_log() { echo "$T/n$1/agent.log"; }

# throttle_origin RATE: cap the origin reads of all agents together to RATE
# bytes/s ("40M", "512K", plain bytes; "0" or "off" lifts the cap). Uses the
# cgroup-v1 blkio throttle on the disk holding the dataset: it applies because the
# agent reads the origin with O_DIRECT. A no-op (with a note, status 1) where that is
# not possible (no blkio v1, tmpfs/overlay dataset, ...).
throttle_origin() {
  local rate=$1
  case "$rate" in
    off | 0) rate=0 ;;
    *[Kk]) rate=$((${rate%[Kk]} * 1024)) ;;
    *[Mm]) rate=$((${rate%[Mm]} * 1024 * 1024)) ;;
    *[Gg]) rate=$((${rate%[Gg]} * 1024 * 1024 * 1024)) ;;
    *[!0-9]* | "") fail "throttle_origin: bad rate '$1'" ;;
  esac
  local blkio=/sys/fs/cgroup/blkio
  if [ ! -f "$blkio/blkio.throttle.read_bps_device" ]; then
    note "throttle_origin: no cgroup-v1 blkio throttle here; origin not throttled"
    return 1
  fi
  local mm sys
  mm=$(findmnt -n -o MAJ:MIN --target "$T/data" 2>/dev/null | tr -d ' ')
  sys=$(readlink -f "/sys/dev/block/$mm" 2>/dev/null || true)
  if [ -z "$mm" ] || [ -z "$sys" ] || [ ! -d "$sys" ]; then
    note "throttle_origin: $T/data is not on a block device ($mm); origin not throttled"
    return 1
  fi
  # The throttle takes whole disks only.
  [ -f "$sys/partition" ] && mm=$(cat "$(dirname "$sys")/dev")
  if [ -z "$CL_CGROUP" ]; then
    CL_CGROUP="$blkio/$CL_PREFIX"
    mkdir -p "$CL_CGROUP" || { CL_CGROUP=""; note "throttle_origin: cannot create a blkio cgroup"; return 1; }
    local i
    for ((i = 1; i <= CL_N; i++)); do
      [ -n "${CL_PID[i]}" ] && echo "${CL_PID[i]}" > "$CL_CGROUP/cgroup.procs"
    done
  fi
  echo "$mm $rate" > "$CL_CGROUP/blkio.throttle.read_bps_device" ||
    { note "throttle_origin: the kernel refused '$mm $rate'"; return 1; }
  note "origin reads capped at $rate bytes/s (device $mm)"
}

# node_ring_json I: `dcctl ring --json` of node I; status 2 if dcctl has no ring.
node_ring_json() {
  local out
  if out=$("$DCCTL" --socket "${CL_SOCK[$1]}" ring --json 2>&1); then
    echo "$out"
  elif grep -qi "usage\|unknown" <<<"$out"; then
    return 2
  else
    fail "node $1: dcctl ring: $out"
  fi
}

# ring_member_live I ID: prints true/false, node I's view of member ID.
ring_member_live() {
  local j
  j=$(node_ring_json "$1") || return $?
  "$PY" -c 'import json,sys
d = json.loads(sys.argv[1])
m = [x for x in d.get("members", []) if x.get("id") == sys.argv[2]]
print("true" if m and m[0].get("live") else "false")' "$j" "$2"
}

# wait_member I ID true|false [SECONDS]: until node I sees ID live (or not).
# Status 2 (no wait) if dcctl has no ring subcommand.
wait_member() {
  local i=$1 id=$2 want=$3 secs=${4:-20} got rc
  got=$(ring_member_live "$i" "$id") && rc=0 || rc=$?
  [ $rc -eq 2 ] && return 2
  local end=$((SECONDS + secs))
  while [ "$got" != "$want" ]; do
    [ $SECONDS -lt $end ] || fail "node $i: member $id live=$got, want $want after ${secs}s"
    sleep 0.2
    got=$(ring_member_live "$i" "$id")
  done
}

# gen_dataset DIR MIB [SEED]: about MIB MiB of random files: whole 1 MiB blocks
# (1..4 MiB), odd sizes around block and page edges, tiny and empty files, one
# subdirectory. Prints the total bytes.
gen_dataset() {
  "$PY" - "$@" <<'EOP'
import os, random, sys
d, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1234)
M = 1 << 20
target = mib * M
os.makedirs(os.path.join(d, 'sub'), exist_ok=True)
sizes = [0, 1, 4095, 4097, 65535, 65537, M - 1, M, M + 1, 2 * M + 12345]
while sum(sizes) < target:
    if rng.random() < 0.5:
        sizes.append(rng.randint(1, 4) * M)
    else:
        sizes.append(rng.randint(1, 3 * M))
total = 0
for i, size in enumerate(sizes):
    sub = 'sub' if i % 5 == 4 else ''
    with open(os.path.join(d, sub, f'f{i:04d}.bin'), 'wb') as f:
        f.write(os.urandom(size))
    total += size
print(total)
EOP
}

# md5_ref DIR OUT: json relpath -> md5 of every file under DIR, read natively.
md5_ref() {
  "$PY" - "$1" "$2" <<'EOP'
import hashlib, json, os, sys
root, out = sys.argv[1], sys.argv[2]
ref = {}
for dp, _, files in os.walk(root):
    for f in files:
        p = os.path.join(dp, f)
        with open(p, 'rb') as fh:
            ref[os.path.relpath(p, root)] = hashlib.md5(fh.read()).hexdigest()
json.dump(ref, open(out, 'w'))
EOP
}

# start_reader I EPOCHS RATE NAME: reader.py on node I under the shim, in the
# background, over $T/data against $T/ref.json (md5_ref first). Its pid goes to
# READER_PID and EXTRA_PIDS, progress to $T/NAME.progress, output to $T/NAME.log.
start_reader() {
  local i=$1 epochs=$2 rate=$3 name=$4
  [ -f "$T/ref.json" ] || fail "start_reader: run md5_ref $T/data $T/ref.json first"
  rm -f "$T/$name.progress"
  node_shim "$i" "$PY" "$T/reader.py" "$T/data" "$T/ref.json" "$T/$name.progress" "$epochs" "$rate" \
    >"$T/$name.log" 2>&1 &
  READER_PID=$!
  EXTRA_PIDS+=("$READER_PID")
}

# reader_progress NAME: "EPOCH BYTES" (BYTES -1 once that epoch is complete).
reader_progress() { cat "$T/$1.progress" 2>/dev/null || echo "0 0"; }

# wait_reader_at NAME EPOCH BYTES [SECONDS]: until the reader is in EPOCH with at
# least BYTES read in it (or past it).
wait_reader_at() {
  local name=$1 epoch=$2 bytes=$3 secs=${4:-120} e b
  local end=$((SECONDS + secs))
  while :; do
    read -r e b < <(reader_progress "$name")
    if [ "$e" -gt "$epoch" ] || { [ "$e" -eq "$epoch" ] && { [ "$b" -lt 0 ] || [ "$b" -ge "$bytes" ]; }; }; then
      return 0
    fi
    [ $SECONDS -lt $end ] || fail "reader $name stuck at epoch $e, $b bytes: $(tail -n 3 "$T/$name.log")"
    sleep 0.05
  done
}

# wait_reader NAME PID: the reader's exit; fail unless it read every byte right.
wait_reader() {
  local rc=0 p keep=()
  wait "$2" || rc=$?
  # Reaped: forget the pid, so the cleanup never signals a recycled one.
  for p in "${EXTRA_PIDS[@]}"; do [ "$p" = "$2" ] || keep+=("$p"); done
  EXTRA_PIDS=("${keep[@]}")
  [ $rc -eq 0 ] || fail "reader $1 failed (exit $rc): $(tail -n 5 "$T/$1.log")"
  note "$1: $(tail -n 1 "$T/$1.log")"
}

# link_shape I RATE [BURST [LATENCY]]: limit node I's link to RATE (tc syntax,
# e.g. "1gbit") in both directions with a token bucket (tbf): on the egress of the
# node's eth0 (what it sends) and of the hub's vethI (what it receives). BURST is
# the bucket (default 256kb): at least one 64 KiB GSO packet, or tbf splits every
# veth super-packet into MTU segments (CPU); any excess over RATE it allows is at
# most BURST per measurement, nothing over seconds. LATENCY (default 10ms) bounds
# the queue behind the bucket (limit = RATE x LATENCY + BURST): deep enough that a
# few TCP flows converging on one receiver keep the link busy, shallow enough that
# the drops tell TCP the rate. netem is not needed (and not in every kernel).
link_shape() {
  local i=$1 rate=$2 burst=${3:-256kb} latency=${4:-10ms}
  cl_check_node "$i"
  ip netns exec "${CL_NS[i]}" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency "$latency" ||
    fail "link_shape $i: tc tbf on eth0 refused (sch_tbf?)"
  ip netns exec "$CL_HUB" tc qdisc replace dev "veth$i" root tbf rate "$rate" burst "$burst" latency "$latency" ||
    fail "link_shape $i: tc tbf on the hub's veth$i refused"
}

# link_shape_drops I: packets tbf dropped on node I's link, "sent received".
link_shape_drops() {
  local i=$1 a b
  cl_check_node "$i"
  a=$(ip netns exec "${CL_NS[i]}" tc -s qdisc show dev eth0 | awk '/dropped/ {gsub(",", "", $7); print $7; exit}')
  b=$(ip netns exec "$CL_HUB" tc -s qdisc show dev "veth$i" | awk '/dropped/ {gsub(",", "", $7); print $7; exit}')
  echo "${a:-0} ${b:-0}"
}

# node_set_cluster_option I KEY VALUE: set KEY in node I's [cluster] section (for
# keys cl_write_config does not write, e.g. copies_share). Takes effect at the
# agent's next start (node_kill + node_start).
node_set_cluster_option() {
  local i=$1 key=$2 value=$3
  cl_check_node "$i"
  "$PY" - "$T/n$i/agent.toml" "$key" "$value" <<'EOP' || fail "node_set_cluster_option $i $key"
import re, sys
path, key, value = sys.argv[1:4]
lines = open(path).read().splitlines()
start = lines.index('[cluster]') + 1
end = next((k for k in range(start, len(lines)) if lines[k].startswith('[')), len(lines))
body = [l for l in lines[start:end] if not re.match(r'\s*' + re.escape(key) + r'\s*=', l)]
lines[start:end] = [f'{key} = {value}'] + body
open(path, 'w').write('\n'.join(lines) + '\n')
EOP
}
