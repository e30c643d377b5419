"""Python-side compat cases, run by python_test.sh with Debian's /usr/bin/python3.

    pycompat.py gen FAMILY DIR      generate FAMILY's data under DIR (natively, once)
    pycompat.py FAMILY CASE DIR     read it one way and print a deterministic report

The report (hashes of what was read) is compared between the native run and runs
under the shim, so it must depend only on the bytes read, never on timing.
"""
import hashlib
import os
import random
import sys


def md5(b):
    return hashlib.md5(b).hexdigest()


# ------------------------------------------------------------------ generation

def gen_builtin(d):
    rng = random.Random(21)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "blob.bin"), "wb") as f:
        f.write(rng.randbytes(3 * 1048576 + 777))
    with open(os.path.join(d, "small.bin"), "wb") as f:
        f.write(rng.randbytes(100))
    words = ["über", "naïve", "data", "cache", "λ", "tensor", "batch", "epoch"]
    lines = []
    for i in range(40000):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        lines.append(line + ("\r\n" if i % 7 == 0 else "\n"))  # mixed newlines on purpose
    with open(os.path.join(d, "text.txt"), "wb") as f:
        f.write("".join(lines).encode("utf-8"))


def gen_numpy(d):
    import numpy as np
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(5)
    np.save(os.path.join(d, "arr.npy"), rng.standard_normal((500, 1000)).astype(np.float32))
    rng.standard_normal(1_500_000).astype(np.float32).tofile(os.path.join(d, "raw.f32"))
    np.savez_compressed(os.path.join(d, "arrs.npz"), a=rng.integers(0, 1000, (300, 300)),
                        b=rng.random(50_000))


def gen_images(d, rng, count, fmt):
    import numpy as np
    from PIL import Image
    os.makedirs(d, exist_ok=True)
    for i in range(count):
        w, h = int(rng.integers(16, 400)), int(rng.integers(16, 300))
        mode = ["RGB", "RGBA", "L", "P"][i % 4] if fmt == "PNG" else ["RGB", "L"][i % 2]
        # Gradients plus noise: compressible, but not trivially.
        yy, xx = np.mgrid[0:h, 0:w]
        base = ((xx * 255 // max(w - 1, 1) + yy * 3) % 256).astype(np.uint8)
        rgb = np.stack([base, base[::-1], (base // 2 + 64)], axis=-1)
        rgb = (rgb + rng.integers(0, 40, rgb.shape)).astype(np.uint8)
        im = Image.fromarray(rgb, "RGB")
        if mode == "RGBA":
            im.putalpha(Image.fromarray(base, "L"))
        elif mode in ("L", "P"):
            im = im.convert(mode)
        ext = "png" if fmt == "PNG" else "jpg"
        im.save(os.path.join(d, f"img{i:03d}.{ext}"), fmt, **({"quality": 90} if fmt == "JPEG" else {}))


def gen_pil(d):
    import numpy as np
    rng = np.random.default_rng(9)
    gen_images(os.path.join(d, "png"), rng, 24, "PNG")
    gen_images(os.path.join(d, "jpeg"), rng, 24, "JPEG")


def gen_h5py(d):
    import h5py
    import numpy as np
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(3)
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, (300, 64, 64, 3), dtype=np.uint8),
                         chunks=(1, 64, 64, 3), compression="gzip", compression_opts=1)
        f.create_dataset("labels", data=rng.integers(0, 10, 300))
        f.create_dataset("emb", data=rng.standard_normal((2000, 256)).astype(np.float32))
        g = f.create_group("meta")
        g.attrs["name"] = "compat"
        g.create_dataset("ids", data=np.arange(5000, dtype=np.int32) * 7)


def gen_torch(d):
    """An image-folder dataset: 200 small PNGs in 4 class folders."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(17)
    for i in range(200):
        cls = f"class{i % 4}"
        os.makedirs(os.path.join(d, "imgs", cls), exist_ok=True)
        arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        arr[:, :, i % 3] //= 2
        Image.fromarray(arr, "RGB").save(os.path.join(d, "imgs", cls, f"{i:04d}.png"))


# ------------------------------------------------------------------ builtin file I/O

def builtin_read(d):
    for name in ("blob.bin", "small.bin", "text.txt"):
        p = os.path.join(d, name)
        with open(p, "rb") as f:
            print(name, "read()", md5(f.read()))
        with open(p, "rb", buffering=0) as f:  # raw FileIO: one read() per call
            print(name, "raw read()", md5(f.read()))
        with open(p, "rb") as f:
            a = f.read(1000)
            f.seek(12345)
            b = f.read(70000)
            f.seek(-50, os.SEEK_END)
            c = f.read()
            print(name, "seek+read", md5(a), md5(b), md5(c), f.tell())
    with open(os.path.join(d, "blob.bin"), "rb") as f:
        print("os.read/os.pread", md5(os.read(f.fileno(), 300000)),
              md5(os.pread(f.fileno(), 500000, 1048570)), os.lseek(f.fileno(), 0, os.SEEK_CUR))


def builtin_readinto(d):
    for name in ("blob.bin", "text.txt"):
        for size in (4096, 65536 + 13, 1 << 20):
            h = hashlib.md5()
            buf = bytearray(size)
            mv = memoryview(buf)
            with open(os.path.join(d, name), "rb", buffering=0) as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(mv[:n])
            print(name, "readinto", size, h.hexdigest())
    # Buffered readinto into a slice of a larger buffer.
    buf = bytearray(5 * 1048576)
    with open(os.path.join(d, "blob.bin"), "rb") as f:
        n = f.readinto(memoryview(buf)[100:])
    print("buffered readinto", n, md5(buf))


def builtin_lines(d):
    p = os.path.join(d, "text.txt")
    h, n, chars = hashlib.md5(), 0, 0
    with open(p, "r", encoding="utf-8") as f:  # universal newlines
        for line in f:
            h.update(line.encode())
            n += 1
            chars += len(line)
    print("text lines", n, chars, h.hexdigest())
    with open(p, "rb") as f:
        lines = f.readlines()
    print("binary readlines", len(lines), md5(b"".join(lines)), sum(1 for l in lines if l.endswith(b"\r\n")))
    with open(p, "r", encoding="utf-8", newline="") as f:
        f.readline()
        pos = f.tell()
        rest = f.read()
    print("readline+tell+read", pos, len(rest), md5(rest.encode()))


# ------------------------------------------------------------------ numpy

def numpy_fromfile(d):
    import numpy as np
    p = os.path.join(d, "raw.f32")
    a = np.fromfile(p, dtype=np.float32)
    print("fromfile", a.shape, md5(a.tobytes()), float(a.astype(np.float64).sum()))
    b = np.fromfile(p, dtype=np.float32, count=1000, offset=4096 * 3 + 8)
    print("fromfile count/offset", b.shape, md5(b.tobytes()))
    # An open file object: numpy dups the descriptor and reads it with stdio.
    with open(p, "rb") as f:
        f.seek(1 << 20)
        c = np.fromfile(f, dtype=np.float32, count=200_000)
        print("fromfile(file object)", c.shape, md5(c.tobytes()), f.tell())
        rest = f.read(1000)
        print("file object after fromfile", md5(rest))


def numpy_load(d):
    import numpy as np
    a = np.load(os.path.join(d, "arr.npy"))
    print("load npy", a.shape, a.dtype, md5(a.tobytes()))
    with np.load(os.path.join(d, "arrs.npz")) as z:
        for k in sorted(z.files):
            print("load npz", k, z[k].shape, md5(z[k].tobytes()))


def numpy_memmap(d):
    import numpy as np
    m = np.memmap(os.path.join(d, "raw.f32"), dtype=np.float32, mode="r")
    print("memmap", m.shape, md5(m.tobytes()), md5(m[123456:234567].tobytes()))
    w = np.memmap(os.path.join(d, "raw.f32"), dtype=np.float32, mode="r", offset=4096 * 5, shape=(1000, 10))
    print("memmap window", md5(np.ascontiguousarray(w[::3]).tobytes()))
    a = np.load(os.path.join(d, "arr.npy"), mmap_mode="r")
    print("load mmap_mode=r", a.shape, md5(np.ascontiguousarray(a[100:200, ::7]).tobytes()))


# ------------------------------------------------------------------ PIL

def pil_images(d, sub):
    from PIL import Image
    folder = os.path.join(d, sub)
    for name in sorted(os.listdir(folder)):
        with Image.open(os.path.join(folder, name)) as im:
            im.load()
            print(name, im.format, im.mode, im.size, md5(im.tobytes()))
    # A file object, and a decode of a region after a seek-heavy open.
    name = sorted(os.listdir(folder))[3]
    with open(os.path.join(folder, name), "rb") as f, Image.open(f) as im:
        print("file object", name, md5(im.convert("RGB").resize((17, 13)).tobytes()))


# ------------------------------------------------------------------ h5py

def h5py_slices(d):
    import h5py
    import numpy as np
    with h5py.File(os.path.join(d, "data.h5"), "r") as f:
        im = f["images"]
        print("images", im.shape, im.dtype, md5(im[10:20].tobytes()), md5(im[::37, 5:40, ::2].tobytes()))
        print("labels", md5(f["labels"][:].tobytes()), int(f["labels"][:].sum()))
        e = f["emb"]
        print("emb", md5(e[100:300, 5:50].tobytes()), md5(e[1999].tobytes()), md5(e[[3, 500, 1500]].tobytes()))
        print("meta", f["meta"].attrs["name"], md5(np.asarray(f["meta/ids"][4000:]).tobytes()))


# ------------------------------------------------------------------ torch

class FolderDataset:
    """An ImageFolder-like dataset: opens each image with PIL, makes a CHW tensor."""

    def __init__(self, root):
        self.samples = []
        for ci, cls in enumerate(sorted(os.listdir(root))):
            for name in sorted(os.listdir(os.path.join(root, cls))):
                self.samples.append((os.path.join(root, cls, name), ci))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        import numpy as np
        import torch
        from PIL import Image
        path, label = self.samples[i]
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0), label


def worker_init(_):
    import torch
    torch.set_num_threads(1)


def torch_loader(d, context):
    import torch
    from torch.utils.data import DataLoader
    torch.set_num_threads(1)
    ds = FolderDataset(os.path.join(d, "imgs"))
    runs = [("in order", dict(shuffle=False)),
            ("seeded shuffle", dict(shuffle=True, generator=torch.Generator().manual_seed(1234)))]
    for label, kw in runs:
        loader = DataLoader(ds, batch_size=16, num_workers=4, multiprocessing_context=context,
                            worker_init_fn=worker_init, **kw)
        total = hashlib.sha256()
        for bi, (x, y) in enumerate(loader):
            b = x.numpy().tobytes()
            total.update(b)
            print(label, "batch", bi, tuple(x.shape), y.tolist(), md5(b))
        print(label, "all batches", total.hexdigest())


# ------------------------------------------------------------------ subprocess env

CHILD = """
import hashlib, os, sys
with open(sys.argv[1], "rb") as f:
    print(hashlib.md5(f.read()).hexdigest())
"""

PROBE = """
import os
print("LD_PRELOAD=" + os.environ.get("LD_PRELOAD", "<unset>"))
print("DC_SOCKET=" + os.environ.get("DC_SOCKET", "<unset>"))
print("FOO=" + os.environ.get("FOO", "<unset>"))
"""


def subprocess_env(d, probe):
    """A child python started with a sanitised environment reads a dataset file."""
    import subprocess
    envs = [("env={}", {}), ("env={FOO: bar}", {"FOO": "bar"})]
    for label, env in envs:
        if probe:
            r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
            print(label, r.returncode, " | ".join(r.stdout.split("\n")).strip(" |"))
            continue
        for name in ("blob.bin", "text.txt"):
            r = subprocess.run([sys.executable, "-c", CHILD, os.path.join(d, name)], env=env,
                               capture_output=True, text=True)
            print(label, name, r.returncode, r.stdout.strip(), r.stderr.strip())
        # os.execve path too, through a fork.
        pid = os.fork()
        if pid == 0:
            try:
                os.execve(sys.executable, [sys.executable, "-c", CHILD, os.path.join(d, "blob.bin")], env)
            finally:
                os._exit(127)
        _, st = os.waitpid(pid, 0)
        print(label, "os.execve", os.waitstatus_to_exitcode(st))


CASES = {
    "builtin": {"read": builtin_read, "readinto": builtin_readinto, "lines": builtin_lines},
    "numpy": {"fromfile": numpy_fromfile, "load": numpy_load, "memmap": numpy_memmap},
    "pil": {"png": lambda d: pil_images(d, "png"), "jpeg": lambda d: pil_images(d, "jpeg")},
    "h5py": {"slices": h5py_slices},
    "torch": {"fork": lambda d: torch_loader(d, "fork"), "spawn": lambda d: torch_loader(d, "spawn")},
    "subprocess": {"read": lambda d: subprocess_env(d, False), "probe": lambda d: subprocess_env(d, True)},
}
GEN = {"builtin": gen_builtin, "numpy": gen_numpy, "pil": gen_pil, "h5py": gen_h5py, "torch": gen_torch,
       "subprocess": gen_builtin}

if __name__ == "__main__":
    if sys.argv[1] == "gen":
        GEN[sys.argv[2]](sys.argv[3])
    else:
        CASES[sys.argv[1]][sys.argv[2]](sys.argv[3])
    sys.stdout.flush()
