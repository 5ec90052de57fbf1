"""Board-side names and SSH identities (issue #12, cases 13, 14, 15): one validator, every command with
``--`` and quoting, and errors that say what is wrong before anything reaches a board."""

import json
import os
import subprocess
import sys

import pytest
from _fixtures.ssh import fake_board, make_bundle

from edgerec.cli import main as cli_main
from edgerec.devices.names import check_name, check_root
from edgerec.errors import BundleError, ConfigError


@pytest.mark.parametrize("value", ["-rf", "--help", "..", ".", "../..", "a/b", "a\\b", ".hidden", "", "x\ny", "a" * 300])
def test_board_names_refused(value):
    with pytest.raises(BundleError, match="cannot be a folder name on the board"):
        check_name(value, "version")


@pytest.mark.parametrize("value", ["1.0", "it's a \"model\"; rm -rf x $(id)", "v 1 'q' `id`", "r-1", "ünïcode"])
def test_board_names_allowed(value):
    assert check_name(value, "version") == value


@pytest.mark.parametrize("root,ok", [("~/.edgerec", True), ("/opt/edgerec", True), ("~", True),
                                     ("relative/x", False), ("-rf", False), ("/opt/../etc", False), ("/a\nb", False)])
def test_board_root(root, ok):
    if ok:
        assert check_root(root) == root
    else:
        with pytest.raises(ConfigError, match="--root"):
            check_root(root)


def test_case13_switch_script_passes_double_dash_before_every_name():
    from edgerec.devices.deploy import Board

    board = Board.__new__(Board)
    board.root = "/home/pi/.edgerec"
    script = board.switch_script("model", "v1")
    for command in ("ln -s -- v1 ", "ln -s -- models/model ", "mv -T -- .current.", "mv -T -- .active.", "touch -- v1"):
        assert command in script
    with pytest.raises(BundleError, match="starts with '-'"):
        board.switch_script("-rf", "--help")


def test_case13_board_side_activation_refuses_option_like_names(tmp_path):
    root = fake_board(tmp_path / "board")
    r = subprocess.run([sys.executable, "-m", "edgerec.devices.board", str(root), "activate", "-rf", "--help", "",
                        "2", "deploy"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "starts with '-'" in json.loads(r.stdout)["reason"]
    assert not (root / "models").exists() and not (root / "deploys.jsonl").exists()


@pytest.mark.ssh
def test_case13_bundle_named_like_an_option_never_reaches_the_board(ssh_board, tmp_path):
    server, root = ssh_board
    from edgerec.devices.deploy import deploy

    with server.connect() as conn:
        with pytest.raises(BundleError, match="bundle name '-rf' cannot be a folder name on the board"):
            deploy(conn, make_bundle(tmp_path / "b", name="-rf", version="--help"), root=str(root))
        with pytest.raises(BundleError, match="version '--help'"):
            deploy(conn, make_bundle(tmp_path / "c", name="ok", version="--help"), root=str(root))
    assert not (root / "models").exists()  # no orphan version folder, no staging left


def test_case14_rollback_name_climbing_out_is_refused_before_connecting(capsys):
    from edgerec.devices.deploy import rollback

    with pytest.raises(ConfigError, match="--name '../..' cannot be a folder name"):
        rollback(None, name="../..")  # the connection is never used
    with pytest.raises(ConfigError, match="--to '-x'"):
        rollback(None, name="digits", to="-x")
    # port 1 on loopback: a connection attempt would fail differently ("cannot reach")
    assert cli_main(["rollback", "pi@127.0.0.1:1", "--name", "../.."]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: --name '../..' cannot be a folder name" in err and "cannot reach" not in err
    assert cli_main(["status", "pi@127.0.0.1:1", "--root", "../x"]) == 2
    assert "must be an absolute path" in capsys.readouterr().err


def test_case15_missing_identity_file_is_reported_as_such(tmp_path, capsys):
    from edgerec.devices.ssh import Target, connect

    missing = tmp_path / "id_missing"
    with pytest.raises(ConfigError, match=f"identity file {missing} does not exist"):
        connect(Target.parse("pi@127.0.0.1:1"), identity=missing)
    assert cli_main(["status", "pi@127.0.0.1:1", "--identity", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: identity file" in err and "cannot reach" not in err and "fix:" in err
    os.mkdir(tmp_path / "a_folder")
    with pytest.raises(ConfigError, match="is not a file"):
        connect(Target.parse("pi@127.0.0.1:1"), identity=tmp_path / "a_folder")
