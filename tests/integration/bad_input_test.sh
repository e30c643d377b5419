#!/usr/bin/env bash
# Every malformed control message kind is sent to a real agent; each offending
# session is dropped and counted, well-formed but disallowed requests are refused,
# and the agent stays up and keeps serving readers correct bytes.
source "$(dirname "$0")/lib.sh"

write_config 64MiB
head -c 200000 /dev/urandom > "$T/data/a.bin"
ln -s /etc/passwd "$T/data/escape"
start_agent

"$DC_BUILD/tests/integration/dcbadclient" "$DC_SOCKET" || fail "bad input handling"
agent_alive || fail "agent died"
bad=$(counter bad_messages)
[ "$bad" -ge 15 ] || fail "bad_messages counter is $bad, expected every malformed message counted"
grep -q "closing session" "$T/agent.log" || fail "malformed sessions were not logged"

# A reader under the shim is still served, and correctly.
[ "$(shim cat "$T/data/a.bin" | md5sum)" = "$(md5sum < "$T/data/a.bin")" ] || fail "reader got wrong bytes"
[ "$(shim cat "$T/data/a.bin" | md5sum)" = "$(md5sum < "$T/data/a.bin")" ] || fail "reader got wrong bytes"
[ "$(counter hit_reads)" -gt 0 ] || fail "reader was not served from the cache after the bad input"
echo "bad input: ok (bad_messages=$bad)"
