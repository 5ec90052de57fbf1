"""End to end through the CLI with the real `edgerec run` on the loopback board:
setup -> deploy (health check = first real prediction) -> status -> deploy v2 -> rollback."""

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from edgerec.bundle import load_manifest, write_manifest
from edgerec.cli import main

from _fixtures.runtime import make_colour_onnx_bundle

pytestmark = pytest.mark.ssh


def _ssh(server, root):
    return ["--identity", str(server.client_key), "--known-hosts", str(server.known_hosts), "--root", str(root)]


def test_cli_setup_deploy_status_rollback_with_real_runtime(sshd_server, rt_video, tmp_path, capsys):
    root = tmp_path / "pi home"
    b1 = make_colour_onnx_bundle(tmp_path / "colours v1", openvino=False)
    b2 = Path(shutil.copytree(b1, tmp_path / "colours v2"))
    write_manifest(dataclasses.replace(load_manifest(b2), version="2"), b2)
    ssh = _ssh(sshd_server, root)
    venv = str(Path(sys.executable).parents[1])
    try:
        assert main(["device", "setup", sshd_server.target, "--venv", venv, "--no-os-packages", "--service", "supervised",
                     "--camera", str(rt_video), "--run-args", "--loop --backend onnxruntime --threads 1", *ssh]) == 0
        out = capsys.readouterr().out
        assert "board.json" in out and "supervised" in out

        assert main(["deploy", str(b1), sshd_server.target, "--health-timeout", "60", *ssh]) == 0
        out = capsys.readouterr().out
        assert "colours 1 is current" in out and "healthy: first prediction" in out
        preds = [json.loads(ln) for ln in (root / "run" / "predictions.jsonl").read_text().splitlines() if ln.strip()]
        assert preds, "the real runtime wrote no prediction"

        assert main(["deploy", str(b2), sshd_server.target, "--health-timeout", "60", *ssh]) == 0
        capsys.readouterr()
        assert main(["status", sshd_server.target, "--json", *ssh]) == 0
        st = json.loads(capsys.readouterr().out)
        assert st["models"]["colours"]["current"] == "2" and st["service"]["running_version"] == "2"
        assert st["versions"]["onnxruntime"] and st["last_health_check"]["health"]["healthy"]

        assert main(["rollback", sshd_server.target, "--health-timeout", "60", *ssh]) == 0
        assert "colours 1 is current again" in capsys.readouterr().out
        assert os.readlink(root / "models" / "colours" / "current") == "1"
        assert main(["status", sshd_server.target, *ssh]) == 0
        assert "[1]" in capsys.readouterr().out
    finally:
        from edgerec.devices import board

        if (root / "board.json").exists():
            board.stop(root)
