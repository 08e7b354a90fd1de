"""Unit tests of the jupyterhub.secret_present state (real files in a temp dir)."""

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
            "__salt__": {"jupyterhub.write_secret": jupyterhub_module.write_secret},
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
