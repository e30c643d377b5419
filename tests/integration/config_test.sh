#!/usr/bin/env bash
# A bad config fails at start with the file, the line and the key, and nothing
# starts; a good one passes --check-config.
source "$(dirname "$0")/lib.sh"
write_config 64MiB
"$DCAGENT" --check-config "$T/agent.toml" > "$T/check.out" || fail "valid config rejected"
grep -q "config OK" "$T/check.out" || fail "no OK line"

cat > "$T/bad1.toml" <<'EOC'
[agent]
socket = "/tmp/x.sock"

[cache]
memroy = "4GiB"
EOC
if "$DCAGENT" --config "$T/bad1.toml" 2> "$T/err1"; then fail "unknown key accepted"; fi
grep -q "bad1.toml:5: key 'cache.memroy': unknown key" "$T/err1" || fail "message lacks file:line:key: $(cat "$T/err1")"
[ ! -S /tmp/x.sock ] || fail "agent started half-configured"

printf '[cache]\nmemory = "12 parsecs"\n' > "$T/bad2.toml"
if "$DCAGENT" --check-config "$T/bad2.toml" 2> "$T/err2"; then fail "bad size accepted"; fi
grep -q "bad2.toml:2: key 'cache.memory'" "$T/err2" || fail "bad size message: $(cat "$T/err2")"

printf '[cache\nmemory = 1\n' > "$T/bad3.toml"
if "$DCAGENT" --check-config "$T/bad3.toml" 2> "$T/err3"; then fail "syntax error accepted"; fi
grep -q "bad3.toml:1" "$T/err3" || fail "syntax error message: $(cat "$T/err3")"

if "$DCAGENT" --check-config "$T/missing.toml" 2> "$T/err4"; then fail "missing file accepted"; fi
grep -q "missing.toml" "$T/err4" || fail "missing file message: $(cat "$T/err4")"

# A second agent on the same socket refuses to start and leaves the first alone.
start_agent
if "$DCAGENT" --config "$T/agent.toml" 2> "$T/err5"; then fail "second agent started"; fi
grep -q "already listening" "$T/err5" || fail "second agent message: $(cat "$T/err5")"
agent_alive && "$DCCTL" stats >/dev/null || fail "first agent disturbed"
"$DCAGENT" --check-config "$(dirname "$0")/../../tools/agent.example.toml" >/dev/null || fail "the example config does not validate"
echo "config: ok"
