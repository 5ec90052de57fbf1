"""Inventory deploys: parallel with a limit, per-host summary, failures reported and in the exit code."""

import time
from pathlib import Path

import pytest
import yaml

from edgerec.cli import main
from edgerec.devices.inventory import deploy_inventory, load_inventory, summary_table
from edgerec.errors import ConfigError

from _fixtures.ssh import fake_board, make_bundle

pytestmark = pytest.mark.ssh


def _boards(server, tmp_path, n):
    return [fake_board(tmp_path / f"board {i}") for i in range(n)]


def _inventory(server, tmp_path, roots, extra=()):
    hosts = [{"host": server.target, "name": f"board-{i}", "root": str(r)} for i, r in enumerate(roots)]
    hosts += list(extra)
    inv = tmp_path / "hosts.yaml"
    inv.write_text(yaml.safe_dump({"defaults": {"identity": str(server.client_key),
                                                "known_hosts": str(server.known_hosts)}, "hosts": hosts}))
    return inv


def _stop(roots):
    from edgerec.devices import board

    for r in roots:
        board.stop(r)


def test_inventory_partial_failure_is_reported_per_host_and_in_exit_code(sshd_server, tmp_path, capsys):
    roots = _boards(sshd_server, tmp_path, 2)
    bad = [{"host": sshd_server.target, "name": "not-set-up", "root": str(tmp_path / "nothing")},
           {"host": "root@127.0.0.1:1", "name": "unreachable"}]
    inv = _inventory(sshd_server, tmp_path, roots, bad)
    bundle = make_bundle(tmp_path / "bundle", version="7")
    try:
        code = main(["deploy", str(bundle), "--inventory", str(inv), "-j", "2", "--health-timeout", "20"])
    finally:
        _stop(roots)
    out = capsys.readouterr().out
    assert code == 1
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("board-", "not-set-up", "unreachable"))}
    assert "ok" in lines["board-0"].split()[1] and "ok" in lines["board-1"].split()[1]
    assert "FAILED" in lines["not-set-up"] and "not set up" in lines["not-set-up"]
    assert "FAILED" in lines["unreachable"] and "cannot reach" in lines["unreachable"]
    assert "2/4 boards ok, 2 FAILED" in out
    for r in roots:
        assert (r / "models" / "digits" / "current").readlink() == Path("7")


def test_concurrency_limit_is_respected(sshd_server, tmp_path):
    roots = _boards(sshd_server, tmp_path, 3)
    hosts = load_inventory(_inventory(sshd_server, tmp_path, roots))
    bundle = make_bundle(tmp_path / "bundle", version="1", size=1 << 20)
    t = time.perf_counter()
    res = deploy_inventory(bundle, hosts, concurrency=1, progress=False, service=False)
    serial = time.perf_counter() - t
    assert all(r.ok for r in res)
    spans = sorted((r.locked_at, r.unlocked_at) for r in res)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "concurrency=1 must not overlap"
    table = summary_table(res)
    assert "3/3 boards ok" in table and serial > 0


def test_inventory_file_errors(tmp_path):
    p = tmp_path / "hosts.yaml"
    p.write_text("hosts:\n  - host: pi@a\n    prot: 22\n")
    with pytest.raises(ConfigError, match="unknown key 'prot'"):
        load_inventory(p)
    p.write_text("hosts:\n  - pi@a\n  - pi@a\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_inventory(p)
    p.write_text("hosts: []\n")
    with pytest.raises(ConfigError, match="non-empty"):
        load_inventory(p)
    p.write_text("defaults: {user: pi, port: 2222}\nhosts:\n  - 10.0.0.1\n  - {host: 'root@10.0.0.2:22', name: b}\n")
    a, b = load_inventory(p)
    assert (a.target.user, a.target.port) == ("pi", 2222) and (b.target.user, b.target.port) == ("root", 22)


def test_bad_bundle_reaches_no_host(tmp_path):
    b = make_bundle(tmp_path / "b")
    (b / "model int8.tflite").write_bytes(b"x")
    p = tmp_path / "hosts.yaml"
    p.write_text("hosts:\n  - root@127.0.0.1:1\n")
    code = main(["deploy", str(b), "--inventory", str(p)])
    assert code == 2
