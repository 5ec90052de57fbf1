"""Deploy, rollback and status against a real loopback OpenSSH server."""

import json
import os
import threading
import time

import pytest

from edgerec.devices.deploy import deploy, rollback, status
from edgerec.errors import BundleError, DeployError

from _fixtures.ssh import make_bundle

pytestmark = pytest.mark.ssh


def _current(root, name="digits"):
    link = root / "models" / name / "current"
    return os.readlink(link) if link.is_symlink() else None


def _events(root):
    return [json.loads(line) for line in (root / "deploys.jsonl").read_text().splitlines()]


def test_deploy_switches_verifies_and_passes_health(ssh_board, tmp_path):
    server, root = ssh_board
    b1 = make_bundle(tmp_path / "b1", version="1.0")
    with server.connect() as conn:
        res = deploy(conn, b1, root=str(root), health_timeout=20)
    assert res.ok and res.health["healthy"] and res.previous is None
    assert _current(root) == "1.0"
    assert os.readlink(root / "active") == "models/digits"
    on_board = root / "models" / "digits" / "1.0"
    assert (on_board / "model int8.tflite").read_bytes() == (b1 / "model int8.tflite").read_bytes()
    assert (on_board / "labels dir" / "notes.txt").is_file()
    assert "SHA256SUMS" in os.listdir(on_board)
    assert not [p for p in os.listdir(root / "models" / "digits") if p.startswith(".")]
    # the service really runs the new version and printed predictions
    pred = res.health["prediction"]
    assert pred["version"] == "1.0" and pred["label"] == "zero"

    b2 = make_bundle(tmp_path / "b2", version="2.0")
    with server.connect() as conn:
        res2 = deploy(conn, b2, root=str(root), health_timeout=20)
        st = status(conn, root=str(root))
    assert res2.ok and res2.previous == "1.0" and _current(root) == "2.0"
    assert st["models"]["digits"]["current"] == "2.0"
    assert set(st["models"]["digits"]["versions"]) == {"1.0", "2.0"}
    assert st["service"]["active"] and st["service"]["running_version"] == "2.0"
    assert st["last_health_check"]["health"]["healthy"] is True
    assert st["versions"]["edgerec"]


def test_redeploy_same_version_skips_upload_and_keep_prunes(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        for v in ("1", "2", "3", "4"):
            deploy(conn, make_bundle(tmp_path / v, version=v), root=str(root), keep=2, service=False)
        again = deploy(conn, tmp_path / "4", root=str(root), keep=2, service=False)
    assert again.skipped_upload and again.uploaded_bytes == 0
    assert sorted(p for p in os.listdir(root / "models" / "digits") if not p.startswith(".")) == ["3", "4", "current"]


def test_rollback_to_previous_and_to_named_version(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        for v in ("1", "2", "3"):
            deploy(conn, make_bundle(tmp_path / v, version=v), root=str(root), health_timeout=20, service=v == "3")
        r = rollback(conn, root=str(root), health_timeout=20)
        assert r.ok and r.version == "2" and r.previous == "3" and _current(root) == "2"
        r = rollback(conn, root=str(root), to="1", health_timeout=20)
        assert r.version == "1" and _current(root) == "1"
        with pytest.raises(DeployError, match="not on the board"):
            rollback(conn, root=str(root), to="9")
    assert json.loads((root / "run" / "started.json").read_text())["version"] == "1"
    assert [e["action"] for e in _events(root)][-2:] == ["rollback", "rollback"]


@pytest.mark.parametrize("behaviour, reason", [
    ("crash", "not running"),
    pytest.param("silent", "no prediction", marks=pytest.mark.slow),
])
def test_failed_health_check_rolls_back(ssh_board, tmp_path, behaviour, reason):
    server, root = ssh_board
    with server.connect() as conn:
        deploy(conn, make_bundle(tmp_path / "good", version="1"), root=str(root), health_timeout=20)
        with pytest.raises(DeployError, match=reason) as err:
            deploy(conn, make_bundle(tmp_path / "bad", version="2", behaviour=behaviour), root=str(root), health_timeout=3)
    assert "rolled back to 1 and it is healthy" in str(err.value)
    assert _current(root) == "1"
    assert json.loads((root / "run" / "started.json").read_text())["version"] == "1"
    last = _events(root)[-1]
    assert last["version"] == "2" and last["health"]["healthy"] is False and last["rolled_back_to"] == "1"


def test_failed_first_deploy_stops_service(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        with pytest.raises(DeployError, match="no previous version"):
            deploy(conn, make_bundle(tmp_path / "bad", version="1", behaviour="crash"), root=str(root), health_timeout=2)
    assert _current(root) is None


def test_bundle_failing_verification_is_never_uploaded(ssh_board, tmp_path):
    server, root = ssh_board
    b = make_bundle(tmp_path / "b", version="1")
    (b / "model int8.tflite").write_bytes(b"tampered")
    with server.connect() as conn:
        with pytest.raises(BundleError, match="sha256 mismatch"):
            deploy(conn, b, root=str(root))
    assert not (root / "models" / "digits").exists()


def test_corruption_in_transit_is_refused_before_switch(ssh_board, tmp_path, monkeypatch):
    server, root = ssh_board
    with server.connect() as conn:
        deploy(conn, make_bundle(tmp_path / "1", version="1"), root=str(root), service=False)
        real_put = type(conn).put

        def corrupting_put(self, local, remote, callback=None):
            real_put(self, local, remote, callback)
            if remote.endswith(".tflite"):  # flip one byte on the board, as a bad link would
                with self.sftp.open(remote, "r+") as f:
                    f.seek(10)
                    byte = f.read(1)
                    f.seek(10)
                    f.write(bytes([byte[0] ^ 0xFF]))

        monkeypatch.setattr(type(conn), "put", corrupting_put)
        with pytest.raises(DeployError, match="sha256 check ON THE BOARD failed"):
            deploy(conn, make_bundle(tmp_path / "2", version="2"), root=str(root), service=False)
    assert _current(root) == "1"
    assert not (root / "models" / "digits" / "2").exists()
    assert not [p for p in os.listdir(root / "models" / "digits") if p.startswith(".staging")]


def test_connection_dropped_mid_upload_keeps_current_and_is_cleaned_next_time(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        deploy(conn, make_bundle(tmp_path / "1", version="1"), root=str(root), health_timeout=20)
    big = make_bundle(tmp_path / "2", version="2", size=3 << 20)
    dropped = []

    def progress(done, total):
        if done > total // 3 and not dropped:
            dropped.append(done)
            server.drop_connections()  # sshd's session processes die: the link is gone

    with server.connect() as conn:
        with pytest.raises(DeployError, match="connection lost"):
            deploy(conn, big, root=str(root), progress=progress)
    assert dropped
    assert _current(root) == "1"
    staging = [p for p in os.listdir(root / "models" / "digits") if p.startswith(".staging-2-")]
    assert staging, "the partial upload should still be there until the next deploy"
    # the service was never touched: still version 1 and predicting
    assert json.loads((root / "run" / "started.json").read_text())["version"] == "1"
    with server.connect() as conn:
        res = deploy(conn, big, root=str(root), health_timeout=20)
    assert res.ok and _current(root) == "2"
    assert not [p for p in os.listdir(root / "models" / "digits") if p.startswith(".staging")]


def test_two_deploys_at_once_are_serialised_by_the_board_lock(ssh_board, tmp_path):
    server, root = ssh_board
    bundles = [make_bundle(tmp_path / v, version=v, size=1 << 20) for v in ("a", "b")]
    results, errors = {}, []

    def one(b):
        try:
            with server.connect() as conn:
                results[b.name] = deploy(conn, b, root=str(root), health_timeout=20)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    first, second = sorted(results.values(), key=lambda r: r.locked_at)
    assert first.unlocked_at <= second.locked_at  # no overlap
    assert second.previous == first.version  # the second saw the first's switch
    assert _current(root) == second.version


def test_lock_wait_timeout_says_board_is_busy(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as holder, server.connect() as conn:
        with holder.lock(str(root / ".lock")):
            with pytest.raises(DeployError, match="board is busy"):
                deploy(conn, make_bundle(tmp_path / "1", version="1"), root=str(root), lock_wait=0.5)
        # released: the same deploy now goes through
        assert deploy(conn, tmp_path / "1", root=str(root), health_timeout=20).ok


def test_names_and_versions_with_spaces_and_quotes_are_safe(ssh_board, tmp_path):
    server, root = ssh_board
    name, version = "it's a \"model\"; rm -rf x $(id)", "v 1 'q' `id`"
    (root / "x").mkdir()
    b = make_bundle(tmp_path / "odd", name=name, version=version)
    with server.connect() as conn:
        res = deploy(conn, b, root=str(root), health_timeout=20)
        st = status(conn, root=str(root))
    assert res.ok and res.health["prediction"]["version"] == version
    assert os.readlink(root / "models" / name / "current") == version
    assert (root / "x").is_dir()
    assert st["models"][name]["current"] == version


def test_unsafe_names_are_refused_before_connecting(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        with pytest.raises(BundleError, match="cannot be a folder name"):
            deploy(conn, make_bundle(tmp_path / "b", version="../../etc"), root=str(root))


def test_deploy_to_board_not_set_up_says_how_to_fix(sshd_server, tmp_path):
    with sshd_server.connect() as conn:
        with pytest.raises(DeployError, match="not set up") as err:
            deploy(conn, make_bundle(tmp_path / "b"), root=str(tmp_path / "empty"))
    assert "edgerec device setup" in err.value.hint


def test_board_rolls_back_by_itself_when_the_link_dies_during_the_health_check(ssh_board, tmp_path):
    server, root = ssh_board
    with server.connect() as conn:
        deploy(conn, make_bundle(tmp_path / "good", version="1"), root=str(root), health_timeout=20)
    bad = make_bundle(tmp_path / "bad", version="2", behaviour="silent")

    def cut_when_switched():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _current(root) != "2":
            time.sleep(0.05)
        time.sleep(0.5)  # the health check is running on the board now
        server.drop_connections()

    cutter = threading.Thread(target=cut_when_switched)
    cutter.start()
    with server.connect() as conn:
        with pytest.raises(DeployError, match="connection lost"):
            deploy(conn, bad, root=str(root), health_timeout=3)
    cutter.join()
    # while the board is still checking / rolling back alone, it holds the board lock itself
    done_before = bool(_events(root)) and _events(root)[-1]["version"] == "2"
    with server.connect() as conn:
        try:
            with conn.lock(str(root / ".lock"), wait=0.3):
                busy = False
        except DeployError:
            busy = True
    assert busy or done_before or _events(root)[-1]["version"] == "2"
    deadline = time.monotonic() + 30  # the board finishes the check alone and switches back
    while time.monotonic() < deadline and not (_events(root) and _events(root)[-1]["version"] == "2"):
        time.sleep(0.2)
    last = _events(root)[-1]
    assert last["version"] == "2" and last["health"]["healthy"] is False and last["rolled_back_to"] == "1"
    assert _current(root) == "1"
    assert json.loads((root / "run" / "started.json").read_text())["version"] == "1"


def test_a_model_that_answers_differently_is_refused_on_the_board_before_switch(ssh_board, tmp_path):
    """Hashes all consistent (a swapped model would be), but the outputs on the check images are not those
    recorded at export: the board's self-test refuses it, `current` stays, the staged copy is gone."""
    import shutil

    from _fixtures.runtime import add_check_images, make_colour_onnx_bundle, record_check_outputs

    server, root = ssh_board
    good = add_check_images(make_colour_onnx_bundle(tmp_path / "good", openvino=False))
    record_check_outputs(good)
    bad = shutil.copytree(good, tmp_path / "bad")
    data = json.loads((bad / "edgerec.json").read_text())
    data["version"] = "2"
    (bad / "edgerec.json").write_text(json.dumps(data))
    record_check_outputs(bad, shift=3.0)  # rewrites the contract hash: every hash check passes
    with server.connect() as conn:
        res = deploy(conn, good, root=str(root), service=False)
        assert res.ok
        with pytest.raises(DeployError, match=r"refused colours 2, nothing was switched: self-test failed: onnx-fp32: "
                                              r"outputs differ from export's by up to"):
            deploy(conn, bad, root=str(root), service=False)
    assert _current(root, "colours") == "1"
    assert not (root / "models" / "colours" / "2").exists()
    assert not [p for p in os.listdir(root / "models" / "colours") if p.startswith(".staging")]


def test_the_self_test_checks_the_pinned_artifact_only(ssh_board, tmp_path):
    """deploy --format/--precision: the artifact that will run is the one checked; one the board will not run
    (here int8, recorded differently) does not block it, and is refused when it is the one pinned."""
    from _fixtures.runtime import add_check_images, make_colour_onnx_bundle, record_check_outputs

    server, root = ssh_board
    bundle = add_check_images(make_colour_onnx_bundle(tmp_path / "b", openvino=False))
    record_check_outputs(bundle, shift=3.0, shifted=("onnx-int8",))
    with server.connect() as conn:
        res = deploy(conn, bundle, root=str(root), service=False, format="onnx", precision="fp32")
        assert res.ok and _current(root, "colours") == "1"
        with pytest.raises(DeployError, match="self-test failed: onnx-int8"):
            deploy(conn, bundle, root=str(root), service=False, format="onnx", precision="int8", force_upload=True)
    assert _current(root, "colours") == "1"
