"""
trusted_path: may root use a path? Real files and directories in a temporary tree (tests run as
root: files they create are root's; other owners come from chown).
"""

import os
import subprocess

import pytest
from salt.exceptions import CommandExecutionError

from tests.conftest import REPO
from tests.unit.conftest import _load

tp = _load("trusted_path_module", REPO / "_modules/trusted_path.py")
state = _load("trusted_path_state", REPO / "_states/trusted_path.py")
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")


@pytest.fixture
def tree(tmp_path):
    """A trusted directory (root's, 0755) holding a root-owned lock."""
    top = tmp_path / "srv"
    top.mkdir(mode=0o755)
    (top / "env.lock").write_text("x\n")
    return top


def refusal(path, **kwargs):
    with pytest.raises(CommandExecutionError) as err:
        tp.check(str(path), **kwargs)
    return str(err.value)


def test_root_only_path_is_trusted(tree):
    assert tp.check(str(tree / "env.lock")) is True
    assert tp.check(str(tree)) is True
    assert tp.find_problem(str(tree / "env.lock")) is None


def test_group_writable_directory_is_refused_with_the_fix(tree):
    os.chmod(tree, 0o775)
    text = refusal(tree / "env.lock", what="conda_env: lock", hint="keep it in the state tree")
    assert f"conda_env: lock {tree}/env.lock cannot be trusted by root" in text
    assert f"{tree} is writable by group (mode 0775)" in text
    assert f"Fix: chmod go-w {tree}, or keep it in the state tree" in text


def test_file_of_another_account_is_refused(tree):
    os.chown(tree / "env.lock", NOBODY, 0)
    text = refusal(tree / "env.lock")
    assert f"{tree}/env.lock is owned by uid {NOBODY}" in text and "not root" in text
    assert f"chown root: {tree}/env.lock" in text


def test_world_writable_file_is_refused(tree):
    os.chmod(tree / "env.lock", 0o646)
    assert "writable by others (mode 0646)" in refusal(tree / "env.lock")


def test_symlink_is_followed_and_its_target_checked(tree, tmp_path):
    elsewhere = tmp_path / "home-alice"
    elsewhere.mkdir()
    (elsewhere / "evil.lock").write_text("x\n")
    os.chown(elsewhere, NOBODY, 0)
    (tree / "link.lock").symlink_to(elsewhere / "evil.lock")
    text = refusal(tree / "link.lock")
    assert f"{elsewhere} is owned by uid {NOBODY}" in text
    assert f"reached through the symlink {tree}/link.lock -> {elsewhere}/evil.lock" in text
    # a link to a trusted file (relative, through a trusted directory) is fine
    (tree / "good.lock").symlink_to("env.lock")
    assert tp.check(str(tree / "good.lock")) is True


def test_symlinked_directory_in_an_untrusted_place_is_refused(tree, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)  # umask-proof
    (shared / "envs").mkdir()
    (tree / "envs").symlink_to(shared / "envs")
    text = refusal(tree / "envs" / "jh.lock.yml", missing_ok=True)
    assert f"{shared} is writable by group and others (mode 0777)" in text


def test_symlink_loop_is_refused(tree):
    (tree / "a").symlink_to(tree / "b")
    (tree / "b").symlink_to(tree / "a")
    assert "a symlink loop" in refusal(tree / "a")


def test_sticky_root_directory_is_trusted_for_root_entries_only(tree):
    sticky = tree / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "root.lock").write_text("x\n")
    (sticky / "user.lock").write_text("x\n")
    os.chown(sticky / "user.lock", NOBODY, 0)
    assert tp.check(str(sticky / "root.lock")) is True
    assert f"owned by uid {NOBODY}" in refusal(sticky / "user.lock")
    assert "writable by group and others (mode 1777)" in refusal(sticky), "the sticky dir itself is no lock"


def test_missing_paths(tree):
    assert tp.check(str(tree / "new" / "env.lock"), missing_ok=True) is True
    assert f"{tree}/nothing is missing" in refusal(tree / "nothing")
    os.chmod(tree, 0o757)
    assert "writable by others" in refusal(tree / "new.lock", missing_ok=True), "root would create it there"


def test_relative_path_is_refused():
    assert "not an absolute path" in refusal("srv/env.lock")


def test_recurse_finds_a_writable_file_deep_down(tree):
    deep = tree / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "mod.py").write_text("")
    assert tp.check(str(tree), recurse=True) is True
    os.chmod(deep / "mod.py", 0o664)
    assert f"{deep}/mod.py is writable by group" in refusal(tree, recurse=True)
    assert tp.check(str(tree)) is True, "without recurse only the way to the directory counts"
    os.chmod(deep / "mod.py", 0o644)
    (tree / ".git").mkdir()
    (tree / ".git" / "config").write_text("")
    os.chown(tree / ".git" / "config", NOBODY, 0)
    assert tp.check(str(tree), recurse=True) is True, ".git is skipped"
    (deep / "link").symlink_to("/nonexistent/x")
    assert "/nonexistent is missing" in refusal(tree, recurse=True)


def test_script_mode_with_the_system_python(tree):
    script = str(REPO / "_modules/trusted_path.py")
    ok = subprocess.run(["/usr/bin/python3", "-I", script, "--recurse", str(tree)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    os.chmod(tree, 0o775)
    bad = subprocess.run(["/usr/bin/python3", "-I", script, str(tree / "env.lock")], capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{tree} is writable by group" in bad.stderr


def test_state_checked(tree, monkeypatch):
    monkeypatch.setattr(state, "__salt__", {"trusted_path.check": tp.check}, raising=False)
    assert state.checked(str(tree / "env.lock"))["result"] is True
    os.chmod(tree, 0o775)
    ret = state.checked(str(tree / "env.lock"), hint="keep it elsewhere")
    assert ret["result"] is False and ret["changes"] == {}
    assert f"chmod go-w {tree}, or keep it elsewhere" in ret["comment"]
