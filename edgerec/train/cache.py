"""Decoded images on disk: decoded once per dataset version, read by every process on the machine.

Training used to decode the whole dataset into one uint8 tensor per process: 150 KB an image at 224 px, so
100 000 images are 15 GB, and under ``torchrun --nproc_per_node 4`` four copies. Here the images are decoded
once (by ``decode_images``, the runtime's own reader and resizer) into one raw uint8 file, NCHW, and batches are
read from it with ``pread``: the operating system's page cache holds what fits and is shared by every rank, and
each process keeps only its batches (its resident memory does not grow with the dataset).

A cache folder holds ``images.u8`` (N x 3 x H x W bytes, in path order: any split or order of the same images
reads the same file), ``meta.json`` (what it was built from) and, once
every image is in, ``complete``. Its name is a key over:

- every image's path, size and modification time (a changed, added or removed file gives a new key: the stale
  cache is rebuilt, and the stale folder of the same dataset removed);
- the whole input spec (size, resize mode, interpolation, colour order, and mean/std, whose colour letterbox pads with);
- ``PREPROCESS_VERSION`` of the reader and OpenCV's version (a change of pre-processing rebuilds it).

The build shows progress, decodes on all cores (OpenCV releases the GIL), checks the free space first and
refuses with the numbers, and can be interrupted: what was decoded is recorded every chunk, and the next
build decodes only the rest. One process per machine builds it under a file lock; the others wait for it, then
read the same file. With a shared file system the ranks of several machines share one cache when the file
system honours ``flock`` (NFS v4 does); otherwise give each machine its own folder (the default, the user's
cache folder, is per machine).

    >>> store = open_cache(paths, spec, "~/.cache/edgerec/decoded")   # doctest: +SKIP
    >>> batch = store.images[torch.tensor([3, 1, 4])]                # uint8 (3, 3, H, W)
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..bundle import InputSpec
from ..errors import DataError

__all__ = ["DiskImages", "open_cache", "cache_key", "default_cache_dir", "cache_bytes", "available_ram_bytes",
           "CHUNK", "DISK_MARGIN"]

log = logging.getLogger("edgerec.train")

CHUNK = 256  # images decoded between two progress records (what an interruption can lose)
DISK_MARGIN = 512 << 20  # left free on the disk after the cache is written
_DATA = "images.u8"
_META = "meta.json"
_DONE = "done.npy"
_COMPLETE = "complete"
_LOCK = ".lock"


def default_cache_dir() -> Path:
    """``decoded/`` in edgerec's cache folder: ``$EDGEREC_CACHE``, else ``~/.cache/edgerec`` (one per machine)."""
    from .._cache import cache_dir

    return cache_dir("decoded")


def cache_bytes(n: int, spec: InputSpec) -> int:
    return int(n) * 3 * int(spec.height) * int(spec.width)


def available_ram_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _spec_key(spec: InputSpec) -> dict:
    # the whole spec: letterbox pads with the mean colour, so even mean/std change the decoded pixels
    return dataclasses.asdict(spec)


def cache_key(paths: Sequence[Path], spec: InputSpec) -> str:
    """The cache folder's name: changes with any image file (path, size, mtime), the spec or the reader."""
    import cv2

    from ..runtime.image import PREPROCESS_VERSION

    h = hashlib.sha256()
    h.update(json.dumps({"spec": _spec_key(spec), "reader": PREPROCESS_VERSION, "opencv": cv2.__version__},
                        sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _dataset_id(paths: Sequence[Path], spec: InputSpec) -> str:
    """The same for every version of one dataset at one spec: what a stale folder is recognised by."""
    parents = sorted({os.path.dirname(os.path.dirname(os.path.abspath(p))) for p in paths[:1000]})
    return hashlib.sha256(json.dumps({"roots": parents[:8], "spec": _spec_key(spec)}, sort_keys=True).encode()).hexdigest()[:16]


class DiskImages:
    """uint8 images (N, 3, H, W) in a raw file, indexed like a tensor: ``x[idx]``, ``x[a:b]``, ``len(x)``.

    Each read is one ``pread`` per image into a fresh tensor; ``subset`` and ``cat`` are index maps over the
    same file. Picklable (it reopens the file), so it can travel to worker processes.
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int, int], index: np.ndarray | None = None):
        self.path = Path(path)
        self.file_shape = tuple(int(s) for s in shape)
        self.index = np.arange(self.file_shape[0], dtype=np.int64) if index is None else np.asarray(index, np.int64)
        self._fd: int | None = None
        self._item = int(np.prod(self.file_shape[1:]))

    # tensor-like surface used by the training loop ------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.index), *self.file_shape[1:])

    @property
    def device(self):
        import torch

        return torch.device("cpu")

    @property
    def dtype(self):
        import torch

        return torch.uint8

    def __len__(self) -> int:
        return len(self.index)

    def numel(self) -> int:
        return len(self.index) * self._item

    def element_size(self) -> int:
        return 1

    def __getitem__(self, key):
        import torch

        if isinstance(key, slice):
            pos = self.index[key]
        elif isinstance(key, (int, np.integer)):
            return self._read(self.index[[int(key)]])[0]
        else:
            pos = self.index[torch.as_tensor(key).cpu().numpy().astype(np.int64)]
        return self._read(pos)

    def to(self, device, **_kw):
        """The whole set as a tensor on ``device`` (what ``to_device_if_fits`` asks for when it fits)."""
        return self[:].to(device)

    def subset(self, idx) -> "DiskImages":
        return DiskImages(self.path, self.file_shape, self.index[np.asarray(idx, np.int64)])

    @staticmethod
    def cat(parts: Sequence["DiskImages"]) -> "DiskImages":
        if len({p.path for p in parts}) != 1:
            raise ValueError("DiskImages.cat needs parts of one cache file")
        return DiskImages(parts[0].path, parts[0].file_shape, np.concatenate([p.index for p in parts]))

    # reading ----------------------------------------------------------------------------------------
    def _read(self, positions: np.ndarray):
        import torch

        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        out = torch.empty((len(positions), *self.file_shape[1:]), dtype=torch.uint8)
        buf = out.numpy().reshape(len(positions), self._item)
        for k, p in enumerate(positions.tolist()):
            got = os.preadv(self._fd, [buf[k]], p * self._item)
            if got != self._item:
                raise DataError(f"{self.path}: short read at image {p} ({got} of {self._item} bytes)",
                                hint="the decoded cache was truncated; delete its folder and train again")
        return out

    def prefetch(self, batches: Sequence, depth: int = 2):
        """Yield ``self[b]`` for each index batch, read ``depth`` ahead on a thread (pread releases the GIL)."""
        with ThreadPoolExecutor(1) as pool:
            pending = [pool.submit(self.__getitem__, b) for b in batches[:depth]]
            for i in range(len(batches)):
                batch = pending[i].result()
                if i + depth < len(batches):
                    pending.append(pool.submit(self.__getitem__, batches[i + depth]))
                pending[i] = None
                yield batch

    def __getstate__(self):
        return {"path": self.path, "shape": self.file_shape, "index": self.index}

    def __setstate__(self, state):
        self.__init__(state["path"], state["shape"], state["index"])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to release into
            pass

    def __repr__(self) -> str:
        return f"DiskImages({str(self.path)!r}, shape={self.shape})"


@dataclass
class CacheInfo:
    folder: Path
    key: str
    built: bool  # this process decoded (some of) it
    decoded: int  # images this process decoded
    seconds: float


def open_cache(paths: Sequence[Path], spec: InputSpec, root: str | Path | None = None, *, workers: int | None = None,
               progress: bool = False, decode: Callable | None = None, wait_s: float = 24 * 3600) -> tuple[DiskImages, CacheInfo]:
    """The decoded cache of ``paths`` at ``spec`` under ``root``: opened when complete, else built (or waited for).

    ``decode(paths, spec, out=array, workers=..)`` fills uint8 NCHW rows; default ``tensors.decode_into``.
    """
    from .tensors import decode_into

    decode = decode or decode_into
    asked = [Path(p) for p in paths]
    # the file holds the images in path order, whatever order the caller wants them in (a split with another seed,
    # k-fold, a subset order): one cache per dataset version, and ``index`` maps the caller's order onto it
    order = sorted(range(len(asked)), key=lambda i: str(asked[i]))
    paths = [asked[i] for i in order]
    index = np.empty(len(order), np.int64)
    index[order] = np.arange(len(order))
    root = Path(root).expanduser() if root is not None else default_cache_dir()
    t0 = time.perf_counter()
    key = cache_key(paths, spec)
    folder = root / key
    shape = (len(paths), 3, int(spec.height), int(spec.width))
    if (folder / _COMPLETE).exists():
        return DiskImages(folder / _DATA, shape, index), CacheInfo(folder, key, False, 0, time.perf_counter() - t0)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the decoded-image cache {folder}: {exc.strerror}",
                        hint="set cache_dir (--cache-dir) to a writable folder, or cache: ram") from None
    with open(folder / _LOCK, "a+") as lock:
        waited = _lock(lock, folder, wait_s)
        if (folder / _COMPLETE).exists():  # another process built it while this one waited
            if waited:
                log.info("decoded cache %s: built by another process", folder)
            return DiskImages(folder / _DATA, shape, index), CacheInfo(folder, key, False, 0, time.perf_counter() - t0)
        decoded = _build(folder, paths, spec, shape, decode=decode, workers=workers, progress=progress)
        _remove_stale(root, folder, _dataset_id(paths, spec))
    return DiskImages(folder / _DATA, shape, index), CacheInfo(folder, key, True, decoded, time.perf_counter() - t0)


def _lock(lock, folder: Path, wait_s: float) -> bool:
    """Take the folder's build lock; True when another process held it first."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        log.info("decoded cache %s: another process is building it; waiting", folder)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DataError(f"waited {wait_s:.0f} s for another process to build {folder}",
                                hint="is a crashed run still holding it? delete the folder and start again") from None
            time.sleep(0.2)


def _build(folder: Path, paths, spec: InputSpec, shape, *, decode, workers, progress) -> int:
    from tqdm.auto import tqdm

    need = cache_bytes(len(paths), spec)
    data = folder / _DATA
    done_path = folder / _DONE
    done = None
    if data.exists() and done_path.exists() and data.stat().st_size == need:
        try:
            done = np.load(done_path)
            if done.shape != (len(paths),):
                done = None
        except (OSError, ValueError):
            done = None
    if done is None:  # a fresh build: check the room first
        data.unlink(missing_ok=True)
        free = shutil.disk_usage(folder).free
        if free < need + DISK_MARGIN:
            _gb = 1e9
            raise DataError(f"the decoded images need {need / _gb:.2f} GB in {folder}, and the disk has "
                            f"{free / _gb:.2f} GB free (keeping {DISK_MARGIN / _gb:.1f} GB spare)",
                            hint="free some space, set cache_dir (--cache-dir) to a larger disk, or lower img_size")
        with open(data, "wb") as f:
            f.truncate(need)
        done = np.zeros(len(paths), bool)
        (folder / _META).write_text(json.dumps({"shape": list(shape), "spec": _spec_key(spec), "images": len(paths),
                                                "first_paths": [str(p) for p in paths[:3]],
                                                "dataset_id": _dataset_id(paths, spec)}, indent=1))
    todo = np.flatnonzero(~done)
    if done.any():
        log.info("decoded cache %s: resuming, %d of %d images already decoded", folder, int(done.sum()), len(done))
    # written with pwrite, not through a memory map: the builder's resident memory stays a chunk, whatever the size
    fd = os.open(data, os.O_RDWR)
    item = int(np.prod(shape[1:]))
    bar = tqdm(total=len(paths), initial=int(done.sum()), desc="decode (cache)", unit="img",
               disable=not progress or len(todo) < 500, leave=False)
    try:
        for s in range(0, len(todo), CHUNK):
            idx = todo[s : s + CHUNK]
            block = np.empty((len(idx), *shape[1:]), np.uint8)
            decode([paths[i] for i in idx], spec, out=block, workers=workers)
            for k, i in enumerate(idx.tolist()):
                os.pwrite(fd, memoryview(block[k]).cast("B"), i * item)
            os.fdatasync(fd)  # the images are on disk before the record says so (a resumed build trusts it)
            done[idx] = True
            _atomic_save(done_path, done)
            bar.update(len(idx))
    finally:
        bar.close()
        os.close(fd)
    (folder / _COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    done_path.unlink(missing_ok=True)
    return len(todo)


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


def _remove_stale(root: Path, keep: Path, dataset_id: str) -> None:
    """Remove complete caches of the same dataset and spec with another key (files changed since)."""
    for meta in root.glob(f"*/{_META}"):
        folder = meta.parent
        if folder == keep or not (folder / _COMPLETE).exists():
            continue
        try:
            if json.loads(meta.read_text()).get("dataset_id") == dataset_id:
                shutil.rmtree(folder)
                log.info("decoded cache: removed %s (its images have changed since)", folder)
        except (OSError, ValueError):
            continue


def describe_plan(mode: str, n: int, spec: InputSpec, root: Path | None) -> str:
    """One line of what decoding will cost, said before it starts."""
    need = cache_bytes(n, spec) / 1e9
    if mode == "disk":
        where = Path(root)
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free / 1e9
        return (f"decoded images: {need:.2f} GB on disk in {root} (free {free:.1f} GB); memory per process: "
                f"the model and a few batches")
    ram = available_ram_bytes()
    return (f"decoded images: {need:.2f} GB in memory" + (f" (available {ram / 1e9:.1f} GB)" if ram else ""))

