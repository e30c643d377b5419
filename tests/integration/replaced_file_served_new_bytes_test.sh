#!/usr/bin/env bash
# A dataset file replaced by another of the same size and mtime, in each of the
# ways datasets are updated (cp -p + rename, rsync -a, tar -x, touch -r + rename,
# and tar -x --overwrite in place), by programs not under the shim:
#  - a new process under the shim reads the new bytes, and the agent read them from
#    the origin (the old pages and the agent's descriptor of the old inode are not
#    used for it);
#  - a process under the shim that had the file open before the replace reads what
#    it would natively: the old inode's bytes.
# Sizes and mtimes are checked equal before and after, so the only differences
# left are the inode number and the ctime (include/dc/file_key.h).
source "$(dirname "$0")/lib.sh"
write_config 64MiB
mkdir -p "$T/stage" "$T/old"
command -v rsync >/dev/null || skip "rsync is not installed (tools/setup.sh)"

SIZE=$((3 * 1048576 + 12345))  # three blocks and a partial one
# Whole seconds: tar's default (gnu) format keeps no sub-second mtime.
MTIME=@1700000000

# The holder: opens the file, reads its first block (cached), says so, waits for
# the go file, then reads the rest and the whole file again by pread.
cat > "$T/holder.py" <<'EOP'
import os, sys, time
path, ready, go, out = sys.argv[1:5]
with open(path, "rb") as f:
    first = f.read(1 << 20)
    open(ready, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("holder: no go")
        time.sleep(0.05)
    rest = f.read()
    again = os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0)
with open(out, "wb") as o:
    o.write(first + rest)
with open(out + ".pread", "wb") as o:
    o.write(again)
EOP

random_file() { head -c "$SIZE" /dev/urandom > "$1"; }
version() { stat -c '%s %y' "$1"; }  # size and mtime to the ns: what must not change
wait_for() {
  for _ in $(seq 1 1200); do
    [ -e "$1" ] && return 0
    sleep 0.05
  done
  fail "timed out waiting for $1"
}

# replace METHOD FILE NEWBYTES: puts NEWBYTES (same size, mtime set to FILE's) at FILE.
replace() {
  local m=$1 f=$2 src=$3 name
  name=$(basename "$f")
  touch -r "$f" "$src"
  case $m in
    cp_p_rename | old_descriptor) cp -p "$src" "$f.tmp" && mv "$f.tmp" "$f" ;;
    # -I: same size and mtime would otherwise make rsync skip the file itself.
    rsync_a) rsync -a -I "$src" "$f" ;;
    tar_x) tar -C "$(dirname "$src")" -cf "$T/$m.tar" "$name" && tar -C "$(dirname "$f")" -xf "$T/$m.tar" ;;
    touch_r_rename)
      cat "$src" > "$f.new" && touch -r "$f" "$f.new" && mv "$f.new" "$f" ;;
    # Rewrites the same inode: only the ctime tells the versions apart.
    tar_x_overwrite)
      tar -C "$(dirname "$src")" -cf "$T/$m.tar" "$name" && tar -C "$(dirname "$f")" --overwrite -xf "$T/$m.tar" ;;
    *) fail "unknown method $m" ;;
  esac
}

# DC_REPLACE_METHODS picks some (to check each alone against an older build).
start_agent
# old_descriptor (cp -p + rename): only the holder's first block was read before
# the replace, so the agent holds a descriptor of the old inode while the last
# blocks are in no cache: a new reader of those must not be read through it.
for m in ${DC_REPLACE_METHODS:-cp_p_rename rsync_a tar_x touch_r_rename tar_x_overwrite old_descriptor}; do
  f="$T/data/$m.bin"
  random_file "$f"
  touch -d "$MTIME" "$f"
  cp "$f" "$T/old/$m.bin"
  if [ "$m" != old_descriptor ]; then
    # Cached under the shim: a first read fills it, a second is served by hits.
    shim cat "$f" | cmp -s - "$T/old/$m.bin" || fail "$m: first read of the old file"
    h0=$(counter hit_reads)
    shim cat "$f" | cmp -s - "$T/old/$m.bin" || fail "$m: cached read of the old file"
    [ "$(counter hit_reads)" -gt "$h0" ] || fail "$m: the old file was not served from the cache"
  fi

  # In place, the open description sees the new bytes natively: not a case for the holder.
  holder=0
  if [ "$m" != tar_x_overwrite ]; then
    holder=1
    # Not through the shim() function: $! must be python's own pid, for cleanup.
    LD_PRELOAD="$SHIM" "$PY" "$T/holder.py" "$f" "$T/$m.ready" "$T/$m.go" "$T/$m.held" &
    hpid=$!
    EXTRA_PIDS+=("$hpid")
    wait_for "$T/$m.ready"
  fi
  if [ "$m" = old_descriptor ]; then
    [ "$(counter origin_files_open)" -ge 1 ] || fail "$m: the agent holds no origin descriptor: not the case under test"
  fi

  before=$(version "$f")
  ino_before=$(stat -c %i "$f")
  random_file "$T/stage/$m.bin"
  replace "$m" "$f" "$T/stage/$m.bin"
  cmp -s "$f" "$T/stage/$m.bin" || fail "$m: the replace did not put the new bytes in place"
  cmp -s "$f" "$T/old/$m.bin" && fail "$m: new bytes equal the old ones"
  [ "$(version "$f")" = "$before" ] || fail "$m: size or mtime changed ($before -> $(version "$f")): not the case under test"
  note "$m: inode $ino_before -> $(stat -c %i "$f"), size and mtime kept"

  o0=$(counter bytes_origin)
  if [ "$m" = old_descriptor ]; then
    tail_from=$((2 * 1048576 + 1))  # blocks 2 and 3: beyond the holder's read and readahead
    shim tail -c +"$tail_from" "$f" | cmp - <(tail -c +"$tail_from" "$T/stage/$m.bin") ||
      fail "$m: a new process was served the old inode's bytes through the agent's descriptor"
  fi
  # Through a pipe: cat would hand a regular-file output to copy_file_range, in the kernel.
  shim cat "$f" | cat > "$T/$m.new"
  cmp "$T/$m.new" "$T/stage/$m.bin" || fail "$m: a new process was served the old file's bytes"
  o1=$(counter bytes_origin)
  [ $((o1 - o0)) -ge "$SIZE" ] || fail "$m: the agent did not fetch the new file (bytes_origin +$((o1 - o0)))"
  # Now cached: served again, still the new bytes.
  shim cat "$f" | cmp - "$T/stage/$m.bin" || fail "$m: a second new process read other bytes"

  if [ "$holder" = 1 ]; then
    touch "$T/$m.go"
    wait "$hpid" || fail "$m: the holder failed"
    cmp "$T/$m.held" "$T/old/$m.bin" || fail "$m: the process holding the old file did not read the old bytes"
    cmp "$T/$m.held.pread" "$T/old/$m.bin" || fail "$m: pread of the old file by its holder differs"
  fi
  agent_alive || fail "agent died"
  echo "$m: ok"
done
echo "replaced_file_served_new_bytes: ok"
