"""The decoded-image cache on disk: the same pixels as in memory, rebuilt when the data changes, resumable, one
build per machine however many processes ask, and a training run that reads it gives the same model."""

import json
import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgerec.bundle import InputSpec  # noqa: E402
from edgerec.errors import DataError  # noqa: E402
from edgerec.train import cache as cache_mod  # noqa: E402
from edgerec.train.cache import DiskImages, open_cache  # noqa: E402
from edgerec.train.tensors import decode_images, decode_into  # noqa: E402


def _spec(size=24):
    return InputSpec(height=size, width=size, mean=(0.5,) * 3, std=(0.5,) * 3, color_order="RGB", pixel_scale=255.0,
                     resize_mode="center_crop", interpolation="area+bilinear")


@pytest.fixture
def photos(tmp_path):
    """11 images of mixed shapes (4:3, 16:9, portrait, gray, PNG and JPEG) in two class folders."""
    rng = np.random.default_rng(0)
    shapes = [(48, 64), (90, 160), (80, 40), (33, 33), (120, 90), (64, 48), (27, 48), (50, 50), (61, 47), (40, 90), (72, 128)]
    paths = []
    for i, (h, w) in enumerate(shapes):
        d = tmp_path / "data" / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (h, w) if i == 3 else (h, w, 3), dtype=np.uint8)
        p = d / f"{i:02d}.{'jpg' if i % 3 == 0 else 'png'}"
        cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


class Counting:
    """A decode function that counts what it decodes (and can fail after some calls, like an interrupted build)."""

    def __init__(self, fail_after=None):
        self.images, self.calls, self.fail_after = 0, 0, fail_after

    def __call__(self, paths, spec, *, out, workers=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.calls += 1
        self.images += len(paths)
        decode_into(paths, spec, out=out, workers=workers)


def test_the_disk_cache_holds_the_pixels_the_in_memory_decode_gives_and_is_built_once(photos, tmp_path):
    spec = _spec()
    want = decode_images(photos, spec)
    first = Counting()
    images, info = open_cache(photos, spec, tmp_path / "cache", decode=first)
    assert info.built and first.images == len(photos)
    assert images.shape == tuple(want.shape) and torch.equal(images[:], want)
    again = Counting()
    images2, info2 = open_cache(photos, spec, tmp_path / "cache", decode=again)
    assert not info2.built and again.images == 0 and info2.folder == info.folder
    assert torch.equal(images2[:], want)
    # the same images in another order (another split seed) read the same cache, in the order asked
    shuffled = photos[::-1]
    images3, info3 = open_cache(shuffled, spec, tmp_path / "cache", decode=again)
    assert not info3.built and info3.folder == info.folder and again.images == 0
    assert torch.equal(images3[:], want.flip(0))
    # another image size is another cache
    _, info4 = open_cache(photos, _spec(16), tmp_path / "cache")
    assert info4.built and info4.folder != info.folder


def test_a_changed_image_rebuilds_the_cache_and_removes_the_stale_one(photos, tmp_path):
    spec = _spec()
    _, old = open_cache(photos, spec, tmp_path / "cache")
    cv2.imwrite(str(photos[1]), np.full((48, 64, 3), 200, np.uint8))
    st = os.stat(photos[1])
    os.utime(photos[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    images, new = open_cache(photos, spec, tmp_path / "cache")
    assert new.built and new.key != old.key
    assert not old.folder.exists(), "the stale cache of the same dataset should be removed"
    assert int(images[1].float().mean()) == 200
    assert torch.equal(images[:], decode_images(photos, spec))


def test_an_interrupted_build_resumes_with_what_is_left(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK", 3)
    spec = _spec()
    with pytest.raises(KeyboardInterrupt):
        open_cache(photos, spec, tmp_path / "cache", decode=Counting(fail_after=2))
    rest = Counting()
    images, info = open_cache(photos, spec, tmp_path / "cache", decode=rest)
    assert info.built and rest.images == len(photos) - 6 and info.decoded == len(photos) - 6
    assert torch.equal(images[:], decode_images(photos, spec))


def test_a_disk_too_small_is_refused_with_the_numbers_before_anything_is_written(photos, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError) as exc:
        open_cache(photos, _spec(), tmp_path / "cache")
    assert "GB" in exc.value.message and "free" in exc.value.message and "--cache-dir" in exc.value.hint
    assert not list((tmp_path / "cache").glob("*/images.u8"))


def test_disk_images_index_like_a_tensor(photos, tmp_path):
    spec = _spec()
    want = decode_images(photos, spec)
    images, _ = open_cache(photos, spec, tmp_path / "cache")
    idx = torch.tensor([4, 0, 9, 4])
    assert torch.equal(images[idx], want[idx])
    assert torch.equal(images[2:7], want[2:7]) and torch.equal(images[3], want[3])
    sub = images.subset([1, 3, 5, 7])
    assert len(sub) == 4 and sub.shape == (4, *want.shape[1:])
    assert torch.equal(sub[torch.tensor([3, 0])], want[[7, 1]])
    both = DiskImages.cat([sub, images.subset([10])])
    assert torch.equal(both[:], want[[1, 3, 5, 7, 10]])
    batches = [torch.tensor([0, 1]), torch.tensor([5]), torch.tensor([2, 8, 9])]
    for b, got in zip(batches, images.prefetch(batches)):
        assert torch.equal(got, want[b])
    import pickle

    assert torch.equal(pickle.loads(pickle.dumps(sub))[:], sub[:])


def _race(root, paths, spec_size, log, barrier):
    from edgerec.train.cache import open_cache as oc

    counting = Counting()

    def slow(paths, spec, *, out, workers=None):
        import time

        time.sleep(0.05)
        counting(paths, spec, out=out, workers=workers)

    barrier.wait()
    images, info = oc([Path(p) for p in paths], _spec(spec_size), root, decode=slow)
    with open(log, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "built": info.built, "decoded": counting.images,
                            "sum": int(images[:].sum())}) + "\n")


def test_processes_starting_together_decode_once_and_read_the_same_file(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "CHUNK", 2)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    log = tmp_path / "log.jsonl"
    procs = [ctx.Process(target=_race, args=(tmp_path / "cache", [str(p) for p in photos], 24, str(log), barrier))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert len(rows) == 3
    assert sum(r["built"] for r in rows) == 1 and sum(r["decoded"] for r in rows) == len(photos)
    assert len({r["sum"] for r in rows}) == 1
    assert len(list((tmp_path / "cache").glob("*/complete"))) == 1


def test_cache_auto_picks_memory_when_it_fits_and_disk_for_several_processes_or_a_large_set(monkeypatch):
    from edgerec.train import runner
    from edgerec.train.config import load_config

    cfg = load_config({"data": "x", "out": "y"})
    spec = _spec(224)
    monkeypatch.setattr(cache_mod, "available_ram_bytes", lambda: 8 * 10**9)
    assert runner.cache_mode(cfg, 1000, spec)[0] == "ram"  # 0.15 GB
    assert runner.cache_mode(cfg, 1000, spec, world_size=2)[0] == "disk"
    mode, why = runner.cache_mode(cfg, 20_000, spec)  # 3 GB: over a quarter of 8 GB
    assert mode == "disk" and "quarter" in why
    with pytest.raises(DataError) as exc:
        runner.cache_mode(cfg.replace(cache="ram"), 100_000, spec)  # 15 GB in 8 GB
    assert "15.05 GB" in exc.value.message and "--cache disk" in exc.value.hint
    with pytest.raises(Exception, match="cache.*'dsk'.*'disk'"):
        load_config({"data": "x", "out": "y", "cache": "dsk"})


def test_training_from_the_disk_cache_gives_the_same_model_as_from_memory(tiny_digits, tmp_path):
    from _fixtures.train import tiny_train_config
    from edgerec.train import train

    torch.set_num_threads(1)
    runs = {}
    for mode in ("ram", "disk"):
        cfg = tiny_train_config(tiny_digits, tmp_path / mode, device="cpu", threads=1, max_steps=3, plots=False,
                                progress=False, cache=mode, cache_dir=str(tmp_path / "cache"))
        runs[mode] = train(cfg)
    assert list((tmp_path / "cache").glob("*/complete")), "the disk run should have written a cache"
    h_ram, h_disk = runs["ram"].metrics["history"], runs["disk"].metrics["history"]
    assert [h["train_loss"] for h in h_ram] == [h["train_loss"] for h in h_disk]
    a = torch.load(runs["ram"].dir / "best.pt", map_location="cpu", weights_only=False)
    b = torch.load(runs["disk"].dir / "best.pt", map_location="cpu", weights_only=False)
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if isinstance(sa[k], torch.Tensor))


def test_in_memory_splits_are_views_not_copies():
    """prepare_data cuts train/val/test as runs of rows: the in-memory path holds the pixels once, not twice."""
    from edgerec.train.tensors import ImageTensors

    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).reshape(10, 3, 2, 2)
    t = ImageTensors(images, torch.arange(10), [Path(f"{i}.png") for i in range(10)])
    run = t.subset(range(3, 8))
    assert run.images.data_ptr() == images[3].data_ptr() and torch.equal(run.images, images[3:8])
    picked = t.subset([5, 1, 2])
    assert torch.equal(picked.images, images[[5, 1, 2]]) and picked.paths == [Path("5.png"), Path("1.png"), Path("2.png")]


def test_the_key_follows_every_field_that_changes_pixels(photos):
    """Letterbox pads with the mean colour: another mean is another cache, even at the same size."""
    import dataclasses

    from edgerec.train.cache import cache_key

    box = dataclasses.replace(_spec(), resize_mode="letterbox")
    assert cache_key(photos, box) != cache_key(photos, dataclasses.replace(box, mean=(0.4, 0.4, 0.4)))
    assert cache_key(photos, box) == cache_key(photos, dataclasses.replace(box))
