"""The bundle archive: pack/unpack round trip and every way an archive may try to escape its folder."""

import io
import json
import tarfile

import pytest

from edgerec._archive import list_members, pack, unpack
from edgerec.errors import BundleError


def _bundle(tmp_path):
    b = tmp_path / "b"
    (b / "onnx").mkdir(parents=True)
    (b / "edgerec.json").write_text(json.dumps({"schema_version": "1.0"}))
    (b / "onnx" / "model_fp32.onnx").write_bytes(b"\x08\x01" * 100)
    return b


def _tar(path, members):
    """members: list of (TarInfo, bytes or None)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name, data=b"x"):
    return tarfile.TarInfo(name), data


def _manifest():
    return _file("edgerec.json", b"{}")


def test_round_trip_is_byte_identical_and_reproducible(tmp_path):
    b = _bundle(tmp_path)
    a1 = pack(b, tmp_path / "b.edgerec")
    a2 = pack(b, tmp_path / "again.edgerec")
    assert a1.read_bytes() == a2.read_bytes()  # no timestamps or owners inside
    dest = unpack(a1, tmp_path / "out" / "b2")
    assert (dest / "onnx" / "model_fp32.onnx").read_bytes() == (b / "onnx" / "model_fp32.onnx").read_bytes()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b2"]  # no temporary folder left


def test_pack_refuses_symlinks_and_non_bundles(tmp_path):
    b = _bundle(tmp_path)
    (b / "link").symlink_to(b / "edgerec.json")
    with pytest.raises(BundleError, match="not a regular file"):
        pack(b, tmp_path / "x.edgerec")
    with pytest.raises(BundleError, match="no edgerec.json"):
        pack(tmp_path / "b" / "onnx", tmp_path / "y.edgerec")


@pytest.mark.parametrize(
    "bad, message",
    [
        (_file("../evil.txt"), "leaves the bundle"),
        (_file("onnx/../../evil.txt"), "leaves the bundle"),
        (_file("/tmp/evil.txt"), "absolute path"),
    ],
)
def test_unpack_refuses_escaping_paths(tmp_path, bad, message):
    arch = _tar(tmp_path / "bad.edgerec", [_manifest(), bad])
    with pytest.raises(BundleError, match=message):
        unpack(arch, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.edgerec"]  # nothing else written anywhere


def _link(kind, name, target):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _device(kind):
    info = tarfile.TarInfo("dev")
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


@pytest.mark.parametrize(
    "bad, message",
    [
        (_link(tarfile.SYMTYPE, "model.onnx", "/etc/passwd"), "is a link"),
        (_link(tarfile.LNKTYPE, "model.onnx", "edgerec.json"), "is a link"),
        (_device(tarfile.CHRTYPE), "device"),
        (_device(tarfile.BLKTYPE), "device"),
        (_device(tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_unpack_refuses_links_and_devices(tmp_path, bad, message):
    arch = _tar(tmp_path / "bad.tar.gz", [_manifest(), bad])
    with pytest.raises(BundleError, match=message):
        unpack(arch, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_unpack_needs_a_manifest_and_a_free_destination(tmp_path):
    arch = _tar(tmp_path / "nomanifest.edgerec", [_file("model.onnx")])
    with pytest.raises(BundleError, match="no edgerec.json"):
        list_members(arch)
    good = pack(_bundle(tmp_path), tmp_path / "good.edgerec")
    (tmp_path / "taken").mkdir()
    with pytest.raises(BundleError, match="already exists"):
        unpack(good, tmp_path / "taken")
    assert unpack(good, tmp_path / "taken", overwrite=True).joinpath("edgerec.json").is_file()


def test_unpack_rejects_garbage(tmp_path):
    junk = tmp_path / "junk.edgerec"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(BundleError, match="not a readable bundle archive"):
        unpack(junk, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_archive_module_needs_no_numpy():
    import subprocess
    import sys

    code = "import sys, edgerec._archive; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
