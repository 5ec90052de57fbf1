"""read_image and probe_image: every mode converted to RGB uint8, every broken file a clear DataError."""

import numpy as np
import pytest
from PIL import Image

from edgerec.data.images import is_image_file, probe_image, read_image
from edgerec.errors import DataError


def _gradient(h=12, w=16):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 15, y * 20, (x + y) * 5], axis=2).astype(np.uint8)


def test_rgb_png_round_trip_exact(tmp_path):
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (12, 16, 3)
    np.testing.assert_array_equal(out, arr)


def test_rgb_jpeg_close(tmp_path):
    arr = _gradient(12, 16)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == (12, 16, 3)
    assert np.abs(out.astype(int) - arr).mean() < 4


@pytest.mark.parametrize("mode", ["L", "1"])
def test_gray_and_bilevel_become_three_equal_channels(tmp_path, mode):
    gray = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    im = Image.fromarray(gray, "L")
    if mode == "1":
        im = im.point(lambda v: 255 if v > 127 else 0).convert("1")
    im.save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    expect = gray if mode == "L" else np.where(gray > 127, 255, 0)
    np.testing.assert_array_equal(out[..., 0], expect)


def test_16bit_png_scaled_not_clipped(tmp_path):
    v = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out = read_image(tmp_path / "d.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
    assert out.dtype == np.uint8


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200  # red
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    rgba[2:, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = read_image(tmp_path / "t.png")
    np.testing.assert_array_equal(out[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [255, 255, 255])  # white, not black


def test_la_half_transparent_blends_with_white(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 1] = 128  # black at ~50% alpha
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert 120 <= out[0, 0, 0] <= 135 and out.shape == (2, 2, 3)


def test_palette_and_palette_with_transparency(tmp_path):
    im = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(im.convert("RGB")))

    p = Image.new("P", (3, 1))
    p.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.putpixel((2, 0), 0)
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    out = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # the transparent index turns white
    np.testing.assert_array_equal(out[0, 1], [10, 200, 10])


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)  # pure red in CMYK
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (8, 8, 3)
    r, g, b = out[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)  # wide image
    arr[:, :10] = 255
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "o.jpg", exif=exif.tobytes())
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (20, 10, 3)  # stands upright


def test_zero_byte_file(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_image(tmp_path / "z.png")
    info = probe_image(tmp_path / "z.png")
    assert not info.ok and info.kind == "empty"


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_file_raises_instead_of_grey_padding(tmp_path, fmt):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"full.{fmt}")
    data = (tmp_path / f"full.{fmt}").read_bytes()
    (tmp_path / f"cut.{fmt}").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated|corrupt") as err:
        read_image(tmp_path / f"cut.{fmt}")
    assert f"cut.{fmt}" in str(err.value) and err.value.hint
    info = probe_image(tmp_path / f"cut.{fmt}")
    assert info.kind in ("truncated", "corrupt") and not info.ok


def test_not_an_image(tmp_path):
    (tmp_path / "fake.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(DataError, match="not an image"):
        read_image(tmp_path / "fake.jpg")
    assert probe_image(tmp_path / "fake.jpg").kind == "corrupt"


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_probe_reports_mode_size_and_digest(tmp_path):
    Image.fromarray(_gradient(5, 7)).convert("L").save(tmp_path / "g.png")
    info = probe_image(tmp_path / "g.png", digest=True)
    assert info.ok and info.mode == "L" and (info.width, info.height) == (7, 5) and info.format == "PNG"
    import hashlib

    assert info.sha256 == hashlib.sha256((tmp_path / "g.png").read_bytes()).hexdigest()


def test_is_image_file():
    assert is_image_file("a/B.JPG") and is_image_file("x.webp") and is_image_file("x.tiff")
    assert not is_image_file("notes.txt") and not is_image_file("Thumbs.db")


def test_draft_decodes_jpeg_smaller_but_not_below_target(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    assert read_image(tmp_path / "big.jpg").shape == (480, 640, 3)
    assert read_image(tmp_path / "big.jpg", draft=224).shape == (240, 320, 3)  # 1/2 scale keeps both sides >= 224
    assert read_image(tmp_path / "big.jpg", draft=100).shape == (120, 160, 3)  # 1/4
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", draft=100).shape == (480, 640, 3)  # not a JPEG: unchanged
    data = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated|corrupt"):
        read_image(tmp_path / "cut.jpg", draft=100)  # still caught at reduced scale


def test_probe_reports_stored_upright_size_of_big_jpeg(tmp_path):
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    im.save(tmp_path / "plain.jpg")
    exif = im.getexif()
    exif[0x0112] = 8  # turned 90 degrees: stored 640x480, stands 480x640
    im.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    a, b = probe_image(tmp_path / "plain.jpg"), probe_image(tmp_path / "turned.jpg")
    assert (a.width, a.height) == (640, 480) and a.ok and a.mode == "RGB"
    assert (b.width, b.height) == (480, 640)
    data = (tmp_path / "plain.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: int(len(data) * 0.9)])
    assert probe_image(tmp_path / "cut.jpg").kind in ("truncated", "corrupt")
