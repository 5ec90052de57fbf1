"""``edgerec device doctor``: on the board, why the camera (or a backend) does not work, and the fix.

Each check reports ``ok``, ``warn``, ``fail`` or ``info`` with a one-line fix. A missing tool
(``vcgencmd``, ``libcamera-hello``, ``gst-inspect-1.0``) is reported, never a crash.

>>> print(run_doctor().table())        # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Check", "DoctorReport", "run_doctor", "CHECKS"]


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def table(self) -> str:
        width = max((len(c.name) for c in self.checks), default=4)
        lines = []
        for c in self.checks:
            lines.append(f"{c.status.upper():<4}  {c.name:<{width}}  {c.detail}")
            if c.fix and c.status in ("warn", "fail"):
                lines.append(f"      {'':<{width}}  fix: {c.fix}")
        lines.append("")
        warns = sum(c.status == "warn" for c in self.checks)
        if not self.ok:
            lines.append("some checks FAILED: see the fixes above")
        elif warns:
            lines.append(f"no failures; {warns} warning{'s' if warns > 1 else ''} above, each with its fix")
        else:
            lines.append("all good")
        return "\n".join(lines)


def _tool(cmd: list[str], timeout: float = 5.0) -> tuple[int, str] | None:
    """(exit code, output) of a tool, or None when it is not installed."""
    if not shutil.which(cmd[0]):
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_video_devices(dev: Path = Path("/dev")) -> list[Check]:
    nodes = sorted(glob.glob(str(dev / "video*")))
    if not nodes:
        return [Check("cameras (/dev/video*)", "warn", "no /dev/video* device",
                      "plug in the USB camera / seat the CSI ribbon (contacts towards the board) and reboot; "
                      "a CSI camera on a Pi 5 shows up through libcamera, see below")]
    unreadable = [n for n in nodes if not os.access(n, os.R_OK | os.W_OK)]
    out = [Check("cameras (/dev/video*)", "ok", ", ".join(nodes))]
    if unreadable:
        out.append(Check("camera permissions", "fail", f"cannot open {', '.join(unreadable)} as this user",
                         "sudo usermod -aG video $USER, then log out and in again"))
    return out


def check_video_group() -> Check:
    import grp

    try:
        video = grp.getgrnam("video")
    except KeyError:
        return Check("video group", "info", "no 'video' group on this system")
    if os.geteuid() == 0 or video.gr_gid in os.getgroups():
        return Check("video group", "ok", "root" if os.geteuid() == 0 else "member")
    return Check("video group", "fail", "this user is not in the 'video' group: cameras will not open",
                 "sudo usermod -aG video $USER, then log out and in again")


def check_libcamera() -> Check:
    for tool in ("rpicam-hello", "libcamera-hello"):
        res = _tool([tool, "--list-cameras"])
        if res is None:
            continue
        code, out = res
        if code == 0 and "Available cameras" in out and "No cameras available" not in out:
            first = next((ln.strip() for ln in out.splitlines() if re.match(r"\s*\d+\s*:", ln)), "found")
            return Check("libcamera (CSI)", "ok", first)
        return Check("libcamera (CSI)", "fail", f"{tool} sees no camera",
                     "check the ribbon cable and camera_auto_detect=1 in /boot/firmware/config.txt, then reboot")
    return Check("libcamera (CSI)", "info", "rpicam-hello / libcamera-hello not installed (not a Raspberry Pi, or no CSI stack)",
                 "on Raspberry Pi OS: sudo apt install rpicam-apps python3-picamera2")


def check_argus() -> Check:
    res = _tool(["gst-inspect-1.0", "nvarguscamerasrc"])
    if res is None:
        return Check("nvarguscamerasrc (Jetson CSI)", "info", "gst-inspect-1.0 not installed (not a Jetson)")
    code, _ = res
    if code == 0:
        return Check("nvarguscamerasrc (Jetson CSI)", "ok", "GStreamer element present")
    return Check("nvarguscamerasrc (Jetson CSI)", "info", "element not present (not a Jetson, or JetPack multimedia missing)",
                 "on a Jetson: sudo apt install nvidia-l4t-gstreamer")


def check_opencv() -> list[Check]:
    try:
        import cv2
    except ImportError:
        return [Check("opencv", "fail", "cv2 is not importable", "pip install 'edgerec[runtime]'")]
    info = cv2.getBuildInformation()

    def flag(name: str) -> str | None:
        for line in info.splitlines():
            if line.strip().startswith(name + ":"):
                return line.split(":", 1)[1].strip()
        return None

    gst, v4l = flag("GStreamer"), flag("v4l/v4l2")
    out = [Check("opencv", "ok", f"{cv2.__version__}")]
    out.append(Check("opencv GStreamer", "ok" if gst and gst.upper().startswith("YES") else "warn",
                     f"GStreamer: {gst or 'not listed'}",
                     "pip wheels of OpenCV lack GStreamer: for csi:// on a Jetson use the system OpenCV "
                     "(sudo apt install python3-opencv) in a venv with --system-site-packages"))
    out.append(Check("opencv V4L2", "ok" if v4l and v4l.upper().startswith("YES") else "warn",
                     f"v4l/v4l2: {v4l or 'not listed'}", "install an OpenCV build with V4L2 (opencv-python-headless has it)"))
    return out


def check_backends() -> list[Check]:
    """Each runtime backend in ``edgerec.runtime.backends.BACKENDS`` (the one table), importable or not."""
    from ..runtime.backends import BACKENDS, backend_class

    found = []
    for name in BACKENDS:
        cls = backend_class(name)
        try:
            found.append(Check(f"backend {name}", "ok", cls.library_version()))
        except Exception as exc:  # a broken install is reported, the other backends are still checked
            found.append(Check(f"backend {name}", "info", f"not importable ({type(exc).__name__})",
                               f"pip install 'edgerec[{cls.extra}]' if this board should run {name} models"))
    if not any(c.status == "ok" for c in found):
        found.append(Check("backends", "fail", "no inference backend is importable", "pip install 'edgerec[litert]'"))
    return found


def check_governor(sys_root: Path = Path("/sys")) -> Check:
    files = sorted(glob.glob(str(sys_root / "devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor")))
    if not files:
        return Check("cpu governor", "info", "cpufreq not exposed (container or VM)")
    govs = sorted({Path(f).read_text().strip() for f in files})
    if govs == ["performance"]:
        return Check("cpu governor", "ok", "performance")
    return Check("cpu governor", "warn", f"{', '.join(govs)}: latency varies with load",
                 "echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")


def check_throttling() -> Check:
    res = _tool(["vcgencmd", "get_throttled"])
    if res is None:
        return Check("throttling", "info", "vcgencmd not installed (not a Raspberry Pi)")
    code, out = res
    try:
        value = int(out.split("=")[1], 16)
    except (IndexError, ValueError):
        return Check("throttling", "warn", f"unreadable vcgencmd output: {out[:60]}")
    if value == 0:
        return Check("throttling", "ok", "never throttled or under-volted since boot")
    what = []
    if value & 0x1 or value & 0x10000:
        what.append("under-voltage")
    if value & 0x2 or value & 0x20000:
        what.append("frequency capped")
    if value & 0x4 or value & 0x40000:
        what.append("throttled")
    if value & 0x8 or value & 0x80000:
        what.append("soft temperature limit")
    return Check("throttling", "warn", f"{out} ({', '.join(what) or 'flags set'})",
                 "use the official power supply and a cooler; figures measured now are not representative")


def check_disk(path: Path | None = None) -> Check:
    path = path or Path.home()
    free = shutil.disk_usage(path).free
    gb = free / 1e9
    if gb < 0.5:
        return Check("free disk", "fail", f"{gb:.2f} GB free in {path}", "free space: a deploy keeps up to --keep versions")
    return Check("free disk", "ok" if gb >= 2 else "warn", f"{gb:.1f} GB free in {path}",
                 "" if gb >= 2 else "free some space; each deployed version takes the bundle's size")


CHECKS = (check_video_devices, check_video_group, check_libcamera, check_argus, check_opencv,
          check_backends, check_governor, check_throttling, check_disk)


def run_doctor(checks=CHECKS) -> DoctorReport:
    rep = DoctorReport()
    for fn in checks:
        res = fn()
        rep.checks.extend(res if isinstance(res, list) else [res])
    return rep
