#!/usr/bin/env bash
# File offsets stay right for sendfile, splice, copy_file_range, SCM_RIGHTS, fork,
# exec and dup while the shim serves reads, whether the offset lives in the kernel
# or (O_CLOEXEC descriptors) in user space; run cold (misses) and warm (hits).
source "$(dirname "$0")/lib.sh"
write_config 64MiB
head -c 3000000 /dev/urandom > "$T/data/a.bin"
head -c 2500000 /dev/urandom > "$T/data/b.bin"
: > "$T/data/empty.bin"
mkdir "$T/data/many" && (cd "$T/data/many" && seq -f 'entry-with-a-longish-name-%05g' 2000 | xargs touch)
# 8-byte words each holding its own offset: a read says where it came from.
/usr/bin/python3 -c 'import struct,sys; sys.stdout.buffer.write(b"".join(struct.pack("<Q", i * 8) for i in range(400000)))' > "$T/data/words.bin"
start_agent
shim "$DC_BUILD/tests/integration/dcoffsets" "$T/data/a.bin" "$T/data/b.bin" "$T/data/words.bin" || fail "cold run"
shim "$DC_BUILD/tests/integration/dcoffsets" "$T/data/a.bin" "$T/data/b.bin" "$T/data/words.bin" || fail "warm run"
[ "$(counter hit_reads)" -gt 0 ] || fail "the warm run was not served from the cache"
echo "offsets: ok"
