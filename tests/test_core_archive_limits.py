"""Archives that cannot exhaust a board or lose a bundle (issue #12, cases 2 and 4)."""

import io
import json
import tarfile

import pytest

from edgerec import limits
from edgerec._archive import list_members, pack, read_manifest_bytes, unpack
from edgerec.bundle import Artifact, InputSpec, Manifest, sha256_file, verify_bundle, write_manifest
from edgerec.cli import main as cli_main
from edgerec.errors import BundleError


def _bundle(root, version="1", payload=b"model"):
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(payload)
    art = Artifact(format="onnx", precision="fp32", file="model.onnx", files=("model.onnx",),
                   sha256={"model.onnx": sha256_file(root / "model.onnx")})
    write_manifest(Manifest(name="m", version=version, task="single_label", labels=("a", "b"), input=InputSpec(8, 8),
                            artifacts=(art,), provenance={"edgerec_version": "0", "created": "now"}), root)
    return root


def _bad_archive(tmp_path):
    """A well-formed archive whose model does not match its manifest's hash."""
    bad = _bundle(tmp_path / "bad", version="2")
    (bad / "model.onnx").write_bytes(b"tampered")
    return pack(bad, tmp_path / "bad.edgerec")


# -------------------------------------------------------------------------------- case 2: nothing lost


def test_case02_force_unpack_of_a_bad_archive_keeps_the_good_bundle(tmp_path, capsys):
    good = _bundle(tmp_path / "dest")
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    archive = _bad_archive(tmp_path)
    assert cli_main(["bundle", "unpack", str(archive), str(good), "--force"]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    verify_bundle(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "bad.edgerec", "dest"]  # no temporary folder left


def test_case02_failed_unpack_leaves_nothing_behind(tmp_path):
    archive = _bad_archive(tmp_path)
    dest = tmp_path / "new" / "deeper" / "bundle"
    with pytest.raises(BundleError, match="sha256 mismatch"):
        unpack(archive, dest, check=verify_bundle)
    assert not (tmp_path / "new").exists()


def test_case02_force_unpack_of_a_good_archive_replaces_and_rolls_back(tmp_path, monkeypatch):
    dest = _bundle(tmp_path / "dest")
    archive = pack(_bundle(tmp_path / "v2", version="2"), tmp_path / "v2.edgerec")
    # the second rename fails: the old bundle is renamed back
    from pathlib import Path

    real_rename = Path.rename

    def flaky(self, target):
        if Path(target) == dest and self.name.startswith(".dest.") and ".old." not in self.name:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", flaky)
    with pytest.raises(BundleError, match="No space left"):
        unpack(archive, dest, overwrite=True, check=verify_bundle)
    monkeypatch.undo()
    assert verify_bundle(dest).version == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "v2", "v2.edgerec"]
    assert verify_bundle(unpack(archive, dest, overwrite=True, check=verify_bundle)).version == "2"


# ------------------------------------------------------------------------------ case 4: size and count


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_case04_archive_over_the_size_limit_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", 1 << 20)
    bomb = _tar(tmp_path / "bomb.edgerec", [("edgerec.json", b"{}"), ("zeros.bin", bytes(4 << 20))])
    assert bomb.stat().st_size < 20_000  # compresses to almost nothing
    with pytest.raises(BundleError, match="would unpack to more than .* GiB"):
        unpack(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bomb.edgerec"]


def test_case04_archive_with_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ARCHIVE_MEMBERS", 50)
    many = _tar(tmp_path / "many.edgerec", [("edgerec.json", b"{}")] + [(f"f{i}", b"x") for i in range(60)])
    with pytest.raises(BundleError, match="more than 50 members"):
        list_members(many)


def test_case04_bundle_info_on_an_archive_reads_only_the_manifest(tmp_path, monkeypatch, capsys):
    b = _bundle(tmp_path / "b")
    (b / "zzz_big.bin").write_bytes(bytes(2 << 20))  # not in the manifest: info never needs it
    archive = pack(b, tmp_path / "b.edgerec")
    assert json.loads(read_manifest_bytes(archive))["name"] == "m"
    extracted = []
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda *a, **k: extracted.append(a))
    monkeypatch.setattr(tarfile.TarFile, "extract", lambda *a, **k: extracted.append(a))
    assert cli_main(["bundle", "info", str(archive), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "m"
    assert extracted == []
