#!/usr/bin/env bash
# GNU coreutils, tar, gzip and grep on dataset files: natively and under the shim,
# byte-identical output and exit status; the second shim pass from the cache.
source "$(dirname "$0")/compat_lib.sh"

for prog in tar gzip cmp grep; do
  command -v $prog >/dev/null || skip "$prog not installed"
done
write_config 256MiB
gen_files "$DATA/bin" 3 200000 3700000
big=bin/big.bin
"$PY" - "$DATA" <<'EOP'
import gzip, io, os, random, sys, tarfile
d = sys.argv[1]
rng = random.Random(7)
# A file spanning several 1 MiB blocks, with an odd size.
with open(os.path.join(d, "bin/big.bin"), "wb") as f:
    f.write(rng.randbytes(5 * 1048576 + 4321))
words = ["alpha", "beta", "gamma", "delta", "needle", "kappa", "omega", "sigma"]
lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 14))) for _ in range(60000)]
text = ("\n".join(lines) + "\n").encode()
with open(os.path.join(d, "text.txt"), "wb") as f:
    f.write(text)
with open(os.path.join(d, "text.txt.gz"), "wb") as f:
    f.write(gzip.compress(text, mtime=0))
# A tar of a small tree (fixed mtimes and owners: the listing is then stable).
with tarfile.open(os.path.join(d, "tree.tar"), "w", format=tarfile.GNU_FORMAT) as tar:
    for i in range(30):
        name = f"tree/sub{i % 4}/file{i:02d}.bin"
        data = rng.randbytes(rng.randint(0, 300000))
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = len(data), 1700000000 + i, 0o644, 0, 0, "root", "root"
        tar.addfile(ti, io.BytesIO(data))
EOP
cp "$DATA/$big" "$DATA/bin/big-copy.bin"             # identical content, another file
cp "$DATA/$big" "$DATA/bin/big-changed.bin"
printf 'X' | dd of="$DATA/bin/big-changed.bin" bs=1 seek=3000000 conv=notrunc status=none
start_agent

all=$(cd "$DATA" && find . -type f | sort)

case_cat_pipe() { cat $all | cat; }
case_cat_file() { cat $all; }
case_md5sum()   { md5sum $all; }
case_sha256()   { sha256sum $all; }
# cp's output is a file: print its checksum (from outside the dataset root).
case_cp() {
  local dst="$SCRATCH/cp.$$"
  cp "$big" "$dst" && md5sum <"$dst"
  local rc=$?
  rm -f "$dst"
  return $rc
}
case_wc()       { wc $all; }
case_grep() {
  grep -c needle text.txt && grep -c 'gamma delta' text.txt
  grep -c nothing-matches text.txt || echo "no match: exit $?"
}
case_gzip()     { gzip -dc text.txt.gz; }
case_tar_t()    { tar -tvf tree.tar; }
case_tar_x() {
  local dst="$SCRATCH/tar.$$"
  mkdir -p "$dst"
  tar -xf tree.tar -C "$dst" || return $?
  # Directories get the extraction time (the tar has no entries for them): not compared.
  (cd "$dst" && find . -type d -printf '%m %p\n' | sort && find . -type f -printf '%m %s %T@ %p\n' | sort &&
    find . -type f | sort | xargs md5sum)
  rm -rf "$dst"
}
case_cmp_same() { cmp bin/big.bin bin/big-copy.bin; }
case_cmp_diff() { cmp bin/big.bin bin/big-changed.bin; }
case_cmp_l()    { cmp -l bin/big.bin bin/big-changed.bin; }

compat_case "cat (stdout a pipe)" accel case_cat_pipe
# With stdout a regular file, coreutils 9 cat (like cp below) copies with
# copy_file_range(2): the kernel moves the bytes, the shim never sees them.
compat_case "cat (stdout a file)" correct case_cat_file
compat_case md5sum accel case_md5sum
compat_case sha256sum accel case_sha256
# cp: copy_file_range(2) too, correctness only.
compat_case cp correct case_cp
compat_case "head -c 1000" accel head -c 1000 "$big"
compat_case "head -c 2500000" accel head -c 2500000 "$big"
compat_case "tail -c 5000" accel tail -c 5000 "$big"
compat_case "tail -c 1500000" accel tail -c 1500000 "$big"
for bs in 512 4k 1M 3M; do
  compat_case "dd bs=$bs" accel dd if="$big" bs=$bs status=none
done
compat_case "dd bs=4k skip=100 count=50" accel dd if="$big" bs=4k skip=100 count=50 status=none
compat_case "dd bs=512 skip=3001 count=777" accel dd if="$big" bs=512 skip=3001 count=777 status=none
compat_case "dd bs=1M skip=1 count=2" accel dd if="$big" bs=1M skip=1 count=2 status=none
compat_case "dd bs=3M skip=1" accel dd if="$big" bs=3M skip=1 status=none
compat_case "dd bs=1M skip=9 (past EOF)" correct dd if="$big" bs=1M skip=9 status=none
# The shell opens the file and dd inherits it across exec: a descriptor the new
# process's shim never saw open, so it is read natively (correctness only).
compat_case "dd bs=64k <file (inherited stdin)" correct sh -c "dd bs=64k status=none <$big"
compat_case wc accel case_wc
compat_case "cmp (identical files)" accel case_cmp_same
EXPECT_RC=1 compat_case "cmp (different files)" accel case_cmp_diff
EXPECT_RC=1 compat_case "cmp -l (different files)" accel case_cmp_l
compat_case "tar -tvf" accel case_tar_t
compat_case "tar -xf" accel case_tar_x
compat_case "gzip -dc" accel case_gzip
compat_case "grep -c" accel case_grep

# Every block came from the origin once, however many passes ran.
total=$(du -cb $(cd "$DATA" && find "$DATA" -type f) | tail -n1 | cut -f1)
origin=$(counter bytes_origin)
[ "$origin" -le "$total" ] || bad "origin read $origin bytes for a dataset of $total"
compat_finish
