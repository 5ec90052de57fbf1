"""One pre-processing: training, export and the runtime give the model the same uint8 pixels.

The training path is ``edgerec.train.tensors.decode_images`` (what ``edgerec train`` and ``edgerec eval``
decode datasets with); the export path ``edgerec.export.source._read`` (calibration and verification
images); the runtime path an ``edgerec run`` image source feeding ``Preprocessor`` (the fast, buffered path
a camera loop uses). Files: odd-sized, portrait, landscape, a large photo (the INTER_AREA halvings), gray,
RGBA with partial transparency, gray+alpha, palette with transparency, 16-bit, and JPEGs with EXIF
orientation. Every resize mode and interpolation, square and non-square model inputs.
"""

import dataclasses

import cv2
import numpy as np
import pytest
from PIL import Image

from edgerec.bundle import Artifact, InputSpec, QuantParams
from edgerec.runtime.adapters import to_model_input
from edgerec.runtime.image import INTERPOLATIONS, RESIZE_MODES, decode_image, fit_rect, model_image, read_image_bgr, resize_plan, to_bgr
from edgerec.runtime.preprocess import Preprocessor
from edgerec.runtime.sources import open_source

torch = pytest.importorskip("torch")  # the training path is torch's tensors

FP32_NCHW = Artifact(format="onnx", precision="fp32", layout="NCHW")
UINT8_NHWC = Artifact(format="tflite", precision="int8", layout="NHWC", input_dtype="uint8",
                      normalization_in_model=True, input_quant=QuantParams(1.0, 0))


def _photo(h, w, seed=0):
    """Smooth content with texture and edges: resampling differences show, as they would on a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, 128 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)], axis=2)
    img = base + rng.normal(0, 20, base.shape)
    img[h // 3:h // 2, w // 4:w // 2] = (250, 20, 20)  # a hard-edged block
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    files = {}

    def save(name, im, **kw):
        im.save(root / name, **kw)
        files[name] = root / name

    save("odd_37x53.png", Image.fromarray(_photo(37, 53, 1)))
    save("portrait_101x47.png", Image.fromarray(_photo(101, 47, 2)))
    save("landscape_90x160.jpg", Image.fromarray(_photo(90, 160, 3)), quality=90)
    save("photo_750x1000.jpg", Image.fromarray(_photo(750, 1000, 4)), quality=90)
    save("gray_45x61.png", Image.fromarray(_photo(45, 61, 5)[..., 0], "L"))
    rgba = np.dstack([_photo(40, 56, 6), np.tile(np.linspace(0, 255, 56).astype(np.uint8), (40, 1))])
    save("rgba_40x56.png", Image.fromarray(rgba, "RGBA"))
    save("la_33x47.png", Image.fromarray(np.dstack([_photo(33, 47, 7)[..., 1], _photo(33, 47, 8)[..., 2]]), "LA"))
    save("palette_trns_50x30.png", Image.fromarray(_photo(50, 30, 9)).convert("P"), transparency=3)
    save("gray16_29x41.png", Image.fromarray((_photo(29, 41, 10)[..., 0].astype(np.uint16) * 257 + 100)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: must be turned 90 degrees clockwise
    save("exif6_64x96.jpg", Image.fromarray(_photo(64, 96, 11)), quality=92, exif=exif.tobytes())
    exif[0x0112] = 3
    save("exif3_700x500.jpg", Image.fromarray(_photo(700, 500, 12)), quality=92, exif=exif.tobytes())
    return root, files


SPECS = [InputSpec(height=32, width=32), InputSpec(height=24, width=40), InputSpec(height=48, width=48, color_order="BGR")]


@pytest.mark.parametrize("interp", sorted(INTERPOLATIONS))
@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_training_export_and_runtime_feed_identical_pixels(image_folder, mode, interp):
    from edgerec.export.source import _read
    from edgerec.train.tensors import decode_images

    root, files = image_folder
    names = sorted(files)
    for base in SPECS:
        spec = dataclasses.replace(base, resize_mode=mode, interpolation=interp)
        train = decode_images([files[n] for n in names], spec).numpy().transpose(0, 2, 3, 1)  # (N, H, W, 3)
        export = _read([files[n] for n in names], spec, desc="", progress=False)
        pre = Preprocessor(spec, FP32_NCHW)
        with open_source(str(root)) as src:
            frames = {f.name.rsplit("/", 1)[-1]: f.image for f in src.frames()}
        assert sorted(frames) == names  # every file read by the runtime's image source, none counted corrupt
        for i, n in enumerate(names):
            run = pre.resize(frames[n])
            assert run.shape == train[i].shape == (spec.height, spec.width, 3)
            assert np.array_equal(train[i], run), f"{n} {mode} {interp} {spec.height}x{spec.width}: training != runtime"
            assert np.array_equal(export[i], run), f"{n} {mode} {interp}: export != runtime"


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_runtime_tensor_is_the_training_pixels_normalised(image_folder, mode):
    """The LUT fast path's tensors equal ``to_model_input`` of the training pixels (fp32 NCHW and uint8 NHWC)."""
    from edgerec.train.tensors import decode_images

    _, files = image_folder
    names = sorted(files)
    spec = InputSpec(height=32, width=32, resize_mode=mode, interpolation="area+bilinear")
    train = decode_images([files[n] for n in names], spec).numpy().transpose(0, 2, 3, 1)
    for art in (FP32_NCHW, UINT8_NHWC):
        pre = Preprocessor(spec, art)
        for i, n in enumerate(names):
            x = pre(read_image_bgr(files[n]))
            np.testing.assert_array_equal(x, to_model_input(train[i], spec, art), err_msg=f"{n} {art.key}")


def test_camera_frames_convert_like_files(image_folder):
    """A BGRA, gray or 16-bit camera frame gives the model what the same picture as a file gives it."""
    _, files = image_folder
    spec = InputSpec(height=32, width=32, resize_mode="center_crop", interpolation="area+bilinear")
    pre = Preprocessor(spec, FP32_NCHW)
    rgba = np.asarray(Image.open(files["rgba_40x56.png"]))
    bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)
    np.testing.assert_array_equal(pre.resize(bgra).copy(), pre.resize(read_image_bgr(files["rgba_40x56.png"])))
    gray = np.asarray(Image.open(files["gray_45x61.png"]))
    np.testing.assert_array_equal(pre.resize(gray).copy(), pre.resize(read_image_bgr(files["gray_45x61.png"])))
    g16 = np.asarray(Image.open(files["gray16_29x41.png"])).astype(np.uint16)
    np.testing.assert_array_equal(pre.resize(g16).copy(), pre.resize(read_image_bgr(files["gray16_29x41.png"])))


def test_reader_matches_pillow_on_modes_and_orientation(image_folder):
    """The OpenCV reader gives what Pillow gave training before (orientation, alpha on white, palette, gray)."""
    from PIL import ImageOps

    _, files = image_folder
    for name, path in files.items():
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                ref = np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba).convert("RGB"))
            elif im.mode.startswith("I"):
                ref = np.repeat(((np.asarray(im).astype(np.int64) + 128) // 257).astype(np.uint8)[..., None], 3, 2)
            else:
                ref = np.asarray(im.convert("RGB"))
        got = read_image_bgr(path)[..., ::-1]
        assert got.shape == ref.shape, name
        tol = 2 if name.endswith(".jpg") else 0  # libjpeg's IDCT and upsampling may round differently
        assert np.abs(got.astype(int) - ref).max() <= tol, name


def test_alpha_rule_and_bgrx_padding():
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., :3] = (10, 20, 200)
    bgra[0, :, 3] = 255
    bgra[1, :, 3] = 0
    out = to_bgr(bgra)
    assert out[0, 0].tolist() == [10, 20, 200] and out[1, 0].tolist() == [255, 255, 255]
    bgra[..., 3] = 128
    assert to_bgr(bgra)[0, 0].tolist() == [132, 137, 227]  # 255 - (255 - c) * 128 / 255, rounded
    bgra[..., 3] = 0  # an all-zero alpha plane is BGRx padding, not a transparent frame
    assert to_bgr(bgra)[0, 0].tolist() == [10, 20, 200]


def test_center_crop_is_short_side_centre_crop():
    assert fit_rect(480, 640, 224, 224, "center_crop") == ((0, 80, 480, 480), (0, 0, 224, 224))
    assert fit_rect(720, 1280, 32, 32, "center_crop") == ((0, 280, 720, 720), (0, 0, 32, 32))
    assert fit_rect(100, 47, 32, 32, "center_crop") == ((26, 0, 47, 47), (0, 0, 32, 32))
    assert fit_rect(480, 640, 24, 40, "center_crop") == ((48, 0, 384, 640), (0, 0, 24, 40))


def test_area_bilinear_halves_then_interpolates():
    spec = InputSpec(height=32, width=32, resize_mode="center_crop", interpolation="area+bilinear")
    plan = resize_plan(720, 1280, spec)
    # 720 px region -> four 2x2 halvings to 45, trimming 720 % 16 = 0; then bilinear 45 -> 32
    assert plan.crop == (0, 280, 720, 720) and plan.halvings == ((360, 360), (180, 180), (90, 90), (45, 45))
    plan = resize_plan(250, 250, spec)  # 250 % 4 = 2: one pixel trimmed from each side
    assert plan.crop == (1, 1, 248, 248) and plan.halvings == ((124, 124), (62, 62))
    assert resize_plan(64, 63, spec).halvings == ()  # under 2x: bilinear alone
    assert resize_plan(720, 1280, dataclasses.replace(spec, interpolation="bilinear")).halvings == ()
    # anti-aliasing: a one-pixel checkerboard becomes flat grey, not a moire
    board = (np.indices((480, 480)).sum(0) % 2 * 255).astype(np.uint8)
    out = model_image(board, spec)
    assert abs(int(out.mean()) - 127) <= 1 and out.std() < 1.0


def test_letterbox_pads_with_the_mean_colour_everywhere():
    spec = InputSpec(height=32, width=32, resize_mode="letterbox", interpolation="area+bilinear")
    frame = np.full((20, 40, 3), 7, np.uint8)
    out = model_image(frame, spec)
    assert out[0, 0].tolist() == [round(m * 255) for m in spec.mean[::-1]]  # BGR
    assert out[16, 16].tolist() == [7, 7, 7]


def test_truncated_jpeg_is_an_error_on_every_opencv(tmp_path):
    from edgerec.errors import DataError

    Image.fromarray(_photo(64, 64)).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    with pytest.raises(DataError, match="truncated"):
        decode_image(data[: len(data) - 200], name="cut.jpg")
    assert decode_image(data + b"trailing bytes after the end marker", name="ok.jpg").shape == (64, 64, 3)
