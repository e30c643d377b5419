#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit + integration). CI runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
./tools/build.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
