"""`edgerec device doctor`: every check reports with a fix; missing tools never crash it."""

import os
import stat

from edgerec.cli import main
from edgerec.devices import doctor


def test_doctor_runs_here_and_reports_missing_tools(capsys):
    rep = doctor.run_doctor()
    names = {c.name: c for c in rep.checks}
    for must in ("cameras (/dev/video*)", "libcamera (CSI)", "nvarguscamerasrc (Jetson CSI)", "opencv GStreamer",
                 "backend onnxruntime", "cpu governor", "throttling", "free disk", "video group"):
        assert must in names
    assert names["throttling"].status == "info" and "vcgencmd" in names["throttling"].detail
    assert names["backend onnxruntime"].status == "ok"
    code = main(["device", "doctor"])
    out = capsys.readouterr().out
    assert "free disk" in out and code in (0, 1)


def test_no_camera_gives_a_fix(tmp_path):
    (c,) = doctor.check_video_devices(tmp_path)
    assert c.status == "warn" and "ribbon" in c.fix


def test_camera_without_permission_fails_with_video_group_fix(tmp_path, monkeypatch):
    node = tmp_path / "video0"
    node.write_text("")
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    checks = doctor.check_video_devices(tmp_path)
    assert checks[0].status == "ok" and str(node) in checks[0].detail
    assert checks[1].status == "fail" and "usermod -aG video" in checks[1].fix


def test_governor_and_throttling_parsing(tmp_path, monkeypatch):
    for i, gov in enumerate(("ondemand", "performance")):
        d = tmp_path / f"devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    c = doctor.check_governor(tmp_path)
    assert c.status == "warn" and "ondemand" in c.detail and "performance" in c.fix
    monkeypatch.setattr(doctor, "_tool", lambda cmd, timeout=5.0: (0, "throttled=0x50005"))
    t = doctor.check_throttling()
    assert t.status == "warn" and "under-voltage" in t.detail and "throttled" in t.detail
    monkeypatch.setattr(doctor, "_tool", lambda cmd, timeout=5.0: (0, "throttled=0x0"))
    assert doctor.check_throttling().status == "ok"


def test_fake_libcamera_tool_on_path(tmp_path, monkeypatch):
    tool = tmp_path / "rpicam-hello"
    tool.write_text("#!/bin/sh\necho 'No cameras available!'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    c = doctor.check_libcamera()
    assert c.status == "fail" and "ribbon" in c.fix
    tool.write_text("#!/bin/sh\necho 'Available cameras'\necho '0 : imx708 [4608x2592 10-bit RGGB]'\n")
    c = doctor.check_libcamera()
    assert c.status == "ok" and "imx708" in c.detail


def test_summary_line_counts_warnings_and_failures():
    warn = doctor.Check("cameras", "warn", "none", fix="plug one in")
    ok = doctor.Check("disk", "ok", "plenty")
    fail = doctor.Check("video group", "fail", "no access", fix="usermod -aG video $USER")
    assert doctor.DoctorReport([ok]).table().endswith("all good")
    assert doctor.DoctorReport([ok, warn]).table().endswith("no failures; 1 warning above, each with its fix")
    assert doctor.DoctorReport([ok, warn, fail]).table().endswith("some checks FAILED: see the fixes above")
