"""Pull mode against a loopback http.server: fetch, verify, atomic switch, health check, rollback."""

import functools
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgerec.devices import board
from edgerec.devices.pull import pull
from edgerec.errors import DeployError

from _fixtures.ssh import fake_board, make_bundle


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_root(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_pull_switches_and_checks_health_then_refuses_corruption(tmp_path, http_root):
    served, base = http_root
    root = fake_board(tmp_path / "board")
    make_bundle(served / "digits" / "1", version="1")
    make_bundle(served / "digits" / "2 two", version="2")
    try:
        r1 = pull(f"{base}/digits/1/", root=root, health_timeout=20)
        assert r1.ok and r1.health["healthy"] and os.readlink(root / "models/digits/current") == "1"
        r2 = pull(f"{base}/digits/2%20two", root=root, health_timeout=20)
        assert r2.ok and r2.previous == "1" and os.readlink(root / "models/digits/current") == "2"
        assert "SHA256SUMS" in os.listdir(root / "models/digits/2")  # so `edgerec rollback` can re-check it

        make_bundle(served / "digits" / "3", version="3")
        (served / "digits" / "3" / "model int8.tflite").write_bytes(b"corrupted on the server")
        with pytest.raises(DeployError, match="sha256 mismatch after download"):
            pull(f"{base}/digits/3", root=root, health_timeout=20)
        assert os.readlink(root / "models/digits/current") == "2"
        assert not (root / "models/digits/3").exists()
        assert not list((root / "models/digits").glob(".staging-*"))
        assert board.service_state(root)["running_version"] == "2"

        make_bundle(served / "digits" / "4", version="4", behaviour="crash")
        with pytest.raises(DeployError, match="health check failed.*rolled back to 2"):
            pull(f"{base}/digits/4", root=root, health_timeout=3)
        assert os.readlink(root / "models/digits/current") == "2"
        events = [json.loads(ln) for ln in (root / "deploys.jsonl").read_text().splitlines()]
        assert [e["version"] for e in events] == ["1", "2", "4"] and events[-1]["rolled_back_to"] == "2"
    finally:
        board.stop(root)


def test_pull_unreachable_or_missing_says_so(tmp_path, http_root):
    _, base = http_root
    root = fake_board(tmp_path / "board")
    with pytest.raises(DeployError, match="cannot fetch"):
        pull(f"{base}/nothing/", root=root, service=False)
    assert not (root / "models").exists()


def test_pull_cli_without_service(tmp_path, http_root, capsys):
    from edgerec.cli import main

    served, base = http_root
    root = fake_board(tmp_path / "board")
    make_bundle(served / "b", version="5")
    assert main(["device", "pull", f"{base}/b/", "--root", str(root), "--no-service"]) == 0
    assert "digits 5 is current" in capsys.readouterr().out
    assert os.readlink(root / "models/digits/current") == "5"
    assert main(["device", "pull", f"{base}/b/", "--root", str(root), "--no-service"]) == 0  # again: nothing to fetch
    assert "already present" in capsys.readouterr().out
    assert json.loads((root / "deploys.jsonl").read_text().splitlines()[-1])["action"] == "pull"
