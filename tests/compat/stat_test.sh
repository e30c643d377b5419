#!/usr/bin/env bash
# The stat family is not interposed: stat(1), ls, find and Python's os.stat /
# os.lstat / os.fstat on dataset files (also on descriptors the shim tracks and
# has served reads from) report exactly what they report natively.
source "$(dirname "$0")/compat_lib.sh"

write_config 256MiB
gen_files "$DATA/sub" 6 1000 2500000
ln -s sub/f00002.bin "$DATA/link.bin"
ln -s missing-target "$DATA/dangling"
mkdir -p "$DATA/empty-dir"
: >"$DATA/empty.bin"
# With relatime a read moves atime while atime <= mtime. Settle it now, natively,
# a clock tick after the writes (so atime ends up > mtime), so that no run below
# (nor the agent's own origin read) changes what stat reports.
sleep 0.05
find "$DATA" -type f -exec cat {} + >/dev/null
ls -laR "$DATA" >/dev/null
start_agent

files=$(cd "$DATA" && find . -type f | sort)

case_stat()  { stat $files sub link.bin dangling empty-dir && stat -L link.bin; }
case_ls()    { ls -laiR --time-style=full-iso . && ls -laiR --time=atime --time-style=full-iso .; }
case_find()  { find . -printf '%p %y %i %n %m %U %G %s %b %A@ %T@ %C@ %l\n' | sort; }
case_python() {
  "$PY" - $files <<'EOP'
import os, sys

def fields(st):
    return (st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
            st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns, st.st_blocks, st.st_blksize)

for p in sys.argv[1:]:
    before = fields(os.stat(p))
    with open(p, "rb") as f:
        data = f.read()                      # served by the shim, on its second pass from the cache
        fst = fields(os.fstat(f.fileno()))   # fstat of a descriptor the shim tracks
        f.seek(0, os.SEEK_END)
        tell = f.tell()
    print(p, "stat", before)
    print(p, "fstat after read", fst, len(data), tell)
    print(p, "stat after read", fields(os.stat(p)), os.path.getsize(p))
print("lstat link", fields(os.lstat("link.bin")), os.readlink("link.bin"))
print("stat link", fields(os.stat("link.bin")))
print("lstat dangling", fields(os.lstat("dangling")))
print("stat dir", fields(os.stat("sub")))
fd = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
print("stat dir_fd", [fields(os.stat(n, dir_fd=fd)) for n in sorted(os.listdir(fd))])
os.close(fd)
for e in sorted(os.scandir("sub"), key=lambda e: e.name):
    print("scandir", e.name, e.is_file(), fields(e.stat()), e.inode())
EOP
}

compat_case "stat (coreutils)" correct case_stat
compat_case "ls -laiR" correct case_ls
compat_case "find -printf (stat fields)" correct case_find
compat_case "python3 os.stat/os.lstat/os.fstat" accel case_python
compat_finish
