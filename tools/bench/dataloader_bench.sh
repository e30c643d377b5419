#!/usr/bin/env bash
# dc DataLoader benchmark: a torch DataLoader epoch over an image-folder dataset of
# small files, read natively (warm page cache), under libdcshim.so (warm arena) and
# through a FUSE passthrough mount (bindfs) of the same directory, side by side.
#
#   sudo bash tools/bench/dataloader_bench.sh             # 20k files, ~2.2 GB
#   DC_BENCH_QUICK=1 sudo bash tools/bench/dataloader_bench.sh   # 4k files, ~450 MB
#
# Environment (all optional):
#   BUILD                 build dir (default ./build)
#   DC_BENCH_QUICK=1      4000 files instead of 20000
#   DC_BENCH_FILES        number of files (60-160 KiB each, ~110 KiB on average)
#   DC_BENCH_CLASSES      class folders (default: one per 200 files)
#   DC_BENCH_REPS         runs per configuration, median reported (default 5,
#                         quick 3; the full run takes ~5 min on 2 cpus)
#   DC_BENCH_WORKERS      DataLoader num_workers (default 4)
#   DC_BENCH_BATCH        DataLoader batch_size (default 64)
#   DC_BENCH_PERSISTENT=1 persistent_workers=True (default False: workers are forked
#                         afresh each epoch, the DataLoader default)
#   DC_BENCH_CACHE        agent [cache] memory (default 4GiB, quick 1GiB)
#   DC_BENCH_BINDFS_OPTS  bindfs options (default --no-allow-other: bindfs's default
#                         single-threaded mode; --multithreaded measured no faster
#                         here and used more CPU)
#   DC_BENCH_KEEP=1       keep the temp dir (data, config, agent log, run outputs)
#
# Each run is one python process: epoch 1 warms (page cache, dc arena, or FUSE
# path), epoch 2 is timed. Runs are interleaved native, shim, fuse, native, ... so
# drift on the machine hits every configuration alike. Every run uses the same
# seed, so every epoch 2 visits the files in the same order and must print the
# same checksum.
#
# Exit status: 0 when the benchmark ran (missed targets included: this is a
# measurement, not a test), 3 when configurations read different bytes (the figures
# are then meaningless), 1 on setup failure.
set -euo pipefail

die() { echo "dataloader_bench: $*" >&2; exit 1; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must run as root (FUSE mount, package install)"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EPOCH_PY=$HERE/dataloader_epoch.py
PY=/usr/bin/python3  # Debian's interpreter, with torch
BUILD=$(cd "${BUILD:-./build}" 2>/dev/null && pwd) || die "build dir ${BUILD:-./build} not found"
AGENT=$BUILD/daemon/dcagent
DCCTL=$BUILD/tools/dcctl
SHIM=$BUILD/shim/libdcshim.so
for f in "$AGENT" "$DCCTL" "$SHIM" "$EPOCH_PY"; do
  [[ -e $f ]] || die "$f missing: build first (ninja -C $BUILD)"
done
"$PY" -c 'import torch' 2>/dev/null || die "$PY cannot import torch"

if [[ ${DC_BENCH_QUICK:-0} == 1 ]]; then
  FILES=${DC_BENCH_FILES:-4000}
  CACHE=${DC_BENCH_CACHE:-1GiB}
else
  FILES=${DC_BENCH_FILES:-20000}
  CACHE=${DC_BENCH_CACHE:-4GiB}
fi
CLASSES=${DC_BENCH_CLASSES:-$(( FILES / 200 > 0 ? FILES / 200 : 1 ))}
if [[ ${DC_BENCH_QUICK:-0} == 1 ]]; then REPS=${DC_BENCH_REPS:-3}; else REPS=${DC_BENCH_REPS:-5}; fi
WORKERS=${DC_BENCH_WORKERS:-4}
BATCH=${DC_BENCH_BATCH:-64}
SEED=42
PERSIST_ARG=() PERSIST=False
if [[ ${DC_BENCH_PERSISTENT:-0} == 1 ]]; then PERSIST_ARG=(--persistent) PERSIST=True; fi

if ! command -v bindfs >/dev/null || ! command -v fusermount3 >/dev/null; then
  log "installing bindfs and fuse3"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y bindfs fuse3 >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y bindfs fuse3 >/dev/null; } ||
    die "apt-get install bindfs fuse3 failed"
fi
[[ -e /dev/fuse ]] || die "/dev/fuse missing: no FUSE in this kernel/container"

# Data on a real disk, not tmpfs: native and FUSE runs then read a real
# filesystem's page cache, and the agent's fill epoch reads the disk (O_DIRECT).
base=${TMPDIR:-/tmp}
if [[ $(stat -f -c %T "$base") == tmpfs ]]; then base=/var/tmp; fi
TMP=$(mktemp -d "$base/dc-dlbench.XXXXXX")
AGENT_PID='' BINDFS_PID=''
MNT=$TMP/mnt
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  if [[ -n $AGENT_PID ]]; then
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [[ -n $BINDFS_PID ]]; then  # exits by itself once unmounted
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$BINDFS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$BINDFS_PID" 2>/dev/null || true
    wait "$BINDFS_PID" 2>/dev/null || true
  fi
  if [[ ${DC_BENCH_KEEP:-0} == 1 ]]; then echo "dataloader_bench: kept $TMP" >&2
  elif mountpoint -q "$MNT" 2>/dev/null; then
    echo "dataloader_bench: $MNT still mounted: not removing $TMP" >&2
  else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $(stat -f -c %T "$TMP") != tmpfs ]] || echo "dataloader_bench: WARNING: $TMP is on tmpfs" >&2

DATA=$TMP/data
SOCK=$TMP/agent.sock
CONF=$TMP/dc.toml
LOG=$TMP/agent.log
OUT=$TMP/out
mkdir -p "$DATA" "$MNT" "$OUT"

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD0%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}'; then
  echo "dataloader_bench: WARNING: load average $LOAD0 on $(nproc) cpus: other work competes with the runs, expect noisy figures" >&2
fi

# ---- dataset (natively, once) -------------------------------------------------
log "generating $FILES files in $CLASSES class folders under $DATA"
gen=$("$PY" "$EPOCH_PY" gen "$DATA" --files "$FILES" --classes "$CLASSES")
sync
DATA_BYTES=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$gen")
log "$gen (synced)"

cat >"$CONF" <<EOF
[agent]
socket = "$SOCK"
[cache]
memory = "$CACHE"
[[dataset]]
name = "dlbench"
path = "$DATA"
EOF

# ---- agent and FUSE mount ---------------------------------------------------------
stats() { "$DCCTL" --socket "$SOCK" stats --json; }
start_agent() {
  rm -f "$SOCK"
  "$AGENT" --config "$CONF" 2>>"$LOG" &
  AGENT_PID=$!
  local i
  for ((i = 0; i < 400; i++)); do
    if [[ -S $SOCK ]] && stats >/dev/null 2>&1; then return 0; fi
    kill -0 "$AGENT_PID" 2>/dev/null || { tail -20 "$LOG" >&2; die "dcagent exited during start-up"; }
    sleep 0.05
  done
  tail -20 "$LOG" >&2
  die "dcagent socket $SOCK not ready after 20 s"
}
start_agent
log "agent up (pid $AGENT_PID), cache $CACHE, socket $SOCK"

# In the foreground (-f) so its pid is ours: to report its CPU time, and to stop it.
BINDFS_OPTS=${DC_BENCH_BINDFS_OPTS:---no-allow-other}
# shellcheck disable=SC2086
bindfs -f $BINDFS_OPTS "$DATA" "$MNT" 2>>"$TMP/bindfs.log" &
BINDFS_PID=$!
for ((i = 0; i < 100; i++)); do
  mountpoint -q "$MNT" && break
  kill -0 "$BINDFS_PID" 2>/dev/null || { cat "$TMP/bindfs.log" >&2; die "bindfs exited"; }
  sleep 0.05
done
mountpoint -q "$MNT" || die "$MNT is not a mount point 5 s after bindfs"
log "FUSE passthrough: bindfs -f $BINDFS_OPTS $DATA $MNT (pid $BINDFS_PID, $(bindfs --version 2>&1 | head -1))"

# ---- runs ------------------------------------------------------------------------
run_epochs() {  # run_epochs ROOT [--stats-cmd CMD]
  "$PY" "$EPOCH_PY" run "$@" --epochs 2 --seed "$SEED" --workers "$WORKERS" --batch "$BATCH" \
    "${PERSIST_ARG[@]}"
}
# field KEY LINE: value of key=value in a line.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
epoch_line() { grep "^EPOCH $2 " "$1"; }
median() {  # "na" if any value is not a number
  printf '%s\n' "$@" | sort -g | awk '$1 !~ /^[0-9.]+$/ {bad = 1} {v[NR] = $1}
    END {print bad ? "na" : v[int((NR + 1) / 2)]}'
}

declare -A SEC SPS MBS CPU HCPU
CKS1=() CKS2=()
SHIM_STATS=()
FILL_LINE='' FILL_STATS=''
for ((r = 1; r <= REPS; r++)); do
  for cfg in native shim fuse; do
    o=$OUT/$cfg.$r
    case $cfg in
      native) run_epochs "$DATA" >"$o" ;;
      shim) LD_PRELOAD=$SHIM DC_SOCKET=$SOCK run_epochs "$DATA" --helper-pid "$AGENT_PID" \
              --stats-cmd "$DCCTL --socket $SOCK stats --json" >"$o" ;;
      fuse) run_epochs "$MNT" --helper-pid "$BINDFS_PID" >"$o" ;;
    esac
    e1=$(epoch_line "$o" 1) e2=$(epoch_line "$o" 2)
    [[ -n $e1 && -n $e2 ]] || { cat "$o" >&2; die "$cfg run $r printed no epochs"; }
    log "  rep $r $cfg warm-up: $e1"
    log "  rep $r $cfg timed:   $e2"
    SEC[$cfg]+=" $(field seconds "$e2")" SPS[$cfg]+=" $(field samples_per_s "$e2")"
    MBS[$cfg]+=" $(field mb_per_s "$e2")" CPU[$cfg]+=" $(field cpu_s "$e2")"
    HCPU[$cfg]+=" $(field helper_cpu_s "$e2")"
    CKS1+=("$cfg.$r=$(field checksum "$e1")") CKS2+=("$cfg.$r=$(field checksum "$e2")")
    if [[ $cfg == shim ]]; then
      s1=$(grep '^DCSTATS 1 ' "$o" | cut -d' ' -f3-) s2=$(grep '^DCSTATS 2 ' "$o" | cut -d' ' -f3-)
      log "  rep $r shim counters, epoch 1: $s1"
      log "  rep $r shim counters, epoch 2: $s2"
      SHIM_STATS+=("$s2")
      if (( r == 1 )); then FILL_LINE=$e1 FILL_STATS=$s1; fi
    fi
  done
done

# ---- checks ----------------------------------------------------------------------
CHECK_FAIL=0
same_checksums() {  # same_checksums WHAT cfg.r=SUM...
  local what=$1; shift
  local first=${1#*=} x
  for x in "$@"; do
    [[ ${x#*=} == "$first" ]] || { echo "CHECKSUM MISMATCH $what: $*" >&2; CHECK_FAIL=1; return; }
  done
  log "check $what: all $# runs agree ($first)"
}
same_checksums "epoch 1" "${CKS1[@]}"
same_checksums "epoch 2" "${CKS2[@]}"
[[ ${CKS1[0]#*=} != "${CKS2[0]#*=}" ]] || log "WARNING: epochs 1 and 2 have the same checksum: shuffle not reseeding?"

# Served from the cache: every timed shim epoch must be all hits, no origin reads.
CACHE_OK=PASS
for ((i = 0; i < ${#SHIM_STATS[@]}; i++)); do
  st=${SHIM_STATS[$i]}
  hb=$(field bytes_hit "$st") mr=$(field miss_reads "$st") fr=$(field fallback_reads "$st")
  bo=$(field bytes_origin "$st")
  if (( hb < DATA_BYTES || mr != 0 || fr != 0 || bo != 0 )); then CACHE_OK=MISS; fi
done

# ---- report ----------------------------------------------------------------------
# The per-run lists are space-separated strings: split on purpose.
# shellcheck disable=SC2086
{
  sec_native=$(median ${SEC[native]}) sps_native=$(median ${SPS[native]})
  mbs_native=$(median ${MBS[native]}) cpu_native=$(median ${CPU[native]})
  sec_shim=$(median ${SEC[shim]}) sps_shim=$(median ${SPS[shim]})
  mbs_shim=$(median ${MBS[shim]}) cpu_shim=$(median ${CPU[shim]}) hcpu_shim=$(median ${HCPU[shim]})
  sec_fuse=$(median ${SEC[fuse]}) sps_fuse=$(median ${SPS[fuse]})
  mbs_fuse=$(median ${MBS[fuse]}) cpu_fuse=$(median ${CPU[fuse]}) hcpu_fuse=$(median ${HCPU[fuse]})
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r >= t) ? "PASS" : "MISS"}'; }
r_native=$(ratio "$sps_shim" "$sps_native")
r_fuse=$(ratio "$sps_shim" "$sps_fuse")
v_native=$(verdict "$r_native" 1.0)
v_fuse=$(verdict "$r_fuse" 3)
last=${SHIM_STATS[-1]}
gb=$(awk -v b="$DATA_BYTES" 'BEGIN {printf "%.2f", b / 1e9}')
us_per() { [[ $1 == na ]] && { echo na; return; }; awk -v c="$1" -v n="$FILES" 'BEGIN {printf "%.0f", c / n * 1e6}'; }

echo
echo "dc DataLoader benchmark: $FILES files ($gb GB, 60-160 KiB) in $CLASSES classes," \
  "num_workers=$WORKERS batch_size=$BATCH persistent_workers=$PERSIST (fork), shuffle seed $SEED;" \
  "timed epoch = 2nd epoch of each run, median of $REPS runs; cache $CACHE; bindfs $BINDFS_OPTS;" \
  "$(nproc) cpus, $(uname -r);" \
  "loadavg before/after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg)"
row() { printf '%-22s %9s %10s %8s %8s %9s %8s %12s %-7s %s\n' "$@"; }
row config epoch_s samples/s MB/s cpu_s us/sample helper_s shim_speedup target verdict
row native_warm "$sec_native" "$sps_native" "$mbs_native" "$cpu_native" "$(us_per "$cpu_native")" - \
  "$r_native" ">=1.0" "$v_native"
row shim_warm "$sec_shim" "$sps_shim" "$mbs_shim" "$cpu_shim" "$(us_per "$cpu_shim")" "$hcpu_shim" 1.00 "" ""
row "fuse_bindfs_warm" "$sec_fuse" "$sps_fuse" "$mbs_fuse" "$cpu_fuse" "$(us_per "$cpu_fuse")" "$hcpu_fuse" \
  "$r_fuse" ">=3" "$v_fuse"
fc=$(field cpu_s "$FILL_LINE")
row "shim_fill (run 1 ep 1)" "$(field seconds "$FILL_LINE")" "$(field samples_per_s "$FILL_LINE")" \
  "$(field mb_per_s "$FILL_LINE")" "$fc" "$(us_per "$fc")" "$(field helper_cpu_s "$FILL_LINE")" "" "" "(no target)"
echo "cpu_s: main process + the epoch's $WORKERS workers; helper_s: dcagent (shim) or bindfs (fuse) CPU during the epoch"
echo "per-run timed epochs (s): native:${SEC[native]}  shim:${SEC[shim]}  fuse:${SEC[fuse]}"
echo "per-run timed epoch cpu_s: native:${CPU[native]}  shim:${CPU[shim]}  fuse:${CPU[fuse]}"
echo "shim counters, fill epoch (run 1 epoch 1): $FILL_STATS"
echo "shim counters, timed epoch (last run):     $last"
echo "RESULT dl_shim_vs_native_warm ratio=$r_native target>=1.0 $v_native"
echo "RESULT dl_shim_vs_fuse_bindfs ratio=$r_fuse target>=3 $v_fuse"
echo "RESULT dl_shim_timed_epoch_from_cache bytes_hit=$(field bytes_hit "$last") dataset_bytes=$DATA_BYTES" \
  "miss_reads=$(field miss_reads "$last") fallback_reads=$(field fallback_reads "$last")" \
  "bytes_origin=$(field bytes_origin "$last") (all $REPS runs) $CACHE_OK"
if (( CHECK_FAIL )); then
  echo "CHECKSUM MISMATCH: configurations read different bytes; the figures above are not valid" >&2
  exit 3
fi
exit 0
