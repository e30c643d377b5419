#!/usr/bin/env bash
# Debian's /usr/bin/python3 and its packages (numpy, PIL, h5py, torch) reading
# dataset files: identical output natively and under the shim. One family per
# meson test (argument 1): builtin | numpy | pil | h5py | torch_fork | torch_spawn.
source "$(dirname "$0")/compat_lib.sh"

family=${1:?family}
PYC="$(cd "$(dirname "$0")" && pwd)/pycompat.py"
[ -x "$PY" ] || skip "$PY not found"

case $family in
  builtin) ;;
  numpy) need_py_modules numpy ;;
  pil) need_py_modules numpy PIL ;;
  h5py) need_py_modules numpy h5py ;;
  torch_*) need_py_modules numpy PIL torch ;;
  *) fail "unknown family $family" ;;
esac

write_config 256MiB
gen=${family%%_*}
"$PY" "$PYC" gen "$gen" "$DATA"   # natively, before any run
start_agent

py() { "$PY" "$PYC" "$@" "$DATA"; }

case $family in
  builtin)
    compat_case "python3 open().read()" accel py builtin read
    compat_case "python3 readinto(bytearray)" accel py builtin readinto
    compat_case "python3 line iteration" accel py builtin lines
    ;;
  numpy)
    compat_case "numpy fromfile" accel py numpy fromfile
    compat_case "numpy load (.npy, .npz)" accel py numpy load
    # mmap'd pages come from the kernel's page cache, not the shim: correctness only.
    compat_case "numpy memmap" correct py numpy memmap
    ;;
  pil)
    compat_case "PIL Image.open().load() PNG" accel py pil png
    compat_case "PIL Image.open().load() JPEG" accel py pil jpeg
    ;;
  h5py)
    compat_case "h5py dataset slices" accel py h5py slices
    ;;
  torch_fork)
    compat_case "torch DataLoader num_workers=4 fork" accel py torch fork
    ;;
  torch_spawn)
    compat_case "torch DataLoader num_workers=4 spawn" accel py torch spawn
    ;;
esac

compat_finish
