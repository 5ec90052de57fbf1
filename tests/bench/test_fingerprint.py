import stat
from pathlib import Path

import pytest

from edgerec.bench.fingerprint import decode_throttled, device_warnings, fingerprint


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _tool(bindir: Path, name: str, output: str) -> None:
    bindir.mkdir(exist_ok=True)
    p = bindir / name
    p.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def pi_root(tmp_path):
    root = tmp_path / "root"
    _write(root, "proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    _write(root, "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd0b\n\n"
                                 "processor\t: 1\n\nprocessor\t: 2\n\nprocessor\t: 3\n\n"
                                 "Model\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    cf = "sys/devices/system/cpu/cpu0/cpufreq"
    _write(root, f"{cf}/scaling_governor", "ondemand\n")
    _write(root, f"{cf}/scaling_cur_freq", "1500000\n")
    _write(root, f"{cf}/cpuinfo_max_freq", "2400000\n")
    _write(root, "sys/class/thermal/thermal_zone0/temp", "81250\n")
    _write(root, "proc/loadavg", "3.10 1.00 0.50 2/300 1234\n")
    _write(root, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    return root


def test_raspberry_pi_fingerprint_and_warnings(pi_root, tmp_path):
    _tool(tmp_path / "bin", "vcgencmd", "throttled=0x50005")
    fp = fingerprint(root=pi_root, path=str(tmp_path / "bin"))
    assert fp["board_model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert fp["cpu_model"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert fp["cores"] == 4
    assert fp["governor"] == "ondemand"
    assert fp["cur_freq_mhz"] == 1500 and fp["max_freq_mhz"] == 2400
    assert fp["temperature_c"] == pytest.approx(81.25, abs=0.06)
    assert fp["load_avg"] == [3.1, 1.0, 0.5]
    assert fp["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert fp["profile"] == "rpi5"
    assert fp["throttled"]["flags"] == ["under_voltage", "throttled", "under_voltage_occurred", "throttling_occurred"]
    assert "jetson" not in fp
    w = " | ".join(device_warnings(fp))
    assert "governor is 'ondemand'" in w
    assert "throttling now" in w and "under_voltage" in w
    assert "temperature 81 C" in w
    assert "load average 3.10" in w


def test_jetson_power_mode_and_clocks(tmp_path):
    root = tmp_path / "root"
    _write(root, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit")
    _write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil")
    bindir = tmp_path / "bin"
    _tool(bindir, "nvpmodel", "NV Power Mode: 15W\n0")
    _tool(bindir, "jetson_clocks", "SOC family:tegra234  Machine:NVIDIA Jetson Orin Nano Developer Kit\n"
                                   "GPU MinFreq=306000000 MaxFreq=624750000 CurrentFreq=306000000")
    fp = fingerprint(root=root, path=str(bindir))
    assert fp["jetson"]["power_mode"] == "15W" and fp["jetson"]["power_mode_id"] == 0
    assert fp["jetson"]["gpu_freq_mhz"] == {"min": 306, "max": 624, "current": 306}
    assert fp["profile"] == "jetson-orin-nano"
    assert any("not MAXN" in w for w in device_warnings(fp))
    assert "throttled" not in fp


def test_missing_everything_is_absent_not_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    fp = fingerprint(root=empty, path=str(empty))
    for key in ("board_model", "governor", "temperature_c", "throttled", "jetson", "os", "load_avg"):
        assert key not in fp
    assert fp["python"] and fp["machine"] and isinstance(fp["versions"], dict)
    assert device_warnings(fp) == []


def test_performance_governor_and_clean_throttle_give_no_warning(pi_root, tmp_path):
    (pi_root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").write_text("performance\n")
    (pi_root / "sys/class/thermal/thermal_zone0/temp").write_text("50000\n")
    (pi_root / "proc/loadavg").write_text("0.10 0.1 0.1 1/1 1\n")
    _tool(tmp_path / "bin", "vcgencmd", "throttled=0x0")
    fp = fingerprint(root=pi_root, path=str(tmp_path / "bin"))
    assert fp["throttled"]["flags"] == [] and device_warnings(fp) == []


@pytest.mark.parametrize("value,flags,now,past", [
    ("throttled=0x0", [], False, False),
    ("throttled=0x1", ["under_voltage"], True, False),
    ("throttled=0x80000", ["soft_temperature_limit_occurred"], False, True),
    (0xE, ["arm_frequency_capped", "throttled", "soft_temperature_limit"], True, False),
])
def test_decode_throttled_bits(value, flags, now, past):
    d = decode_throttled(value)
    assert d["flags"] == flags and d["now"] is now and d["since_boot"] is past


def test_decode_throttled_rejects_garbage():
    with pytest.raises(ValueError):
        decode_throttled("error: no such command")
