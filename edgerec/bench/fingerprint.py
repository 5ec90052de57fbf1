"""Device fingerprint: what the board was and what state it was in when a figure was measured.

Everything is read from ``/proc``, ``/sys`` and ``/etc`` under a ``root`` (a fake tree in tests) and
from board tools found on ``PATH`` (``vcgencmd`` on a Raspberry Pi, ``nvpmodel`` and ``jetson_clocks``
on a Jetson). Anything missing is simply absent from the result, never an error.

>>> fp = fingerprint()            # doctest: +SKIP
>>> fp["cpu_model"], fp.get("governor"), device_warnings(fp)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["BACKEND_PACKAGES", "THROTTLE_BITS", "decode_throttled", "device_id", "device_warnings", "fingerprint",
           "hardware"]

# vcgencmd get_throttled bit -> meaning (Raspberry Pi documentation, "vcgencmd" page).
THROTTLE_BITS = {
    0: "under_voltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
    16: "under_voltage_occurred",
    17: "arm_frequency_capped_occurred",
    18: "throttling_occurred",
    19: "soft_temperature_limit_occurred",
}

# Distribution names whose versions are recorded beside every figure.
BACKEND_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu", "openvino", "numpy", "opencv-python-headless")

_TOOL_TIMEOUT_S = 3.0


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _run(tool: str, args: list[str], path: str | None) -> str | None:
    exe = shutil.which(tool, path=path)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or "") + (out.stderr or "")
    return text.strip() or None


def decode_throttled(value: int | str) -> dict[str, Any]:
    """``vcgencmd get_throttled`` output (``"throttled=0x50005"`` or an int) -> flags.

    >>> decode_throttled("throttled=0x50005")["flags"]
    ['under_voltage', 'throttled', 'under_voltage_occurred', 'throttling_occurred']
    """
    if isinstance(value, str):
        m = re.search(r"0x[0-9a-fA-F]+|\d+", value)
        if not m:
            raise ValueError(f"cannot read a throttle value from {value!r}")
        value = int(m.group(0), 0)
    flags = [name for bit, name in sorted(THROTTLE_BITS.items()) if value & (1 << bit)]
    return {"raw": hex(value), "flags": flags, "now": bool(value & 0xF), "since_boot": bool(value & 0xF0000)}


def _cpu(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    info = _read(root, "/proc/cpuinfo")
    if info:
        fields: dict[str, str] = {}
        processors = 0
        for line in info.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                processors += 1
            elif key and value and key not in fields:
                fields[key] = value
        # x86: "model name"; Arm: "Model" (board) or "Hardware"; older Arm kernels: "CPU part" only
        model = fields.get("model name") or fields.get("Hardware") or fields.get("Model")
        if not model and "CPU part" in fields:
            model = f"Arm CPU part {fields['CPU part']}"
        if model:
            out["cpu_model"] = model
        if processors:
            out["cores"] = processors
    out.setdefault("cores", os.cpu_count())
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq"
    gov = _read(root, f"{cpufreq}/scaling_governor")
    if gov:
        out["governor"] = gov
    for key, name in (("cur_freq_mhz", "scaling_cur_freq"), ("max_freq_mhz", "cpuinfo_max_freq")):
        v = _read(root, f"{cpufreq}/{name}")
        if v and v.isdigit():
            out[key] = round(int(v) / 1000)
    return out


def _temperature(root: Path) -> float | None:
    temps = []
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        v = _read(root, str(zone.relative_to(root) / "temp"))
        if v and v.lstrip("-").isdigit():
            temps.append(int(v) / 1000.0)
    return max(temps) if temps else None


def _versions() -> dict[str, str]:
    from .._versions import package_versions

    return package_versions(BACKEND_PACKAGES)


def _jetson(path: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    q = _run("nvpmodel", ["-q"], path)
    if q:
        m = re.search(r"NV Power Mode:\s*(\S+)", q)
        out["power_mode"] = m.group(1) if m else q.splitlines()[0]
        ids = [line.strip() for line in q.splitlines() if line.strip().isdigit()]
        if ids:
            out["power_mode_id"] = int(ids[0])
    clocks = _run("jetson_clocks", ["--show"], path)
    if clocks:
        out["clocks"] = clocks[:2000]
        gpu = re.search(r"GPU\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)", clocks)
        if gpu:
            out["gpu_freq_mhz"] = {"min": int(gpu.group(1)) // 1_000_000, "max": int(gpu.group(2)) // 1_000_000,
                                   "current": int(gpu.group(3)) // 1_000_000}
    return out


def _board_model(root: Path) -> str | None:
    return (_read(root, "/proc/device-tree/model") or _read(root, "/sys/firmware/devicetree/base/model")
            or _read(root, "/sys/class/dmi/id/product_name"))


def hardware(*, root: str | Path = "/") -> dict[str, Any]:
    """What the device is, without its state: ``board_model``, ``cpu_model``, ``cores``, ``machine`` (files only,
    no board tools run; cheap enough for the runtime to call at load)."""
    root = Path(root)
    cpu = _cpu(root)
    out = {"board_model": _board_model(root), "cpu_model": cpu.get("cpu_model"), "cores": cpu.get("cores"),
           "machine": platform.machine()}
    return {k: v for k, v in out.items() if v is not None}


def device_id(fp: dict[str, Any]) -> str:
    """A short id of the kind of device a fingerprint (or ``hardware()``) describes.

    Board, CPU model, core count and architecture: figures measured on one Raspberry Pi 5 hold for another,
    so the host name and the state (clocks, temperature, load) are left out.
    """
    key = json.dumps([fp.get("board_model"), fp.get("cpu_model"), fp.get("cores"), fp.get("machine")])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def fingerprint(*, root: str | Path = "/", path: str | None = None) -> dict[str, Any]:
    """The device and its state now. ``root`` prefixes every file read; ``path`` is the PATH for board tools.

    Keys appear only when known: ``board_model``, ``cpu_model``, ``cores``, ``governor``, ``cur_freq_mhz``,
    ``max_freq_mhz``, ``temperature_c``, ``throttled`` (Raspberry Pi), ``jetson`` (power mode, clocks),
    ``os``, ``kernel``, ``machine``, ``python``, ``versions``, ``load_avg``, ``hostname``, ``profile``.
    """
    root = Path(root)
    fp: dict[str, Any] = {}
    model = _board_model(root)
    if model:
        fp["board_model"] = model
    fp.update(_cpu(root))
    temp = _temperature(root)
    if temp is not None:
        fp["temperature_c"] = round(temp, 1)
    throttled = _run("vcgencmd", ["get_throttled"], path)
    if throttled:
        try:
            fp["throttled"] = decode_throttled(throttled)
        except ValueError:
            fp["throttled"] = {"raw": throttled}
    jetson = _jetson(path)
    if jetson:
        fp["jetson"] = jetson
    release = _read(root, "/etc/os-release")
    if release:
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', release, re.MULTILINE)
        if m:
            fp["os"] = m.group(1)
    fp["kernel"] = platform.release()
    fp["machine"] = platform.machine()
    fp["python"] = platform.python_version()
    fp["versions"] = _versions()
    loadavg = _read(root, "/proc/loadavg")
    if loadavg:
        try:
            fp["load_avg"] = [float(v) for v in loadavg.split()[:3]]
        except ValueError:
            pass
    fp["hostname"] = socket.gethostname()
    from ..devices.device_profile import match_profile

    profile = match_profile(fp.get("board_model"), fp.get("cpu_model"), fp.get("machine"))
    if profile is not None:
        fp["profile"] = profile.name
    return fp


def device_warnings(fp: dict[str, Any]) -> list[str]:
    """Conditions under which the figures measured on this device should not be trusted as-is."""
    out = []
    gov = fp.get("governor")
    if gov and gov != "performance":
        out.append(f"CPU governor is '{gov}', not 'performance': clocks change during the run "
                   "(echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)")
    thr = fp.get("throttled") or {}
    flags = thr.get("flags") or []
    now = [f for f in flags if not f.endswith("_occurred")]
    past = [f for f in flags if f.endswith("_occurred")]
    if now:
        out.append(f"the board is throttling now ({', '.join(now)}): improve cooling or the power supply")
    elif past:
        out.append(f"the board has throttled since boot ({', '.join(past)}): figures may be low")
    temp = fp.get("temperature_c")
    if temp is not None and temp >= 80:
        out.append(f"SoC temperature {temp:.0f} C is at the throttling threshold")
    load = fp.get("load_avg")
    cores = fp.get("cores") or 1
    if load and load[0] > 0.5 * cores:
        out.append(f"1-minute load average {load[0]:.2f} on {cores} cores: other work competes with the benchmark")
    jet = fp.get("jetson") or {}
    if jet and "power_mode" in jet and "MAXN" not in str(jet["power_mode"]).upper():
        out.append(f"Jetson power mode is {jet['power_mode']}, not MAXN: figures are for that mode only")
    return out
