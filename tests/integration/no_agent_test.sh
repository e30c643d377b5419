#!/usr/bin/env bash
# With no agent at all, or a socket path where nothing listens, or the shim
# disabled, programs under the shim read exactly what they read without it.
source "$(dirname "$0")/lib.sh"
write_config 64MiB
gen_files "$T/data" 10 1 3000000
files=$(find "$T/data" -type f | sort)
native=$(cat $files | md5sum)
[ "$(shim cat $files | md5sum)" = "$native" ] || fail "cat with no agent"
[ "$(DC_SOCKET=/nonexistent/dir/sock shim cat $files | md5sum)" = "$native" ] || fail "cat with a bad socket path"
[ "$(DC_SHIM_DISABLE=1 shim cat $files | md5sum)" = "$native" ] || fail "cat with the shim disabled"
: > "$DC_SOCKET"   # a regular file where the socket should be
[ "$(shim cat $files | md5sum)" = "$native" ] || fail "cat with a non-socket at the socket path"
rm -f "$DC_SOCKET"
start_agent
[ "$(DC_SHIM_DISABLE=1 shim cat $files | md5sum)" = "$native" ] || fail "cat with the shim disabled"
[ "$(counter fetch_requests)" -eq 0 ] || fail "a disabled shim talked to the agent"
echo "no agent: ok"
