#!/usr/bin/env bash
# Opt-outs. DC_SHIM_DISABLE=1: the shim is loaded but does nothing (native bytes,
# no fetch). DC_SHIM_EXCLUDE=prog[:prog...]: the named programs pass through while
# others in the same environment are still accelerated.
source "$(dirname "$0")/compat_lib.sh"

write_config 256MiB
gen_files "$DATA/a" 8 100000 1500000
start_agent

files=$(cd "$DATA" && find . -type f | sort)
run_cat()    { cat $files | md5sum; }   # stdout a pipe: cat read()s (no copy_file_range)
run_md5sum() { md5sum $files; }
run_python() { "$PY" -c 'import hashlib, sys; print([hashlib.md5(open(p, "rb").read()).hexdigest() for p in sys.argv[1:]])' $files; }

# optout_case NAME EXPECT VAR=VALUE... -- CMD...: CMD natively, then under the shim
# with the variables set; EXPECT is "none" (no fetch, no hit, no miss) or "hits".
optout_case() {
  local name=$1 expect=$2
  shift 2
  local -a vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  CASE_SEQ=$((CASE_SEQ + 1))
  run_pass native "" "$@"
  local f0 h0 m0 f1 h1 m1
  read -r f0 h0 m0 <<<"$(counters fetch_requests bytes_hit miss_reads)"
  # Exported for the duration of the pass only (run_pass runs it in a subshell).
  (for v in "${vars[@]}"; do export "$v"; done; run_pass shim "$SHIM" "$@")
  read -r f1 h1 m1 <<<"$(counters fetch_requests bytes_hit miss_reads)"
  same_as_native "$name" shim || true
  note "$name: fetch_requests +$((f1 - f0)) bytes_hit +$((h1 - h0)) miss_reads +$((m1 - m0))"
  case $expect in
    none) [ $((f1 - f0)) -eq 0 ] && [ $((h1 - h0)) -eq 0 ] && [ $((m1 - m0)) -eq 0 ] ||
      bad "$name: expected no cache activity, saw fetch_requests +$((f1 - f0)) bytes_hit +$((h1 - h0)) miss_reads +$((m1 - m0))" ;;
    hits) [ $((h1 - h0)) -gt 0 ] || bad "$name: expected cache hits, bytes_hit +$((h1 - h0))" ;;
    fetch) [ $((f1 - f0)) -gt 0 ] || bad "$name: expected fetches from the origin, fetch_requests +$((f1 - f0))" ;;
  esac
}

# Nothing is cached yet: a disabled shim must not fetch anything.
optout_case "DC_SHIM_DISABLE=1 cat" none DC_SHIM_DISABLE=1 -- run_cat
optout_case "DC_SHIM_DISABLE=1 python3" none DC_SHIM_DISABLE=1 -- run_python
optout_case "DC_SHIM_DISABLE=1 md5sum" none DC_SHIM_DISABLE=1 -- run_md5sum
# The same reads with DC_SHIM_DISABLE=0 (means enabled) do fetch: the checks above
# were not vacuous. A second pass then hits.
optout_case "DC_SHIM_DISABLE=0 cat (fills the cache)" fetch DC_SHIM_DISABLE=0 -- run_cat
optout_case "DC_SHIM_DISABLE=0 cat (from the cache)" hits DC_SHIM_DISABLE=0 -- run_cat
# Everything is cached now: an excluded program must still not be served.
optout_case "DC_SHIM_EXCLUDE=cat: cat passes through" none DC_SHIM_EXCLUDE=cat -- run_cat
optout_case "DC_SHIM_EXCLUDE=cat: md5sum still accelerated" hits DC_SHIM_EXCLUDE=cat -- run_md5sum
optout_case "DC_SHIM_EXCLUDE=foo:cat:bar: cat passes through" none DC_SHIM_EXCLUDE=foo:cat:bar -- run_cat
optout_case "DC_SHIM_EXCLUDE=foo:cat:bar: python3 still accelerated" hits DC_SHIM_EXCLUDE=foo:cat:bar -- run_python
optout_case "DC_SHIM_EXCLUDE=md5sum: md5sum passes through" none DC_SHIM_EXCLUDE=md5sum -- run_md5sum
# A disabled or excluded parent's children inherit the variable: still native.
optout_case "DC_SHIM_DISABLE=1 inherited by bash -> cat" none DC_SHIM_DISABLE=1 -- bash -c "cat $(echo $files) | md5sum"

compat_finish
