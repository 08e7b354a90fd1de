"""Unit tests of the jupyterhub states: secrets (real files in a temp dir, including what an
attacker plants there) and the allow-list group."""

import grp
import os
import pwd
import stat

import jupyterhub_module
import jupyterhub_state as state
import pytest

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def configure_loader_modules():
    return {
        state: {
            "__opts__": {"test": False},
            "__salt__": {
                "jupyterhub.write_secret": jupyterhub_module.write_secret,
                "jupyterhub.secret_status": jupyterhub_module.secret_status,
                "jupyterhub.secret_fix": jupyterhub_module.secret_fix,
            },
        }
    }


def present(path, **kwargs):
    return state.secret_present(str(path), user=USER, group=GROUP, **kwargs)


def test_generates_once_then_keeps_the_secret(tmp_path):
    path = tmp_path / "cookie"
    ret = present(path)
    assert ret["result"] is True
    assert ret["changes"] == {"secret": "generated (32 random bytes)", "mode": "0600"}
    secret = path.read_text()
    assert secret not in str(ret)
    again = present(path)
    assert again["result"] is True and again["changes"] == {}
    assert path.read_text() == secret


def test_test_mode_predicts_and_touches_nothing(tmp_path):
    path = tmp_path / "cookie"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(state.__opts__, "test", True)
        ret = present(path)
    assert ret["result"] is None
    assert ret["changes"]["secret"] == "generated (32 random bytes)"
    assert not path.exists()


def test_empty_file_gets_a_secret(tmp_path):
    path = tmp_path / "env"
    path.write_text("")
    ret = present(path, template="TOKEN={secret}\n", nbytes=8)
    assert ret["changes"]["secret"] == "generated (8 random bytes)"
    assert path.read_text().startswith("TOKEN=")


def test_mode_is_corrected_without_new_secret(tmp_path):
    path = tmp_path / "cookie"
    present(path)
    secret = path.read_text()
    path.chmod(0o644)
    ret = present(path)
    assert ret["changes"] == {"mode": {"old": "0644", "new": "0600"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret


def _victim(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("root:secret-hash\n")
    victim.chmod(0o640)
    return victim, victim.stat()


@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_a_planted_link_fails_the_state_and_its_target_is_untouched(tmp_path, plant):
    victim, before = _victim(tmp_path)
    path = tmp_path / "cookie"
    getattr(path, "symlink_to" if plant == "symlink" else "hardlink_to")(victim)
    ret = present(path, mode="0600")
    assert ret["result"] is False and ret["changes"] == {}
    assert "refusing to touch it" in ret["comment"]
    after = victim.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid, before.st_gid, 0o640)
    assert victim.read_text() == "root:secret-hash\n"


def test_a_fifo_or_directory_fails_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        ret = present(tmp_path / name)
        assert ret["result"] is False and "not a regular file" in ret["comment"]


def test_no_secret_is_written_into_a_directory_others_can_write(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    ret = present(shared / "cookie")
    assert ret["result"] is False and "writable by root only" in ret["comment"]
    assert list(shared.iterdir()) == []


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return {"name": kwargs["name"], "result": True, "changes": {}, "comment": "ok"}


def test_group_with_a_privileged_member_fails_and_changes_nothing(monkeypatch):
    group_present = _Recorder()
    monkeypatch.setitem(state.__states__, "group.present", group_present)

    def check(names, groups, min_uid):
        if "debian" in names:
            raise jupyterhub_module.CommandExecutionError(
                "jupyterhub:access:members: these accounts may not get Jupyter servers: debian")
        return True

    monkeypatch.setitem(state.__salt__, "jupyterhub.check_server_users", check)
    ret = state.server_group_present("jupyterhub-users", members=["alice", "debian"])
    assert ret["result"] is False and "debian" in ret["comment"] and group_present.calls == []
    ret = state.server_group_present("jupyterhub-users", members=["bob", "alice"])
    assert ret["result"] is True
    assert group_present.calls == [{"name": "jupyterhub-users", "members": ["alice", "bob"]}]
    state.server_group_present("hpcusers", members=None)  # managed elsewhere: only created
    assert group_present.calls[-1] == {"name": "hpcusers"}
