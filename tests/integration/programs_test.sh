#!/usr/bin/env bash
# Real, unmodified programs read a generated dataset natively and under the shim:
# the bytes must be identical, and the second pass under the shim must be served
# from the cache.
source "$(dirname "$0")/lib.sh"

write_config 256MiB
gen_files "$T/data/imgs" 40 1000 300000          # small files, like images
gen_files "$T/data/big" 3 3000000 5000000         # multi-block files
printf 'last line without newline' > "$T/data/tail.txt"
start_agent

files=$(find "$T/data" -type f | sort)

run_cat()    { for f in $files; do cat "$f"; done | md5sum; }
run_md5()    { md5sum $files; }   # reads through stdio (fopen/fread)
run_dd()     { for f in $files; do dd if="$f" bs=4k status=none; done | md5sum; }
run_dd_big() { for f in $files; do dd if="$f" bs=1M status=none; done | md5sum; }
run_python() {
  "$PY" - $files <<'EOP'
import hashlib, sys
h = hashlib.md5()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        h.update(f.read())
print(h.hexdigest())
EOP
}

for prog in cat md5 dd dd_big python; do
  native=$(run_$prog)
  cold=$(shim run_$prog)
  hits_before=$(counter bytes_hit)
  warm=$(shim run_$prog)
  hits_after=$(counter bytes_hit)
  [ "$native" = "$cold" ] || fail "$prog: cold pass under the shim differs from native"
  [ "$native" = "$warm" ] || fail "$prog: warm pass under the shim differs from native"
  note "$prog: identical; bytes_hit +$((hits_after - hits_before))"
  [ $((hits_after - hits_before)) -gt 0 ] || fail "$prog: second pass was not served from the cache"
done

# The second passes came from the arena, not the origin: origin bytes stay at one
# copy of the dataset however many passes ran.
total=$(du -cb $files | tail -n1 | cut -f1)
origin=$(counter bytes_origin)
[ "$origin" -le "$total" ] || fail "origin read $origin bytes for a dataset of $total"
[ "$(counter fetch_errors)" -eq 0 ] || fail "fetch errors: $(counter fetch_errors)"
agent_alive || fail "agent died"
echo "programs: ok (dataset $total bytes, origin read $origin)"
