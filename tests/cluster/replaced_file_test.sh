#!/usr/bin/env bash
# Files replaced on the shared origin (cp -p + rename: same size and mtime, other
# bytes, a new inode) after two nodes cached them: both nodes then read the new
# bytes, and still share them, so both compute the same new key and each block
# of the new files leaves the origin about once (an asker and an owner that
# disagreed on the key would get "stale" and read the origin twice).
source "$(dirname "$0")/lib.sh"

cluster_up 2
mkdir -p "$T/stage"
FILES=8
SIZE=$((2 * 1048576 + 12345))
for ((k = 0; k < FILES; k++)); do
  head -c "$SIZE" /dev/urandom > "$T/data/f$k.bin"
  touch -d @1700000000 "$T/data/f$k.bin"
done
total=$((FILES * SIZE))
for p in "1 n2" "2 n1"; do
  set -- $p
  wait_member "$1" "$2" true 20 || { note "dcctl has no ring: waiting 3 s"; sleep 3; }
done

# read_all NODE REFDIR WHAT: every file read under the shim on NODE equals REFDIR's.
read_all() {
  local k
  for ((k = 0; k < FILES; k++)); do
    node_shim "$1" cat "$T/data/f$k.bin" | cmp -s - "$2/f$k.bin" ||
      fail "node $1: f$k.bin differs from the $3 file"
  done
}

cp -r "$T/data" "$T/old"
read_all 1 "$T/old" old
read_all 2 "$T/old" old
read_all 1 "$T/old" "old (cached)"

o0=$(sum_stat bytes_origin)
p1=$(node_stat 1 bytes_peer)
p2=$(node_stat 2 bytes_peer)
for ((k = 0; k < FILES; k++)); do
  f="$T/data/f$k.bin"
  head -c "$SIZE" /dev/urandom > "$T/stage/f$k.bin"
  touch -r "$f" "$T/stage/f$k.bin"
  before=$(stat -c '%s %y' "$f")
  cp -p "$T/stage/f$k.bin" "$f.tmp" && mv "$f.tmp" "$f"
  [ "$(stat -c '%s %y' "$f")" = "$before" ] || fail "f$k.bin: size or mtime changed: not the case under test"
done

read_all 2 "$T/stage" new
read_all 1 "$T/stage" new
check_alive
origin=$(($(sum_stat bytes_origin) - o0))
note "after the replace: origin bytes $origin for $total new bytes; bytes_peer +$(($(node_stat 1 bytes_peer) - p1)) on node 1, +$(($(node_stat 2 bytes_peer) - p2)) on node 2"
[ "$origin" -ge "$total" ] || fail "the nodes read only $origin bytes of $total new ones from the origin"
[ $((origin * 100)) -le $((total * 102)) ] || fail "the nodes read $origin bytes from the origin for $total: keys disagree?"
[ "$(node_stat 1 bytes_peer)" -gt "$p1" ] || fail "node 1 got none of the new files from its peer"
[ "$(node_stat 2 bytes_peer)" -gt "$p2" ] || fail "node 2 got none of the new files from its peer"
note "replaced file ok"
