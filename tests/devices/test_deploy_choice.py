"""Which artifact a deployed board runs: the bundle's deploy profile travels with it, deploy flags pin one."""

import pytest

from edgerec.bench.deploy_profile import DeployProfile, load_deploy_profile, write_deploy_profile
from edgerec.bundle import load_manifest
from edgerec.devices.deploy import bundle_files, deploy, pinned_choice
from edgerec.errors import BackendError, ConfigError

from _fixtures.ssh import make_bundle


def test_pinned_choice_from_deploy_flags(tmp_path):
    m = load_manifest(make_bundle(tmp_path / "b"))
    assert pinned_choice(m) is None and pinned_choice(m, format="auto", precision="auto") is None
    p = pinned_choice(m, precision="int8", threads=2)
    assert (p.artifact, p.backend, p.threads, p.reason) == ("tflite-int8", "auto", 2, "set at deploy: --precision int8 --threads 2")
    assert p.bundle == {"name": m.name, "version": m.version}
    with pytest.raises(ConfigError, match="only with --format and/or --precision"):
        pinned_choice(m, threads=2)
    with pytest.raises(ConfigError, match="did you mean 'fp32'"):
        pinned_choice(m, precision="fp23")
    with pytest.raises(BackendError, match="the bundle holds: tflite-int8"):
        pinned_choice(m, format="onnx")


def test_the_bundles_deploy_profile_is_one_of_its_files(tmp_path):
    b = make_bundle(tmp_path / "b")
    m = load_manifest(b)
    assert "deploy-profile.yaml" not in bundle_files(b, m)
    write_deploy_profile(DeployProfile(artifact="tflite-int8", artifact_format="tflite", precision="int8",
                                       backend="litert", threads=4), b)
    assert "deploy-profile.yaml" in bundle_files(b, m)


@pytest.mark.ssh
def test_deploy_uploads_the_bundles_profile_or_the_pinned_one(ssh_board, tmp_path):
    server, root = ssh_board
    b = make_bundle(tmp_path / "b", version="1")
    write_deploy_profile(DeployProfile(artifact="tflite-int8", artifact_format="tflite", precision="int8",
                                       backend="litert", threads=4, reason="lowest p50"), b)
    with server.connect() as conn:
        deploy(conn, b, root=str(root), service=False)
    on_board = root / "models" / "digits" / "1"
    assert load_deploy_profile(on_board).reason == "lowest p50"
    with server.connect() as conn:  # the same version with a pinned choice: uploaded again, pinned profile
        res = deploy(conn, b, root=str(root), service=False, precision="int8", threads=1)
    assert not res.skipped_upload
    prof = load_deploy_profile(on_board)
    assert (prof.artifact, prof.backend, prof.threads) == ("tflite-int8", "auto", 1)
    assert "deploy-profile.yaml" in (on_board / "SHA256SUMS").read_text()
