"""``resize_mode: auto``: the geometry chosen from the training images' aspect ratios, and where it is recorded."""

import json

import numpy as np
from PIL import Image

from edgerec.train.tensors import choose_resize_mode, resolve_resize_mode


def test_square_images_get_center_crop():
    mode, reason = choose_resize_mode([(32, 32)] * 50)
    assert mode == "center_crop" and "square" in reason


def test_camera_shaped_and_mixed_orientations_get_center_crop():
    mode, reason = choose_resize_mode([(640, 480)] * 30 + [(480, 640)] * 20)
    assert mode == "center_crop" and "portrait and landscape mixed" in reason and "0.75..1.33" in reason


def test_many_elongated_images_get_letterbox():
    sizes = [(900, 300)] * 30 + [(400, 400)] * 70  # 30 % longer than 2:1
    mode, reason = choose_resize_mode(sizes)
    assert mode == "letterbox" and "30% of the training images are longer than 2:1" in reason
    assert choose_resize_mode([(900, 300)] * 20 + [(400, 400)] * 80)[0] == "center_crop"  # 20 %: still cropped


def test_resolve_reads_upright_headers(tmp_path):
    paths = []
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 300x100, stands 100x300
    for i in range(4):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(np.zeros((100, 300, 3), np.uint8)).save(p, exif=exif.tobytes())
        paths.append(p)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    mode, reason = resolve_resize_mode("auto", paths + [tmp_path / "broken.png"])
    assert mode == "letterbox" and "width/height 0.33..0.33" in reason and "over 4 training images" in reason
    assert resolve_resize_mode("squash", paths) == ("squash", "resize_mode squash set in the training configuration")


def test_prepare_data_records_the_choice(tiny_digits, tmp_path):
    from edgerec.train.runner import prepare_data
    from _fixtures.train import tiny_train_config

    data = prepare_data(tiny_train_config(tiny_digits, tmp_path / "r"), progress=False)
    spec = data.input_spec
    assert (spec.resize_mode, spec.interpolation) == ("center_crop", "area+bilinear")
    assert data.resize_reason.startswith("auto: the training images are square")


def test_run_folder_and_checkpoint_record_the_geometry(tiny_run):
    from edgerec.train.checkpoint import load_run

    info = json.loads((tiny_run / "run.json").read_text())["input"]
    assert (info["resize_mode"], info["interpolation"]) == ("center_crop", "area+bilinear")
    assert info["resize_reason"].startswith("auto: the training images are square")
    run = load_run(tiny_run, with_quantized=False)
    assert run.meta["resize_reason"] == info["resize_reason"] and run.input_spec.resize_mode == "center_crop"
