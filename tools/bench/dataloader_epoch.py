#!/usr/bin/python3
"""DataLoader epochs over an image-folder dataset, for dataloader_bench.sh.

    dataloader_epoch.py gen ROOT --files N [--classes C] [--seed S]
    dataloader_epoch.py run ROOT [--epochs N] [--seed S] [--workers W] [--batch B]
                        [--persistent] [--stats-cmd CMD]

gen writes N files of 60-160 KiB of random bytes into C class folders
(ROOT/n00000042/img_00001234.JPEG), like a small ImageNet-style ImageFolder.

run iterates a torch.utils.data.DataLoader over a Dataset whose __getitem__ reads
a whole file (open(path, 'rb').read()) and returns its length, a cheap checksum and
its label: no decoding, so an epoch measures file I/O plus the DataLoader's own
machinery, not JPEG decode. Defaults: num_workers=4 (fork start method, Linux's
default), batch_size=64, shuffle=True with a torch.Generator seeded by --seed, so
each epoch has a new order and the same seed gives the same sequence of orders
in every run; persistent_workers=False (workers are forked afresh for every
epoch, the DataLoader default) unless --persistent.

One line per epoch on stdout:
    EPOCH e seconds=S samples=N bytes=B samples_per_s=X mb_per_s=Y cpu_s=C
          [helper_cpu_s=H] checksum=HEX
cpu_s is the CPU time (user + system) of the main process and the epoch's workers
(persistent workers: read from /proc/PID/stat, at 1/CLK_TCK resolution);
helper_cpu_s that of --helper-pid (the agent, or the FUSE daemon) during the epoch.
The checksum depends on the bytes of every file and on the order the samples came
out of the loader, never on timing: runs with the same seed over the same files
must print the same checksum for the same epoch, natively, under the shim or
through a FUSE mount.

With --stats-cmd (e.g. "dcctl --socket S stats --json") the command is run before
the first epoch and after each one, and the growth of dc's counters during the
epoch is printed:
    DCSTATS e hit_reads=... miss_reads=... bytes_hit=... ...
(cache_bytes_used is the level after the epoch, the others its growth.)
"""
import argparse
import json
import os
import random
import resource
import shlex
import subprocess
import sys
import time
import zlib

MASK = (1 << 64) - 1
STAT_KEYS = ("hit_reads", "miss_reads", "fallback_reads", "bytes_hit", "bytes_miss",
             "bytes_fallback", "bytes_origin", "evictions", "cache_bytes_used")


def generate(root, files, classes, seed):
    rng = random.Random(seed)
    per_class = (files + classes - 1) // classes
    total = 0
    t0 = time.monotonic()
    n = 0
    for c in range(classes):
        d = os.path.join(root, f"n{c:08d}")
        os.makedirs(d, exist_ok=True)
        for _ in range(per_class):
            if n == files:
                break
            size = rng.randint(60 << 10, 160 << 10)
            # Fresh random bytes per file: nothing compressible or repeated that a
            # cache, the disk or FUSE could take advantage of.
            with open(os.path.join(d, f"img_{n:08d}.JPEG"), "wb") as f:
                f.write(os.urandom(size))
            total += size
            n += 1
    print(f"GEN files={n} classes={classes} bytes={total} seconds={time.monotonic() - t0:.2f}")


def sample_sum(data):
    # One byte per 4 KiB plus the tail: touches every page's worth of the sample,
    # costs ~1 us, and still changes if any page came from the wrong place.
    return zlib.crc32(data[-16:], zlib.crc32(data[::4096]))


class FolderBytes:
    """ImageFolder layout, raw bytes: (len, checksum, label) per sample."""

    def __init__(self, root):
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.samples = []
        for label, c in enumerate(classes):
            d = os.path.join(root, c)
            for name in sorted(os.listdir(d)):
                self.samples.append((os.path.join(d, name), label))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:
            data = f.read()
        return len(data), sample_sum(data), label


def cpu_seconds():
    """CPU time of this process plus its reaped children (the epoch's workers, when
    they are not persistent: they are joined at the end of each epoch)."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        t += r.ru_utime + r.ru_stime
    return t


def proc_cpu_seconds(pid):
    """utime + stime of another process (the agent), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_worker_cpu(loader):
    """{pid: CPU seconds} of a persistent loader's live workers (private DataLoader
    attributes: None if this torch lays them out differently)."""
    it = getattr(loader, "_iterator", None)
    if it is None:
        return {}
    try:
        return {w.pid: proc_cpu_seconds(w.pid) for w in it._workers if w.is_alive()}
    except (AttributeError, OSError):
        return None


def dc_stats(cmd):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def run(args):
    import warnings
    # "suggested max number of worker ... is 2": 4 workers is the point of the test.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    import torch
    from torch.utils.data import DataLoader, Dataset

    class DS(FolderBytes, Dataset):
        pass

    ds = DS(args.root)
    if len(ds) == 0:
        sys.exit(f"dataloader_epoch: no files under {args.root}")
    g = torch.Generator()
    g.manual_seed(args.seed)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, generator=g,
                        num_workers=args.workers, persistent_workers=args.persistent,
                        pin_memory=False, drop_last=False)
    stats_cmd = shlex.split(args.stats_cmd) if args.stats_cmd else None
    prev = dc_stats(stats_cmd) if stats_cmd else None
    print(f"CONFIG samples={len(ds)} workers={args.workers} batch={args.batch} "
          f"persistent_workers={args.persistent} seed={args.seed} "
          f"start_method={torch.multiprocessing.get_start_method()} torch={torch.__version__}",
          flush=True)
    for e in range(1, args.epochs + 1):
        h = 0
        nbytes = 0
        n = 0
        h0 = proc_cpu_seconds(args.helper_pid) if args.helper_pid else 0.0
        c0 = cpu_seconds()
        w0 = live_worker_cpu(loader) if args.persistent else {}
        t0 = time.perf_counter()
        for lens, sums, labels in loader:  # the iterator (and its workers) starts here
            for ln, s, lb in zip(lens.tolist(), sums.tolist(), labels.tolist()):
                h = (h * 0x100000001B3 + (s ^ (ln << 32) ^ (lb << 56))) & MASK
                nbytes += ln
                n += 1
        dt = time.perf_counter() - t0  # includes worker start and shutdown
        c1 = cpu_seconds()
        # Workers that exited were reaped (RUSAGE_CHILDREN); persistent ones are alive.
        w1 = live_worker_cpu(loader) if args.persistent else {}
        if w0 is None or w1 is None:
            cpu = "na"
        else:
            c1 += sum(v - w0.get(pid, 0.0) for pid, v in w1.items())
            cpu = f"{c1 - c0:.3f}"
        helper = f" helper_cpu_s={proc_cpu_seconds(args.helper_pid) - h0:.2f}" if args.helper_pid else ""
        if n != len(ds):
            sys.exit(f"dataloader_epoch: epoch {e} yielded {n} samples, dataset has {len(ds)}")
        print(f"EPOCH {e} seconds={dt:.4f} samples={n} bytes={nbytes} "
              f"samples_per_s={n / dt:.1f} mb_per_s={nbytes / dt / 1e6:.1f} cpu_s={cpu}{helper} "
              f"checksum={h:016x}",
              flush=True)
        if stats_cmd:
            time.sleep(0.2)  # let the agent fold in the counters of exited workers
            cur = dc_stats(stats_cmd)
            parts = []
            for k in STAT_KEYS:
                v = cur.get(k, 0)
                if k != "cache_bytes_used":
                    v -= prev.get(k, 0)
                parts.append(f"{k}={v}")
            print(f"DCSTATS {e} " + " ".join(parts), flush=True)
            prev = cur


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pg = sub.add_parser("gen")
    pg.add_argument("root")
    pg.add_argument("--files", type=int, required=True)
    pg.add_argument("--classes", type=int, default=100)
    pg.add_argument("--seed", type=int, default=1234)
    pr = sub.add_parser("run")
    pr.add_argument("root")
    pr.add_argument("--epochs", type=int, default=2)
    pr.add_argument("--seed", type=int, default=42)
    pr.add_argument("--workers", type=int, default=4)
    pr.add_argument("--batch", type=int, default=64)
    pr.add_argument("--persistent", action="store_true")
    pr.add_argument("--stats-cmd")
    pr.add_argument("--helper-pid", type=int,
                    help="also report this process's CPU time per epoch (dcagent, bindfs)")
    a = p.parse_args()
    if a.cmd == "gen":
        generate(a.root, a.files, a.classes, a.seed)
    else:
        run(a)


if __name__ == "__main__":
    main()
