"""TrainConfig from YAML and flags: defaults, overrides, unknown keys and bad values."""

import pytest

from edgerec.errors import ConfigError
from edgerec.train import TrainConfig, load_config
from edgerec.train._cli import parse_train_args


def test_defaults_and_recipe(repo_root):
    cfg = load_config(config_file=repo_root / "train" / "digits.yaml")
    assert cfg.model == "mobilenet_v3_small" and cfg.weights == "none" and cfg.img_size == 32
    assert cfg.augment.hflip is False  # digits: a mirrored 2 is not a 2
    assert cfg.augment.rotation == 10 and cfg.qat_cfg.epochs == 3
    # untouched nested keys keep their defaults
    assert cfg.augment.blur_p == TrainConfig().augment.blur_p


def test_flags_override_yaml(tmp_path):
    yml = tmp_path / "r.yaml"
    yml.write_text("epochs: 7\nlr: 0.5\naugment:\n  rotation: 3\n")
    cfg, _ = parse_train_args(["data", "--out", "o", "--config", str(yml), "--epochs", "2", "--set", "augment.hflip=true"])
    assert cfg.epochs == 2  # flag wins
    assert cfg.lr == 0.5  # YAML kept where no flag
    assert cfg.augment.rotation == 3 and cfg.augment.hflip is True
    assert str(cfg.data) == "data" and str(cfg.out) == "o"
    assert cfg.qat is False  # absent store_true flag does not override


def test_unknown_key_in_yaml_suggests(tmp_path):
    yml = tmp_path / "r.yaml"
    yml.write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*did you mean 'epochs'"):
        load_config(config_file=yml)


def test_unknown_nested_key_suggests(tmp_path):
    yml = tmp_path / "r.yaml"
    yml.write_text("augment:\n  rotaton: 3\n")
    with pytest.raises(ConfigError, match=r"augment.*did you mean 'rotation'"):
        load_config(config_file=yml)


def test_unknown_set_key_suggests():
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        parse_train_args(["d", "--out", "o", "--set", "batch_sise=4"])


@pytest.mark.parametrize(
    "data, match",
    [
        ({"epochs": "many"}, "expected int"),
        ({"qat": "maybe"}, "expected true or false"),
        ({"model": "mobilenet_v3_smal"}, "did you mean 'mobilenet_v3_small'"),
        ({"balance": "oversample"}, "balance"),
        ({"split": [0.5, 0.2, 0.2]}, "add up to 1"),
        ({"folds": 1}, "folds"),
        ({"img_size": 8}, "too small"),
        ({"augment": {"padding": "mirror"}}, "padding"),
    ],
)
def test_bad_values(data, match):
    with pytest.raises(ConfigError, match=match):
        load_config(data)


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_train_args(["d", "--out", "o", "--set", "epochs"])


def test_resolved_config_round_trips(tmp_path):
    from edgerec.train.config import dump_config

    cfg = load_config({"data": "d", "out": "o", "qat": True, "augment": {"hflip": True}, "bn_momentum": 0.1})
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(config_file=path) == cfg


def test_every_recipe_loads(repo_root):
    recipes = sorted((repo_root / "train").glob("*.yaml"))
    assert len(recipes) >= 2
    for path in recipes:
        cfg = load_config(config_file=path)
        assert cfg.img_size >= 32, path


def test_batch_size_shrinks_on_small_sets_only():
    from edgerec.train.config import auto_batch_size

    assert TrainConfig().batch_size is None  # resolved by train() from the training set
    # 100 images at 64 would be 2 steps an epoch (measured: 92.3/82.5 % pretrained/scratch against 95.8/93.3 % at 16)
    assert [auto_batch_size(n) for n in (10, 100, 255, 256, 511, 512, 1258, 100_000)] == [16, 16, 16, 32, 32, 64, 64, 64]
    assert auto_batch_size(1258, world_size=4) == 32  # per process
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        load_config({"batch_size": 0})


def test_a_run_saves_the_batch_size_it_chose(tiny_digits, tmp_path):
    """No batch size given: the run picks one from its training set and writes it into config.yaml, so
    `--config RUN/config.yaml` repeats the run."""
    pytest.importorskip("torch")
    import yaml

    from _fixtures.train import TINY
    from edgerec.train import train

    given = {k: v for k, v in TINY.items() if k != "batch_size"}
    cfg = load_config({**given, "data": str(tiny_digits), "out": str(tmp_path / "run"), "device": "cpu", "threads": 1,
                       "max_steps": 1, "epochs": 1, "plots": False, "progress": False})
    assert cfg.batch_size is None
    run = train(cfg)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["batch_size"] == run.config.batch_size == 16  # 84 training images


@pytest.mark.parametrize("qat_cfg, match", [({"distill": 1.5}, "distill must be in"), ({"distill_temperature": 0},
                                            "distill_temperature > 0"), ({"min_steps": -1}, "min_steps >= 0"),
                                           ({"keep": "ptq"}, "keep")])
def test_bad_qat_settings_are_refused(qat_cfg, match):
    with pytest.raises(ConfigError, match=match):
        load_config({"qat_cfg": qat_cfg})
