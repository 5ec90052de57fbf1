"""`edgerec bench BUNDLE --on user@host`: the board's own bench on a scratch copy; records come back to the local store."""

import json
import os

import pytest
from _fixtures.runtime import add_check_images, make_colour_onnx_bundle

from edgerec.bench.remote import bench_on
from edgerec.bench.store import read_records
from edgerec.cli import main

pytestmark = pytest.mark.ssh

QUICK = ["--runs", "5", "--warmup-runs", "1", "--warmup-seconds", "0", "--artifact", "onnx-fp32", "--threads", "1",
         "--backend", "onnxruntime"]


def _leftovers(root):
    bench = root / "bench"
    return sorted(os.listdir(bench)) if bench.exists() else []


def test_bench_on_a_board_brings_the_records_back_and_leaves_nothing(ssh_board, tmp_path):
    server, root = ssh_board
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    with server.connect() as conn:
        res = bench_on(conn, bundle, QUICK, root=str(root))
    assert res.ok and len(res.records) == 1
    rec = res.records[0]
    assert rec["artifact"] == "onnx-fp32" and rec["backend"] == "onnxruntime" and rec["threads"] == 1
    assert rec["latency_ms"]["p50"] > 0 and rec["device"]["cores"] >= 1  # the board's own fingerprint
    assert rec["measured_on"]["target"] == str(conn.target)
    assert _leftovers(root) == []  # the scratch copy is gone
    assert not (root / "models").exists() or "colours" not in os.listdir(root / "models")  # never deployed


def test_cli_bench_on_appends_to_the_local_store_and_writes_the_board_profile(ssh_board, tmp_path, capsys):
    server, root = ssh_board
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    store = tmp_path / "local.jsonl"
    ssh = ["--identity", str(server.client_key), "--known-hosts", str(server.known_hosts), "--root", str(root)]
    assert main(["bench", str(bundle), "--on", server.target, *QUICK, "--store", str(store), "--recommend", *ssh]) == 0
    recs = read_records(store)
    assert len(recs) == 1 and recs[0]["measured_on"]["via"] == "edgerec bench --on"
    profiles = list(bundle.glob("deploy-profile.*.yaml"))
    assert len(profiles) == 1 and "artifact: onnx-fp32" in profiles[0].read_text()
    assert not (bundle / "deploy-profile.yaml").exists()  # the bundle's own default is left alone
    assert _leftovers(root) == []


def test_bench_on_a_board_that_is_not_set_up_says_so(sshd_server, tmp_path):
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    from edgerec.errors import DeployError

    with sshd_server.connect() as conn, pytest.raises(DeployError, match="not set up"):
        bench_on(conn, bundle, QUICK, root=str(tmp_path / "no board"))


def test_data_flags_are_refused_with_on(tmp_path, capsys):
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    assert main(["bench", str(bundle), "--on", "pi@127.0.0.1", "--data", str(tmp_path)]) == 2
    assert "--data, --source and --estimate are not passed to boards" in capsys.readouterr().err


def test_bench_inventory_reports_each_board_and_goes_on_past_a_failing_one(ssh_board, tmp_path):
    from edgerec.bench.remote import bench_inventory
    from edgerec.devices.inventory import Host

    server, root = ssh_board
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    common = dict(host=server.target, identity=str(server.client_key), known_hosts=str(server.known_hosts))
    hosts = [Host(name="kitchen", root=str(root), **common), Host(name="garage", root=str(tmp_path / "not set up"), **common)]
    ok, bad = bench_inventory(bundle, hosts, QUICK, concurrency=2)
    assert ok.target == "kitchen" and ok.ok and len(ok.records) == 1
    assert bad.target == "garage" and not bad.ok and "not set up" in bad.error
    assert _leftovers(root) == []
