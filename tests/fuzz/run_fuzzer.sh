#!/usr/bin/env bash
# run_fuzzer.sh HARNESS CORPUS_DIR: runs one libFuzzer harness for
# ${DC_FUZZ_SECONDS:-60} s, starting from the committed seeds. New inputs go to a
# scratch dir (the committed corpus stays small and reviewed); a crash, leak or
# sanitizer report exits non-zero and leaves the input in $DC_FUZZ_ARTIFACTS
# (default: the build dir's fuzz-artifacts/) to commit as a regression seed.
set -euo pipefail
harness=$1 seeds=$2
name=$(basename "$harness")
art=${DC_FUZZ_ARTIFACTS:-$(dirname "$harness")/fuzz-artifacts}/$name
work=$(mktemp -d "${TMPDIR:-/tmp}/dc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$art"
# Every seed must pass first: a committed regression input that crashes again
# fails here in a second, whatever the fuzzing time.
"$harness" -runs=0 "$seeds" >"$work/seeds.log" 2>&1 || { cat "$work/seeds.log"; exit 1; }
# libFuzzer exits 77 on a crash by default, which meson reads as "skipped": say 1.
exec "$harness" -max_total_time="${DC_FUZZ_SECONDS:-60}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds"
