#!/usr/bin/env bash
# dc benchmark: native reads vs the same reads under libdcshim.so, side by side.
#
#   sudo bash tools/bench/run_bench.sh            # 512 MiB hot file, 256 MiB cold set
#   DC_BENCH_QUICK=1 sudo bash tools/bench/run_bench.sh
#
# Environment (all optional):
#   BUILD                 build dir (default ./build)
#   DC_BENCH_QUICK=1      64 MiB hot file, 64 MiB cold set, 1 s runs
#   DC_BENCH_HOT_MIB      size of the hot file
#   DC_BENCH_COLD_MIB     total size of the cold set
#   DC_BENCH_COLD_FILES   number of files in the cold set (default 16)
#   DC_BENCH_SECONDS      duration of each timed hot run (default 3)
#   DC_BENCH_REPS         repetitions per measurement, median reported (default 3)
#   DC_BENCH_KEEP=1       keep the temp dir (data, config, agent log)
#
# Root is required for drop_caches. Exit status: 0 when the benchmark ran (missed
# targets included: this is a measurement, not a test), 3 when native and shim read
# different bytes (the figures are then meaningless), 1 on setup failure.
set -euo pipefail

die() { echo "run_bench: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (drop_caches)"

BUILD=$(cd "${BUILD:-./build}" 2>/dev/null && pwd) || die "build dir ${BUILD:-./build} not found"
READBENCH=$BUILD/tools/bench/readbench
AGENT=$BUILD/daemon/dcagent
DCCTL=$BUILD/tools/dcctl
SHIM=$BUILD/shim/libdcshim.so
for f in "$READBENCH" "$AGENT" "$DCCTL" "$SHIM"; do
  [[ -e $f ]] || die "$f missing: build first (ninja -C $BUILD)"
done

if [[ ${DC_BENCH_QUICK:-0} == 1 ]]; then
  HOT_MIB=${DC_BENCH_HOT_MIB:-64}
  COLD_MIB=${DC_BENCH_COLD_MIB:-64}
  SECS=${DC_BENCH_SECONDS:-1}
else
  HOT_MIB=${DC_BENCH_HOT_MIB:-512}
  COLD_MIB=${DC_BENCH_COLD_MIB:-256}
  SECS=${DC_BENCH_SECONDS:-3}
fi
COLD_FILES=${DC_BENCH_COLD_FILES:-16}
REPS=${DC_BENCH_REPS:-3}
(( COLD_MIB >= COLD_FILES )) || die "DC_BENCH_COLD_MIB must be >= DC_BENCH_COLD_FILES"

# The temp dir must be on a real disk, not tmpfs: the cold test needs an origin
# that drop_caches actually empties.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dc-bench.XXXXXX")
AGENT_PID=
cleanup() {
  if [[ -n $AGENT_PID ]]; then
    kill "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
  fi
  if [[ ${DC_BENCH_KEEP:-0} == 1 ]]; then echo "run_bench: kept $TMP" >&2
  else rm -rf "$TMP"; fi
}
trap cleanup EXIT
# Without these, SIGINT/SIGTERM would kill bash without running the EXIT trap and
# leave the agent running.
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ $(stat -f -c %T "$TMP") == tmpfs ]]; then
  echo "run_bench: WARNING: $TMP is on tmpfs: cold figures measure memory, not disk" >&2
fi

DATA=$TMP/data
SOCK=$TMP/agent.sock
CONF=$TMP/dc.toml
LOG=$TMP/agent.log
mkdir -p "$DATA/cold"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- dataset ---------------------------------------------------------------
# Random bytes: compressible or repeated data could flatter a cache or the disk.
log "generating dataset: hot ${HOT_MIB} MiB, cold ${COLD_MIB} MiB in ${COLD_FILES} files under $DATA"
HOT=$DATA/hot.bin
head -c "$((HOT_MIB << 20))" /dev/urandom >"$HOT"
COLD=()
per=$(( (COLD_MIB << 20) / COLD_FILES ))
for ((i = 0; i < COLD_FILES; i++)); do
  f=$(printf '%s/cold/part-%03d.bin' "$DATA" "$i")
  head -c "$per" /dev/urandom >"$f"
  COLD+=("$f")
done
sync

# Room for everything at once, so no test measures eviction.
CACHE_MIB=$(( HOT_MIB + COLD_MIB + 256 ))
cat >"$CONF" <<EOF
[agent]
socket = "$SOCK"
[cache]
memory = "${CACHE_MIB}MiB"
[[dataset]]
name = "bench"
path = "$DATA"
EOF

# ---- agent -----------------------------------------------------------------
stats() { "$DCCTL" --socket "$SOCK" stats --json; }
# counter NAME [JSON]: one counter from a `dcctl stats --json` line.
counter() {
  local json=${2:-$(stats)}
  local v
  v=$(sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" <<<"$json")
  [[ -n $v ]] || die "counter $1 missing from stats: $json"
  echo "$v"
}

start_agent() {
  rm -f "$SOCK"
  "$AGENT" --config "$CONF" 2>>"$LOG" &
  AGENT_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    if [[ -S $SOCK ]] && stats >/dev/null 2>&1; then return 0; fi
    kill -0 "$AGENT_PID" 2>/dev/null || { tail -20 "$LOG" >&2; die "dcagent exited during start-up"; }
    sleep 0.05
  done
  tail -20 "$LOG" >&2
  die "dcagent socket $SOCK not ready after 10 s"
}

stop_agent() {
  [[ -n $AGENT_PID ]] || return 0
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=
}

drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

native() { "$READBENCH" "$@"; }
shimmed() { LD_PRELOAD=$SHIM DC_SOCKET=$SOCK "$READBENCH" "$@"; }

# field KEY LINE: value of key=value in a readbench output line.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

CHECK_FAIL=0
# check_same WHAT NATIVE SHIM: both runs must have read the same bytes.
check_same() {
  if [[ $2 == "$3" ]]; then
    log "check $1: native and shim checksums agree ($2)"
  else
    echo "CHECKSUM MISMATCH $1: native=$2 shim=$3" >&2
    CHECK_FAIL=1
  fi
}

# Counters around a shim phase: a hot phase must be all hits, no origin reads.
snap() { stats; }
delta_report() {  # delta_report WHAT BEFORE_JSON AFTER_JSON
  local k out=""
  for k in hit_reads miss_reads fallback_reads bytes_origin; do
    out+=" $k=$(( $(counter "$k" "$3") - $(counter "$k" "$2") ))"
  done
  log "shim counters during $1:$out"
  echo "$out"
}

start_agent
log "agent up (pid $AGENT_PID), cache ${CACHE_MIB} MiB, socket $SOCK"

# ---- warm-up -----------------------------------------------------------------
log "warming: native page cache and dc arena with the hot file"
native cold "$HOT" >/dev/null
before=$(snap)
shimmed cold "$HOT" >/dev/null
after=$(snap)
used=$(counter cache_bytes_used "$after")
origin=$(( $(counter bytes_origin "$after") - $(counter bytes_origin "$before") ))
hot_bytes=$((HOT_MIB << 20))
if (( used < hot_bytes )); then
  echo "run_bench: WARNING: arena holds $used bytes after the warm read, hot file is $hot_bytes: shim hot runs will miss" >&2
fi
log "arena after warm read: cache_bytes_used=$used bytes_origin(warm)=$origin (hot file $hot_bytes)"

# ---- a. hot 4 KiB random pread ----------------------------------------------
log "a. hot pread4k: ${REPS} x (native, shim), ${SECS} s each"
NP=() SP=()
before=$(snap)
for ((r = 1; r <= REPS; r++)); do
  n=$(native pread4k "$HOT" "$SECS")
  s=$(shimmed pread4k "$HOT" "$SECS")
  log "  rep $r native: $n"
  log "  rep $r shim:   $s"
  NP+=("$(field ops_per_s "$n")") SP+=("$(field ops_per_s "$s")")
  check_same "pread4k content rep $r" "$(field content_sum "$n")" "$(field content_sum "$s")"
  check_same "pread4k random rep $r" "$(field checksum "$n")" "$(field checksum "$s")"
done
D_PREAD=$(delta_report "hot pread4k" "$before" "$(snap)")

# ---- b. hot 1 MiB sequential read ---------------------------------------------
log "b. hot seq1m: ${REPS} x (native, shim), ${SECS} s each"
NS=() SS=()
before=$(snap)
for ((r = 1; r <= REPS; r++)); do
  n=$(native seq1m "$HOT" "$SECS")
  s=$(shimmed seq1m "$HOT" "$SECS")
  log "  rep $r native: $n"
  log "  rep $r shim:   $s"
  NS+=("$(field mb_per_s "$n")") SS+=("$(field mb_per_s "$s")")
  check_same "seq1m rep $r" "$(field checksum "$n")" "$(field checksum "$s")"
done
D_SEQ=$(delta_report "hot seq1m" "$before" "$(snap)")

# ---- c. cold read of the cold set ---------------------------------------------
# Native: empty page cache. Shim: empty arena (fresh agent) and empty page cache,
# so every byte comes from the disk through the agent. Agent start-up is not timed.
log "c. cold: ${REPS} x (native, shim) over ${#COLD[@]} files"
NC=() SC=()
D_COLD=""
for ((r = 1; r <= REPS; r++)); do
  drop_caches
  n=$(native cold "${COLD[@]}")
  stop_agent
  start_agent
  drop_caches
  before=$(snap)
  s=$(shimmed cold "${COLD[@]}")
  D_COLD=$(delta_report "cold rep $r" "$before" "$(snap)")
  log "  rep $r native: $n"
  log "  rep $r shim:   $s"
  NC+=("$(field seconds "$n")") SC+=("$(field seconds "$s")")
  check_same "cold rep $r" "$(field checksum "$n")" "$(field checksum "$s")"
done

# ---- report -------------------------------------------------------------------
np=$(median "${NP[@]}") sp=$(median "${SP[@]}")
ns=$(median "${NS[@]}") ss=$(median "${SS[@]}")
nc=$(median "${NC[@]}") sc=$(median "${SC[@]}")
r_pread=$(awk -v a="$sp" -v b="$np" 'BEGIN {printf "%.2f", a / b}')
r_seq=$(awk -v a="$ss" -v b="$ns" 'BEGIN {printf "%.2f", a / b}')
r_cold=$(awk -v a="$sc" -v b="$nc" 'BEGIN {printf "%.2f", a / b}')
verdict() {  # verdict RATIO OP TARGET
  awk -v r="$1" -v t="$3" -v op="$2" 'BEGIN {
    ok = (op == ">=") ? (r >= t) : (r <= t); print ok ? "PASS" : "MISS" }'
}
v_pread=$(verdict "$r_pread" ">=" 3)
v_seq=$(verdict "$r_seq" ">=" 1.0)
v_cold=$(verdict "$r_cold" "<=" 1.1)

echo
echo "dc benchmark: hot file ${HOT_MIB} MiB, cold set ${COLD_MIB} MiB/${COLD_FILES} files, ${SECS} s runs, median of ${REPS}, $(nproc) cpus, $(uname -r)"
printf '%-14s %-8s %14s %14s %8s %-10s %s\n' metric unit native shim ratio target verdict
printf '%-14s %-8s %14s %14s %8s %-10s %s\n' hot_pread4k ops/s "$np" "$sp" "$r_pread" ">=3" "$v_pread"
printf '%-14s %-8s %14s %14s %8s %-10s %s\n' hot_seq1m MB/s "$ns" "$ss" "$r_seq" ">=1.0" "$v_seq"
printf '%-14s %-8s %14s %14s %8s %-10s %s\n' cold_read s "$nc" "$sc" "$r_cold" "<=1.1" "$v_cold"
echo "shim counters: pread4k:${D_PREAD}"
echo "shim counters: seq1m:${D_SEQ}"
echo "shim counters: cold (last rep):${D_COLD}"
echo "RESULT hot_pread4k ratio=$r_pread target>=3 $v_pread"
echo "RESULT hot_seq1m ratio=$r_seq target>=1.0 $v_seq"
echo "RESULT cold_read ratio=$r_cold target<=1.1 $v_cold"
if (( CHECK_FAIL )); then
  echo "CHECKSUM MISMATCH: native and shim read different bytes; the figures above are not valid" >&2
  exit 3
fi
exit 0
