"""Addresses, host-key checking and the board lock, against the loopback OpenSSH server."""

import subprocess
from pathlib import Path

import pytest

from edgerec.devices.ssh import Target
from edgerec.errors import ConfigError, DeployError

from _fixtures.ssh import start_sshd


@pytest.mark.parametrize("text, host, user, port", [
    ("pi@kitchen.local", "kitchen.local", "pi", 22),
    ("pi@10.0.0.5:2222", "10.0.0.5", "pi", 2222),
    ("board", "board", None, 22),
    ("root@[::1]:2200", "::1", "root", 2200),
])
def test_target_parse(text, host, user, port):
    t = Target.parse(text)
    assert (t.host, t.user, t.port) == (host, user, port)
    assert Target.parse(str(t)) == t


@pytest.mark.parametrize("bad", ["pi@", "pi@host:99999", "a b@host", "pi@host:port"])
def test_target_parse_rejects(bad):
    with pytest.raises(ConfigError, match="board address|out of range"):
        Target.parse(bad)


@pytest.mark.ssh
def test_changed_host_key_is_refused(sshd_server, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd_server.port} " + " ".join((tmp_path / "other.pub").read_text().split()[:2]) + "\n")
    for accept in (False, True):  # --insecure-accept-new never accepts a CHANGED key
        with pytest.raises(DeployError, match="host key CHANGED") as err:
            sshd_server.connect(known_hosts=kh, insecure_accept_new=accept)
        assert "ssh-keygen -R" in err.value.hint


@pytest.mark.ssh
def test_unknown_host_refused_unless_accept_new(sshd_server, tmp_path):
    kh = tmp_path / "kh" / "known_hosts"
    with pytest.raises(DeployError, match="host key unknown") as err:
        sshd_server.connect(known_hosts=kh)
    assert "--insecure-accept-new" in err.value.hint
    with sshd_server.connect(known_hosts=kh, insecure_accept_new=True) as conn:
        assert conn.run("echo hi").stdout == "hi\n"
    assert f"[127.0.0.1]:{sshd_server.port}" in kh.read_text()
    with sshd_server.connect(known_hosts=kh) as conn:  # now known: no flag needed
        assert conn.run("true").ok


@pytest.mark.ssh
def test_wrong_key_and_unreachable_say_how_to_fix(sshd_server, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(DeployError, match="authentication failed") as err:
        sshd_server.connect(identity=key)
    assert "ssh-copy-id" in err.value.hint
    from edgerec.devices.ssh import connect

    with pytest.raises(DeployError, match="cannot reach"):
        connect(Target.parse("root@127.0.0.1:1"), known_hosts=sshd_server.known_hosts, timeout=3)


@pytest.mark.ssh
def test_remote_commands_quote_everything(sshd_server, tmp_path):
    from edgerec.devices.ssh import q

    odd = tmp_path / "a b'c\"d $(touch pwned) `x`"
    with sshd_server.connect() as conn:
        conn.run(f"mkdir -p {q(str(odd))} && printf %s {q('x; rm -rf /')} > {q(str(odd / 'f'))}")
        failed = conn.run("exit 3", check=False)
    assert (odd / "f").read_text() == "x; rm -rf /"
    assert not (tmp_path / "pwned").exists() and failed.exit_status == 3


@pytest.mark.ssh
def test_lock_is_released_when_the_connection_dies(tmp_path):
    server = start_sshd(tmp_path / "sshd")
    try:
        lock_path = str(tmp_path / ".lock")
        holder = server.connect()
        holder.lock(lock_path)
        with server.connect() as conn:
            with pytest.raises(DeployError, match="busy"):
                conn.lock(lock_path, wait=0.3)
        server.drop_connections()  # the holder's link dies: the kernel frees the flock, nothing goes stale
        holder.close()
        with server.connect() as conn:
            with conn.lock(lock_path, wait=10) as lock:
                assert lock.acquired_at
    finally:
        server.stop()


@pytest.mark.ssh
def test_accept_new_appends_one_line_and_keeps_the_file(sshd_server, tmp_path):
    kh = tmp_path / "known_hosts"
    pub = " ".join(Path(str(sshd_server.host_key) + ".pub").read_text().split()[:2])
    kh.write_text(f"# my hosts\n@cert-authority *.corp {pub}\nother.example {pub}\n")
    before = kh.read_text()
    with sshd_server.connect(known_hosts=kh, insecure_accept_new=True):
        pass
    after = kh.read_text()
    assert after.startswith(before)
    added = after[len(before):].splitlines()
    assert len(added) == 1 and added[0].startswith(f"[127.0.0.1]:{sshd_server.port} ssh-ed25519 ")


@pytest.mark.ssh
def test_revoked_host_key_is_refused(sshd_server, tmp_path):
    pub = " ".join(Path(str(sshd_server.host_key) + ".pub").read_text().split()[:2])
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd_server.port} {pub}\n@revoked * {pub}\n")
    with pytest.raises(DeployError, match="@revoked"):
        sshd_server.connect(known_hosts=kh)
