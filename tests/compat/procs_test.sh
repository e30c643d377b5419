#!/usr/bin/env bash
# Descriptors shared between threads and processes, exec/spawn with sanitised
# environments, stale descriptor numbers and mmap, through the dcfdshare helper
# (fdshare.cc) and Python. One group per meson test (argument 1):
#   threads | fork | exec | python_env | spawn_env | stale | closefrom | stdio | mmap
source "$(dirname "$0")/compat_lib.sh"

group=${1:?group}
PYC="$(cd "$(dirname "$0")" && pwd)/pycompat.py"
[ -x "$FDSHARE" ] || fail "dcfdshare not built: $FDSHARE"

write_config 256MiB
"$PY" - "$DATA" <<'EOP'
import os, random, sys
rng = random.Random(99)
for name, size in (("big.bin", 9 * 1048576 + 4567), ("other.bin", 300001)):
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(rng.randbytes(size))
EOP
# Every 8-byte word holds its own offset: read() chunks show where they came from.
"$FDSHARE" gen_counting "$DATA/counting.bin" $((8 * 1048576))
[ "$group" != python_env ] || "$PY" "$PYC" gen builtin "$DATA"
printf 'line one\nline two\r\n\nno newline at the end' >"$DATA/lines.txt"
start_agent

# expect_env_lines FILE WANT...: every line of FILE contains each WANT string.
expect_env_lines() {
  local file=$1 line w
  shift
  [ -s "$file" ] || { bad "probe printed nothing"; return; }
  while IFS= read -r line; do
    for w in "$@"; do
      [[ "$line" == *"$w"* ]] || bad "env probe: '$w' missing in: $line"
    done
  done <"$file"
}

case $group in
  threads)
    compat_case "dcfdshare threads_pread (8 threads pread one fd)" accel "$FDSHARE" threads_pread big.bin
    compat_case "dcfdshare threads_fds (8 threads, own fds)" accel "$FDSHARE" threads_fds big.bin
    compat_case "dcfdshare threads_read (8 threads read() one shared offset)" accel \
      "$FDSHARE" threads_read counting.bin
    ;;
  fork)
    # read() after fork shares one kernel offset between two processes: no byte may
    # be read twice or skipped. Run a few times: it is a race when it goes wrong.
    for i in 1 2 3; do
      compat_case "dcfdshare fork_read (parent+child read() one offset) #$i" accel "$FDSHARE" fork_read counting.bin
    done
    compat_case "dcfdshare fork_pread (parent+child pread one fd)" accel "$FDSHARE" fork_pread big.bin
    compat_case "dcfdshare fork_offset (child's read() moves the parent's offset)" accel \
      "$FDSHARE" fork_offset big.bin
    ;;
  exec)
    compat_case "dcfdshare exec_offset (exec'd helper reads inherited fd)" accel "$FDSHARE" exec_offset big.bin helper
    compat_case "dcfdshare exec_offset (bash 'head -c K <&N')" accel "$FDSHARE" exec_offset big.bin bash_head
    compat_case "dcfdshare exec_offset (dd on inherited stdin)" accel "$FDSHARE" exec_offset big.bin dd
    ;;
  python_env)
    # The parent reads no dataset file: hits on the second pass can only come from
    # the children, which get LD_PRELOAD back although started with env={}.
    compat_case "python3 subprocess.run(env={}) child reads" accel "$PY" "$PYC" subprocess read "$DATA"
    LD_PRELOAD="$SHIM" "$PY" "$PYC" subprocess probe "$DATA" >"$OUT/probe" 2>&1 || bad "probe failed: $(cat "$OUT/probe")"
    expect_env_lines "$OUT/probe" "LD_PRELOAD=$SHIM" "DC_SOCKET=$DC_SOCKET"
    grep -q "FOO: bar.*FOO=bar" "$OUT/probe" || bad "python env probe: the program's own FOO=bar was lost"
    "$PY" "$PYC" subprocess probe "$DATA" >"$OUT/probe.native" 2>&1
    expect_env_lines "$OUT/probe.native" "LD_PRELOAD=<unset>"
    note "python probe under the shim: $(head -n1 "$OUT/probe")"
    ;;
  spawn_env)
    compat_case "posix_spawn(p) md5sum with an empty env" accel "$FDSHARE" spawn_md5 big.bin
    LD_PRELOAD="$SHIM" "$FDSHARE" env_probe >"$OUT/probe" 2>&1 || bad "env_probe failed: $(cat "$OUT/probe")"
    expect_env_lines "$OUT/probe" "(exit 0)" "LD_PRELOAD=$SHIM" "DC_SOCKET=$DC_SOCKET"
    grep "+custom" "$OUT/probe" | grep -vq "FOO=bar" && bad "env probe: the program's own FOO=bar was lost"
    "$FDSHARE" env_probe >"$OUT/probe.native" 2>&1
    grep -q LD_PRELOAD=/ "$OUT/probe.native" && bad "native env probe shows a preload: $(cat "$OUT/probe.native")"
    note "env probe under the shim: $(grep posix_spawn+custom "$OUT/probe")"
    ;;
  stale)
    compat_case "dcfdshare stale (fd numbers reused after close)" accel "$FDSHARE" stale big.bin
    ;;
  closefrom)
    # The program closes every descriptor from 3 up, as daemons and spawners do;
    # what it opens next must stay its own.
    compat_case "dcfdshare closefrom_conn (closefrom(3), then own files + a fetch)" correct \
      "$FDSHARE" closefrom_conn big.bin "$DATA"
    ;;
  stdio)
    compat_case "dcfdshare stdio (fread/fseek/ungetc/getline/setvbuf/fdopen)" accel "$FDSHARE" stdio big.bin lines.txt
    compat_case "dcfdshare stdio getline (python-generated text)" accel "$FDSHARE" stdio other.bin counting.bin
    compat_case "dcfdshare freopen (fopen'd dataset stream onto another file)" accel "$FDSHARE" freopen big.bin other.bin
    ;;
  mmap)
    compat_case "dcfdshare mmap (mmap of a dataset fd, then read() on)" accel "$FDSHARE" mmap big.bin
    ;;
  *) fail "unknown group $group" ;;
esac

compat_finish
