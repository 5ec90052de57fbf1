import pytest

from edgerec.devices.device_profile import (
    DeviceProfile,
    list_profiles,
    load_profile,
    match_profile,
)
from edgerec.errors import ConfigError


def test_all_shipped_profiles_load():
    assert list_profiles() == ["jetson-nano", "jetson-orin-nano", "rpi4", "rpi5", "x86-64"]
    for name in list_profiles():
        p = load_profile(name)
        assert isinstance(p, DeviceProfile) and p.name == name
        assert p.default_backend in ("litert", "onnxruntime", "openvino")
        assert p.runtime_extra and p.camera_uri and p.install_notes
        for ref in p.reference:
            assert ref.source.startswith("http") and ref.gmacs > 0 and ref.latency_ms > 0
            assert ref.ms_per_gmac == pytest.approx(ref.latency_ms / ref.gmacs)
        if not p.reference:
            assert "no " in p.notes.lower()  # says why there is no figure instead of inventing one


def test_unknown_profile_suggests():
    with pytest.raises(ConfigError, match="did you mean 'rpi5'"):
        load_profile("rpi55")


def test_profile_from_a_file_and_unknown_key(tmp_path):
    p = tmp_path / "myboard.yaml"
    p.write_text("name: myboard\ntitle: My board\narch: aarch64\ncores: 8\ndefault_backend: litert\n"
                 "default_precision: int8\ndefault_threads: 4\ncamera_uri: '0'\nruntime_extra: litert\n")
    assert load_profile(p).cores == 8
    q = tmp_path / "typo.yaml"  # a new path: profiles are cached by file
    q.write_text(p.read_text() + "coress: 2\n")
    with pytest.raises(ConfigError, match="did you mean 'cores'"):
        load_profile(q)


@pytest.mark.parametrize("board,cpu,machine,name", [
    ("Raspberry Pi 4 Model B Rev 1.5", None, "aarch64", "rpi4"),
    ("Raspberry Pi 5 Model B Rev 1.0", None, "aarch64", "rpi5"),
    ("NVIDIA Jetson Nano Developer Kit", None, "aarch64", "jetson-nano"),
    ("NVIDIA Jetson Orin Nano Developer Kit", None, "aarch64", "jetson-orin-nano"),
    (None, "Intel(R) Core(TM) i7", "x86_64", "x86-64"),
])
def test_match_profile(board, cpu, machine, name):
    assert match_profile(board, cpu, machine).name == name


def test_no_match_is_none():
    assert match_profile("Some RISC-V board", None, "riscv64") is None
