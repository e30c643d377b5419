#!/usr/bin/env bash
# Installs what dc needs to build, test and run on Debian 12. Idempotent, and quick
# when everything is present (one dpkg query, no network).
set -euo pipefail

packages=(
  # build
  g++ meson ninja-build pkg-config
  # fuzzing (tests/fuzz, build-fuzz): clang with libFuzzer and its sanitizer runtimes
  clang libclang-rt-14-dev
  liburing-dev libtomlplusplus-dev libgtest-dev libisal-dev libssl-dev
  libcurl4-openssl-dev libxxhash-dev
  # tests: real programs under the shim
  coreutils python3 python3-numpy python3-pil python3-h5py python3-torch iperf3 etcd-server openssl
  sqlite3 tar gzip grep procps iproute2 psmisc rsync
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
