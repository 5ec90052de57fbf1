"""edgerec._config: mappings into typed, frozen dataclasses."""

import dataclasses
import enum

import pytest

from edgerec._config import from_mapping, load_yaml, merge, to_mapping
from edgerec.errors import ConfigError


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass(frozen=True)
class Aug:
    flip: bool = False
    rotation: float = 10.0


@dataclasses.dataclass(frozen=True)
class Cfg:
    model: str = "mobilenet_v3_small"
    epochs: int = 3
    lr: float = 1e-3
    mode: Mode = Mode.FAST
    img_size: tuple[int, int] = (32, 32)
    threads: int | None = None
    aug: Aug = Aug()


def test_values_are_coerced_to_field_types():
    cfg = from_mapping(Cfg, {"epochs": "5", "lr": "0.01", "mode": "slow", "img-size": "48,48", "aug": {"flip": "yes"}})
    assert cfg.epochs == 5 and cfg.lr == 0.01 and cfg.mode is Mode.SLOW
    assert cfg.img_size == (48, 48) and cfg.aug == Aug(flip=True, rotation=10.0)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch' in config; did you mean 'epochs'\?"):
        from_mapping(Cfg, {"epoch": 3})


def test_unknown_nested_key_names_its_path():
    with pytest.raises(ConfigError, match=r"config.aug.*did you mean 'rotation'"):
        from_mapping(Cfg, {"aug": {"rotaton": 5}})


@pytest.mark.parametrize("data, match", [
    ({"epochs": "three"}, "config.epochs: expected int"),
    ({"epochs": 2.5}, "expected an integer"),
    ({"mode": "fsat"}, "did you mean 'fast'"),
    ({"aug": {"flip": "maybe"}}, "expected true or false"),
    ({"img_size": "1,2,3"}, "expected 2 values"),
])
def test_bad_values_are_config_errors(data, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(Cfg, data)


def test_optional_accepts_none_and_values():
    assert from_mapping(Cfg, {"threads": None}).threads is None
    assert from_mapping(Cfg, {"threads": "2"}).threads == 2


def test_round_trip_through_yaml(tmp_path):
    import yaml

    cfg = from_mapping(Cfg, {"mode": "slow", "img_size": [40, 40]})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_mapping(cfg)))
    assert from_mapping(Cfg, load_yaml(path)) == cfg


def test_load_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(broken)


def test_merge_overrides_recursively_and_skips_none():
    base = {"epochs": 3, "aug": {"flip": False, "rotation": 10}}
    assert merge(base, {"epochs": None, "aug": {"flip": True}}) == {"epochs": 3, "aug": {"flip": True, "rotation": 10}}
