#!/usr/bin/env bash
# Membership from a real etcd-server that speaks only TLS, wants a client
# certificate signed by its CA (--client-cert-auth) and has etcd v3 auth on (a
# user whose role grants the /dc/ prefix). Certificates are made here with
# openssl: a CA, the server's (SAN = the hub's address), a client certificate;
# and a second, unrelated CA. Five agents:
#   n1, n2  CA + client certificate + user/password: they form a cluster (each
#           lists the other in `dcctl ring`, nobody else) and read correct bytes;
#   n3      trusts the wrong CA               -> refused (TLS), counted
#   n4      sends no client certificate        -> refused (TLS), counted
#   n5      has the wrong password             -> refused (auth), counted
#   n6      logs in as a user without a role on /dc/ -> refused (auth), counted
# The refused ones log why, stay up and are nobody's member. Then etcd is
# killed and restarted: its tokens die with it, and n1, n2 authenticate again
# and register again.
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || fail "openssl not installed (tools/setup.sh installs it)"
PKI="$T/pki"
USER_PW="dc-agent-pw-$RANDOM$RANDOM"
ROOT_PW="root-pw-$RANDOM$RANDOM"

# mk_pki: CA, server certificate for the hub's address, client certificate, and
# a second CA (with its own client certificate) that etcd does not trust.
mk_pki() {
  mkdir -p "$PKI"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  (
    cd "$PKI"
    for ca in ca other-ca; do
      openssl req -x509 "${ec[@]}" -keyout "$ca.key" -out "$ca.crt" -days 2 -subj "/CN=dc test $ca" 2>/dev/null
    done
    # The server certificate serves etcd's gateway too, which dials etcd's own
    # client port with it: server and client use.
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=etcd hub" 2>/dev/null
    printf 'subjectAltName=IP:%s.254\nextendedKeyUsage=serverAuth,clientAuth\n' "$CL_NET" > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    # No CommonName: with client-cert-auth and auth on, etcd 3.4's JSON gateway
    # refuses (HTTP 400) a client certificate that has one, since it could not
    # pass it on as the user; who we are comes from etcd_user.
    openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/O=dc agent" 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile client.ext -out client.crt 2>/dev/null
    openssl req "${ec[@]}" -keyout other-client.key -out other-client.csr -subj "/O=dc agent" 2>/dev/null
    openssl x509 -req -in other-client.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial \
      -days 2 -extfile client.ext -out other-client.crt 2>/dev/null
  ) || fail "openssl could not make the test certificates"
  for f in ca.crt server.crt client.crt other-ca.crt other-client.crt; do
    [ -s "$PKI/$f" ] || fail "openssl did not write $f"
  done
  (umask 077 && printf '%s\n' "$USER_PW" > "$T/etcd.pw" && printf 'wrong-%s\n' "$USER_PW" > "$T/etcd.badpw")
}

# The per-node [cluster] etcd keys (lib.sh's cl_write_config calls this).
cl_config_extra() {
  local i=$1 ca="$PKI/ca.crt" cert="$PKI/client.crt" key="$PKI/client.key" pw="$T/etcd.pw"
  case "$i" in
    3) ca="$PKI/other-ca.crt" ;;   # trusts a CA that did not sign etcd's certificate
    5) pw="$T/etcd.badpw" ;;
  esac
  local user=dcagent
  [ "$i" -eq 6 ] && user=norole
  printf 'etcd_ca = "%s"\n' "$ca"
  [ "$i" -eq 4 ] || printf 'etcd_cert = "%s"\netcd_key = "%s"\n' "$cert" "$key"
  printf 'etcd_user = "%s"\netcd_password_file = "%s"\n' "$user" "$pw"
}

# Replaces lib.sh's: the harness's own calls go over TLS, with the client
# certificate, as root once auth is on. Ops as lib.sh's etcd_call.py, plus
# setup-auth USER_PW and status (auth on?).
cl_etcd_up() {
  command -v etcd >/dev/null 2>&1 || fail "etcd not installed (tools/setup.sh installs etcd-server)"
  mk_pki
  cat > "$T/etcd_call.py" <<'EOP'
import base64, json, os, ssl, sys, urllib.error, urllib.request
url, pki, root_pw, op, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ctx = ssl.create_default_context(cafile=pki + '/ca.crt')
ctx.load_cert_chain(pki + '/client.crt', pki + '/client.key')
b64 = lambda s: base64.b64encode(s.encode()).decode()
token = None
def call(path, body, auth=True):
    global token
    if auth and token is None and os.environ.get('ETCD_AUTH') == '1':
        token = ''
        token = call('/v3/auth/authenticate', {'name': 'root', 'password': root_pw}, False)['token']
    req = urllib.request.Request(url + path, data=json.dumps(body).encode())
    if auth and token:
        req.add_header('Authorization', token)
    try:
        return json.load(urllib.request.urlopen(req, timeout=3, context=ctx))
    except urllib.error.HTTPError as e:
        sys.exit('etcd_call.py: %s %s: HTTP %d %s' % (op, path, e.code, e.read().decode()[:300]))
if op == 'ready':
    call('/v3/maintenance/status', {})
elif op == 'setup-auth':
    user_pw = args[0]
    call('/v3/auth/user/add', {'name': 'root', 'password': root_pw})
    call('/v3/auth/role/add', {'name': 'root'})
    call('/v3/auth/user/grant', {'user': 'root', 'role': 'root'})
    call('/v3/auth/role/add', {'name': 'dc'})
    call('/v3/auth/role/grant', {'name': 'dc', 'perm': {'permType': 'READWRITE',
         'key': b64('/dc/'), 'range_end': b64('/dc0')}})
    call('/v3/auth/user/add', {'name': 'dcagent', 'password': user_pw})
    call('/v3/auth/user/grant', {'user': 'dcagent', 'role': 'dc'})
    call('/v3/auth/user/add', {'name': 'norole', 'password': user_pw})
    call('/v3/auth/enable', {})
elif op == 'put':
    call('/v3/kv/put', {'key': b64(args[0]), 'value': b64(args[1])})
elif op == 'del':
    call('/v3/kv/deleterange', {'key': b64(args[0])})
elif op == 'get':
    for kv in call('/v3/kv/range', {'key': b64(args[0])}).get('kvs', []):
        print(kv.get('lease', '0'), base64.b64decode(kv.get('value', '')).decode())
elif op == 'keys':
    r = call('/v3/kv/range', {'key': b64('/dc/'), 'range_end': b64('/dc0'), 'keys_only': True})
    for kv in r.get('kvs', []):
        print(base64.b64decode(kv['key']).decode())
else:
    sys.exit('etcd_call.py: unknown op ' + op)
EOP
  cl_etcd_start
  etcd_call setup-auth "$USER_PW" || fail "could not enable auth in etcd: $(tail -n 5 "$T/etcd.log")"
  ETCD_AUTH=1
  etcd_call keys >/dev/null || fail "etcd does not answer root after auth enable"
  note "etcd auth enabled: user dcagent with role dc on /dc/"
}

ETCD_AUTH=0
etcd_call() {
  ip netns exec "$CL_HUB" env ETCD_AUTH="$ETCD_AUTH" "$PY" "$T/etcd_call.py" \
    "https://$CL_NET.254:2379" "$PKI" "$ROOT_PW" "$@"
}

cl_etcd_start() {
  [ -z "$CL_ETCD_PID" ] || fail "etcd is already running (pid $CL_ETCD_PID)"
  ip netns exec "$CL_HUB" etcd --name hub --data-dir "$T/etcd" \
    --listen-client-urls "https://$CL_NET.254:2379" --advertise-client-urls "https://$CL_NET.254:2379" \
    --cert-file "$PKI/server.crt" --key-file "$PKI/server.key" \
    --client-cert-auth --trusted-ca-file "$PKI/ca.crt" \
    --listen-peer-urls "http://127.0.0.1:2380" --initial-advertise-peer-urls "http://127.0.0.1:2380" \
    --initial-cluster "hub=http://127.0.0.1:2380" >>"$T/etcd.log" 2>&1 &
  CL_ETCD_PID=$!   # ip netns exec execs: this is etcd itself
  for _ in $(seq 1 100); do
    if etcd_call ready 2>/dev/null; then
      note "etcd (TLS, client certificates) up in $CL_HUB at https://$CL_NET.254:2379"
      return 0
    fi
    kill -0 "$CL_ETCD_PID" 2>/dev/null || fail "etcd exited: $(tail -n 5 "$T/etcd.log")"
    sleep 0.1
  done
  fail "etcd did not come up: $(tail -n 5 "$T/etcd.log")"
}

cl_etcd_kill() {
  kill -9 "$CL_ETCD_PID" 2>/dev/null || true
  wait "$CL_ETCD_PID" 2>/dev/null || true
  CL_ETCD_PID=""
}

# ring_ids I: the member ids in node I's ring, one line, sorted.
ring_ids() {
  node_ring_json "$1" | "$PY" -c 'import json,sys
print(" ".join(sorted(m["id"] for m in json.load(sys.stdin).get("members", []))))'
}

# wait_stat I NAME MIN SECONDS: until node I's counter NAME is >= MIN.
wait_stat() {
  local end=$((SECONDS + $4))
  while [ "$(node_stat "$1" "$2")" -lt "$3" ]; do
    [ $SECONDS -lt $end ] || fail "node $1: $2 = $(node_stat "$1" "$2"), want >= $3 after $4 s"
    sleep 0.2
  done
}

CL_MEMBERSHIP=etcd CL_ETCD_SCHEME="https://" cluster_up 6
total=$(gen_dataset "$T/data" 24)
md5_ref "$T/data" "$T/ref.json"

# The two good agents find each other through etcd; their rings hold just the
# two of them.
wait_member 1 n2 true 30 || fail "n1 does not see n2 through etcd over TLS"
wait_member 2 n1 true 30 || fail "n2 does not see n1 through etcd over TLS"
for i in 1 2; do
  grep -q "authenticated to etcd .* as user dcagent" "$(node_log "$i")" || fail "node $i did not log its etcd login"
  grep -q "registered in etcd" "$(node_log "$i")" || fail "node $i did not register in etcd"
done

# The refused ones: each says why in its log and counts it, and stays up.
wait_stat 3 etcd_tls_failures 1 20
wait_stat 4 etcd_tls_failures 1 20
wait_stat 5 etcd_auth_failures 1 20
wait_stat 6 etcd_auth_failures 1 20
grep -q "etcd refused us: TLS" "$(node_log 3)" || fail "node 3 (wrong CA) did not log a TLS refusal"
grep -q "etcd refused us: TLS" "$(node_log 4)" || fail "node 4 (no client certificate) did not log a TLS refusal"
grep -q "etcd refused us: .*authenticating as user dcagent" "$(node_log 5)" ||
  fail "node 5 (wrong password) did not log an auth refusal"
grep -q "etcd refused us: .* as user norole: HTTP 403 .*permission denied" "$(node_log 6)" ||
  fail "node 6 (no role on /dc/) did not log a permission refusal"
grep -E "etcd refused us" "$(node_log 3)" "$(node_log 4)" "$(node_log 5)" "$(node_log 6)" | sed 's/^/# /' | cut -c1-220 >&2
[ "$(node_stat 3 etcd_auth_failures)" -eq 0 ] || fail "node 3 counted an auth failure: TLS should stop it first"
for i in 5 6; do
  [ "$(node_stat "$i" etcd_tls_failures)" -eq 0 ] || fail "node $i counted a TLS failure, its certificates are good"
done
for i in 1 2; do
  [ "$(node_stat "$i" etcd_tls_failures)" -eq 0 ] || fail "node $i counted TLS failures"
  [ "$(node_stat "$i" etcd_auth_failures)" -eq 0 ] || fail "node $i counted auth failures"
done
keys=$(etcd_call keys | tr '\n' ' ')
[ "$keys" = "/dc/members/n1 /dc/members/n2 " ] || fail "etcd holds keys '$keys', want n1 and n2 only"
sleep 2   # a few more rounds of the refused agents' back-off
check_alive
for i in 1 2; do
  [ "$(ring_ids "$i")" = "n1 n2" ] || fail "node $i ring is '$(ring_ids "$i")', want 'n1 n2'"
done
for i in 3 4 5 6; do
  [ "$(ring_ids "$i")" = "n$i" ] || fail "refused node $i ring is '$(ring_ids "$i")', want itself only"
  # Logged once, not once per retry.
  [ "$(grep -c "etcd refused us" "$(node_log "$i")")" -le 3 ] || fail "node $i logs its refusal on every retry"
done

# Reading works, with correct bytes, and the two members share the work.
for i in 1 2; do start_reader "$i" 1 0 "cold$i"; pids[i]=$READER_PID; done
for i in 1 2; do wait_reader "cold$i" "${pids[i]}"; done
origin=$(( $(node_stat 1 bytes_origin) + $(node_stat 2 bytes_origin) ))
[ $((origin * 100)) -le $((total * 102)) ] || fail "origin read $origin bytes for a $total-byte dataset"
[ "$(node_stat 1 bytes_peer)" -gt 0 ] || fail "node 1 received nothing from n2"
start_reader 5 1 0 refused5   # a refused node still serves its readers (alone)
wait_reader refused5 "$READER_PID"

# The watch over TLS is as prompt as over plain HTTP (cluster_etcd's bound: a
# change seen by every member within 1 s; measured by polling dcctl).
# listed_ms ID yes|no: ms until nodes 1 and 2 both list ID (or not), 10 s at most.
listed_ms() {
  local t0 i want=$2 got
  t0=$(date +%s%N)
  for i in 1 2; do
    while :; do
      got=no
      "$DCCTL" --socket "${CL_SOCK[i]}" peers --json | grep -q "\"id\": \"$1\"" && got=yes
      [ "$got" = "$want" ] && break
      [ $(($(date +%s%N) - t0)) -lt 10000000000 ] || fail "node $i: $1 listed=$got after 10 s"
      sleep 0.02
    done
  done
  echo $((($(date +%s%N) - t0) / 1000000))
}
etcd_call put /dc/members/ghost0 "$CL_NET.199:$CL_PORT 1"
ms_put=$(listed_ms ghost0 yes)
etcd_call del /dc/members/ghost0
ms_del=$(listed_ms ghost0 no)
note "member change over TLS seen by both members: put $ms_put ms, delete $ms_del ms"
[ "$ms_put" -le 1000 ] && [ "$ms_del" -le 1000 ] || fail "a change took $ms_put/$ms_del ms over TLS (want <= 1000)"

# etcd restarts: the simple tokens it issued die with it. The agents are told
# "invalid auth token", log in again and re-register; a change flows again.
for i in 1 2; do logins[i]=$(grep -c "authenticated to etcd" "$(node_log "$i")"); done
cl_etcd_kill
sleep 3   # longer than the lease TTL
cl_etcd_start
for i in 1 2; do
  # Generous: etcd just restarted, checks passwords with bcrypt, and the box
  # may be loaded (load average 30 seen here).
  for _ in $(seq 1 300); do
    [ "$(grep -c "authenticated to etcd" "$(node_log "$i")")" -gt "${logins[i]}" ] && break
    sleep 0.1
  done
  [ "$(grep -c "authenticated to etcd" "$(node_log "$i")")" -gt "${logins[i]}" ] ||
    fail "node $i did not authenticate again after etcd restarted"
  for _ in $(seq 1 100); do [ -n "$(etcd_call get "/dc/members/n$i")" ] && break; sleep 0.3; done
  [ -n "$(etcd_call get "/dc/members/n$i")" ] || fail "n$i is not registered after etcd restarted"
done
etcd_call put /dc/members/ghost "$CL_NET.200:$CL_PORT 1"
for i in 1 2; do
  for _ in $(seq 1 100); do
    "$DCCTL" --socket "${CL_SOCK[i]}" peers --json | grep -q '"id": "ghost"' && break
    sleep 0.1
  done
  "$DCCTL" --socket "${CL_SOCK[i]}" peers --json | grep -q '"id": "ghost"' || fail "node $i missed a put after the restart"
done
etcd_call del /dc/members/ghost
for i in 1 2; do [ "$(node_stat "$i" etcd_bad_responses)" -eq 0 ] || fail "node $i found bad answers from etcd"; done
wait_member 1 n2 true 20
wait_member 2 n1 true 20
check_alive

# An agent stops promptly even while etcd hangs (SIGSTOP: connections open, no
# answer): its etcd thread is woken out of the watch wait, and a request in
# flight is aborted by libcurl's progress callback, not left to time out.
kill -STOP "$CL_ETCD_PID"
sleep 2   # keep-alives and the watch now hang on the stopped etcd
t0=$(date +%s%N)
kill -TERM "${CL_PID[1]}"
wait "${CL_PID[1]}" 2>/dev/null || true
stop_ms=$((($(date +%s%N) - t0) / 1000000))
CL_PID[1]=""
kill -CONT "$CL_ETCD_PID"
note "n1 stopped in $stop_ms ms with etcd hung"
[ "$stop_ms" -le 3000 ] || fail "n1 took $stop_ms ms to stop while etcd hung (want <= 3000)"
check_alive
note "etcd over TLS with auth ok: members n1 n2, refused n3 (wrong CA) n4 (no client cert) n5 (wrong password) n6 (no role)"
