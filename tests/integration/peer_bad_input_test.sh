#!/usr/bin/env bash
# A real agent with a cluster port on loopback is sent every kind of malformed or
# unauthenticated peer message; each is dropped and counted, refused requests from
# an authenticated peer leave its connection usable, and the agent stays up and
# keeps serving readers correct bytes. Range fetches of a block return the file's
# bytes with a matching CRC. After the handshake frames are sealed (DC_PEER_INTEGRITY,
# the agent's cluster.integrity; unset: the default): altered, replayed and unsealed
# frames drop the connection and count as peer_auth_errors.
source "$(dirname "$0")/lib.sh"

write_config 64MiB
head -c 1500000 /dev/urandom > "$T/data/a.bin"
ln -s /etc/passwd "$T/data/escape"
head -c 48 /dev/urandom > "$T/cluster.key"
chmod 600 "$T/cluster.key"
cp "$T/agent.toml" "$T/base.toml"
# A free port of our own: try a few at random until the agent binds one.
for attempt in 1 2 3 4 5; do
  PORT=$((20000 + RANDOM % 40000))
  cp "$T/base.toml" "$T/agent.toml"
  cat >> "$T/agent.toml" <<EOC
[cluster]
node_id = "lone"
listen = "127.0.0.1:$PORT"
secret_file = "$T/cluster.key"
EOC
  # DC_PEER_SEND: the send path under test (cluster.send); unset: the default.
  [ -z "${DC_PEER_SEND:-}" ] || echo "send = \"$DC_PEER_SEND\"" >> "$T/agent.toml"
  [ -z "${DC_PEER_INTEGRITY:-}" ] || echo "integrity = \"$DC_PEER_INTEGRITY\"" >> "$T/agent.toml"
  if "$DCAGENT" --config "$T/agent.toml" >>"$T/agent.log" 2>&1 & AGENT_PID=$!; sleep 0.3; kill -0 "$AGENT_PID" 2>/dev/null; then
    break
  fi
  AGENT_PID=""
done
[ -n "$AGENT_PID" ] || fail "could not start an agent on a free port"
for _ in $(seq 1 100); do "$DCCTL" stats >/dev/null 2>&1 && break; sleep 0.05; done

"$DC_BUILD/tests/integration/dcbadpeer" 127.0.0.1 "$PORT" "$T/cluster.key" test "$T/data" a.bin \
  "${DC_PEER_INTEGRITY:-mac}" || fail "peer bad input"
agent_alive || fail "agent died"
rejected=$(counter peers_rejected)
[ "$rejected" -ge 9 ] || fail "peers_rejected is $rejected, expected every bad peer counted"
grep -q "dropped unauthenticated peer" "$T/agent.log" || fail "bad peers were not logged"
auth_errors=$(counter peer_auth_errors)
if [ "${DC_PEER_INTEGRITY:-mac}" = crc ]; then
  [ "$auth_errors" -eq 0 ] || fail "peer_auth_errors is $auth_errors with integrity = crc"
else
  # Five sealed frames altered, replayed or unsealed (dcbadpeer), each counted once.
  [ "$auth_errors" -ge 5 ] || fail "peer_auth_errors is $auth_errors, expected every bad sealed frame counted"
  grep -q "authentication failed on" "$T/agent.log" || fail "bad sealed frames were not logged"
fi
[ "$(shim cat "$T/data/a.bin" | md5sum)" = "$(md5sum < "$T/data/a.bin")" ] || fail "reader got wrong bytes"
[ "$(counter cache_pinned_blocks)" -eq 0 ] || sleep 0.2
[ "$(counter cache_pinned_blocks)" -eq 0 ] || fail "blocks still pinned after every transfer ended"
[ "$(counter cache_bad_unpins)" -eq 0 ] || fail "a pin was released twice"
# The range fetches were answered by the send path under test.
case "${DC_PEER_SEND:-copy}" in
  copy) [ "$(counter peer_pinned_replies)" -eq 0 ] || fail "send = copy pinned replies" ;;
  *) [ "$(counter peer_pinned_replies)" -gt 0 ] || fail "send = $DC_PEER_SEND sent no reply in place" ;;
esac
echo "peer bad input: ok (peers_rejected=$rejected, peer_auth_errors=$auth_errors, send path ${DC_PEER_SEND:-default}, integrity ${DC_PEER_INTEGRITY:-default})"
