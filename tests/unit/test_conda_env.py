"""
Unit tests of the conda_env execution and state modules with loader fakes (edge cases the
functional tests do not reach). The real solver/installer runs in tests/functional.
"""

import importlib.util
import os
import sys
import types

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.conftest import REPO


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mod = _load("conda_env_module", REPO / "_modules/conda_env.py")
trusted_path = _load("trusted_path_module", REPO / "_modules/trusted_path.py")
state = _load("conda_env_state", REPO / "_states/conda_env.py")


class FakeInstall:
    """Stands in for conda_env.install; records calls, returns/raises what it is told."""

    def __init__(self, changes=None, error=None):
        self.changes = changes or {}
        self.error = error
        self.calls = []

    def __call__(self, name, **kwargs):
        self.calls.append((name, kwargs))
        if self.error:
            raise self.error
        return self.changes


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def cache_file():
    files = {}

    def fake(source, saltenv="base"):
        return files.get(source, False)

    fake.files = files
    return fake


@pytest.fixture
def configure_loader_modules(opts, cache_file, tmp_path):
    config = {"conda_env.root": str(tmp_path / "conda")}
    return {
        mod: {
            "__opts__": opts,
            "__salt__": {
                "config.get": lambda key, default=None: config.get(key, default),
                "cp.cache_file": cache_file,
                "trusted_path.check": trusted_path.check,
            },
        },
        state: {"__opts__": opts, "__salt__": {}, "__env__": "base"},
    }


# ---- __virtual__ ------------------------------------------------------------------------------


def test_virtual_refuses_without_rattler(monkeypatch):
    monkeypatch.setattr(mod, "HAS_RATTLER", False)
    ok, reason = mod.__virtual__()
    assert ok is False and "py-rattler" in reason
    monkeypatch.setattr(mod, "HAS_RATTLER", True)
    assert mod.__virtual__() == "conda_env"


def test_state_virtual_needs_the_execution_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(state, "__salt__", {}, raising=False)
        assert state.__virtual__()[0] is False
        mp.setattr(state, "__salt__", {"conda_env.install": object()}, raising=False)
        assert state.__virtual__() == "conda_env"


# ---- prefixes ---------------------------------------------------------------------------------


def test_resolve_prefix(tmp_path):
    root = tmp_path / "conda"
    assert mod.resolve_prefix("jh") == str(root / "envs/jh")
    assert mod.resolve_prefix("jh", root="/srv/c") == "/srv/c/envs/jh"
    assert mod.resolve_prefix("/shared/envs/jh/") == "/shared/envs/jh"
    assert mod.resolve_prefix("base", root="/srv/c") == "/srv/c"
    for bad in ("a/b", "..", ""):
        with pytest.raises(SaltInvocationError):
            mod.resolve_prefix(bad)


# ---- specs ------------------------------------------------------------------------------------


def test_parse_spec_environment_yml(tmp_path):
    path = tmp_path / "env.yml"
    path.write_text(
        "name: jh\nchannels: [conda-forge, nodefaults]\n"
        "dependencies:\n  - python=3.11\n  - jupyterhub >=5\n  - pip:\n    - sgespawner==1.0\n"
    )
    spec = mod.parse_spec(str(path))
    assert spec["channels"] == ["conda-forge"]
    assert spec["dependencies"] == ["python=3.11", "jupyterhub >=5"]
    assert spec["pip"] == ["sgespawner==1.0"]
    inline = mod.parse_spec(
        channels=["conda-forge"], dependencies=["python=3.11", "jupyterhub >=5"], pip=["sgespawner==1.0"]
    )
    assert inline == spec, "same spec inline and from a file -> same hash"
    changed = mod.parse_spec(channels=["conda-forge"], dependencies=["python=3.12", "jupyterhub >=5"])
    assert changed["sha256"] != spec["sha256"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("channels: [a\ndependencies: [", "malformed YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("dependencies: [x]\n", "no channels"),
        ("channels: [c]\n", "no dependencies"),
        ("channels: [c]\ndependencies: ['alpha >=>= 1']\n", "bad dependency"),
        ("channels: [c]\ndependencies: [a, {conda: [b]}]\n", "unexpected mapping"),
        ("channels: [c]\ndependencies: [a, {pip: ['--index-url x']}]\n", "pip_args"),
        ("channels: [c]\ndependencies: [a, {pip: ['not a req !!']}]\n", "bad pip requirement"),
    ],
)
def test_parse_spec_errors(tmp_path, text, message):
    path = tmp_path / "env.yml"
    path.write_text(text)
    with pytest.raises(CommandExecutionError, match=message):
        mod.parse_spec(str(path))


def test_parse_spec_from_salt_url(tmp_path, cache_file):
    path = tmp_path / "cached.yml"
    path.write_text("channels: [c]\ndependencies: [a]\n")
    cache_file.files["salt://env.yml"] = str(path)
    assert mod.parse_spec("salt://env.yml")["dependencies"] == ["a"]
    with pytest.raises(CommandExecutionError, match="unable to fetch salt://missing.yml"):
        mod.parse_spec("salt://missing.yml")
    with pytest.raises(SaltInvocationError):
        mod.parse_spec("relative/env.yml")


# ---- diff ------------------------------------------------------------------------------------


def rec(name, version, build="h0_0", sha="x"):
    return mod.Ident(name, version, build, "noarch", sha)


def test_conda_diff_lists_each_package_old_new():
    installed = {"a": rec("a", "1"), "b": rec("b", "1"), "c": rec("c", "1"), "d": rec("d", "1", sha="old")}
    target = [rec("a", "1"), rec("b", "2"), rec("e", "1"), rec("d", "1", sha="new")]
    assert mod._conda_diff(installed, target) == {
        "b": {"old": "1=h0_0", "new": "2=h0_0"},
        "c": {"old": "1=h0_0", "new": None},
        "d": {"old": "1=h0_0", "new": "1=h0_0"},  # same version/build, different artifact
        "e": {"old": None, "new": "1=h0_0"},
    }
    assert mod._conda_diff(installed, list(installed.values())) == {}


# ---- lock policy ------------------------------------------------------------------------------


def spec_of(*deps):
    return mod.parse_spec(channels=["file:///c"], dependencies=list(deps))


def fake_lock(monkeypatch, spec, records=("locked",)):
    lock = types.SimpleNamespace(
        platform=mod._platforms()[0],
        spec=spec,
        spec_sha256=spec["sha256"],
        idents=[rec("a", "1")],
        records=list(records),
    )
    monkeypatch.setattr(mod, "_read_lock", lambda path: lock)
    return lock


def test_matching_lock_is_installed_without_solving(monkeypatch, tmp_path):
    lock = tmp_path / "l.yml"
    lock.write_text("x")
    spec = spec_of("a")
    fake_lock(monkeypatch, spec)
    monkeypatch.setattr(mod, "_solve", lambda *a, **k: pytest.fail("solved although the lock matches"))
    got_spec, idents, get_records, action, path = mod._target(
        spec, str(lock), "base", "/p", "/e", frozen=True
    )
    assert (got_spec, idents, action, path) == (spec, [rec("a", "1")], None, str(lock))
    assert get_records() == ["locked"]
    # a lock alone (no spec) brings its own spec
    assert mod._target(None, str(lock), "base", "/p", "/e", frozen=True)[0] == spec


def test_stale_or_missing_lock(monkeypatch, tmp_path, cache_file):
    lock = tmp_path / "l.yml"
    lock.write_text("x")
    fake_lock(monkeypatch, spec_of("a"))
    solved = []
    new_rec = types.SimpleNamespace(
        name=types.SimpleNamespace(normalized="b"), version="2", build="h0", subdir="noarch", sha256=None
    )
    monkeypatch.setattr(mod, "_solve", lambda spec, pkgs, locked=None: solved.append(locked) or [new_rec])
    monkeypatch.setattr(mod, "_installed_records", lambda prefix: ["installed"])
    new = spec_of("a", "b")
    # frozen (timer): never solves
    with pytest.raises(CommandExecutionError, match="frozen"):
        mod._target(new, str(lock), "base", "/p", "/e", frozen=True)
    with pytest.raises(CommandExecutionError, match="frozen"):
        mod._target(new, str(tmp_path / "missing.yml"), "base", "/p", "/e", frozen=True)
    assert solved == []
    # local lock: re-solved preferring the locked builds, then re-recorded
    _, idents, _, action, path = mod._target(new, str(lock), "base", "/p", "/e", frozen=False)
    assert (idents, action, path) == ([mod.Ident("b", "2", "h0", "noarch", None)], "update", str(lock))
    assert solved == [["locked"]]
    # no lock yet: recorded from a solve that prefers what is installed
    assert mod._target(new, str(tmp_path / "missing.yml"), "base", "/p", "/e", False)[3] == "record"
    assert solved[-1] == ["installed"]
    assert mod._target(new, None, "base", "/p", "/e", False)[3] is None
    # salt:// lock: must match, never rewritten
    cache_file.files["salt://l.yml"] = str(lock)
    with pytest.raises(CommandExecutionError, match="different spec"):
        mod._target(new, "salt://l.yml", "base", "/p", "/e", frozen=False)
    with pytest.raises(CommandExecutionError, match="not found"):
        mod._target(new, "salt://nope.yml", "base", "/p", "/e", frozen=False)
    with pytest.raises(SaltInvocationError):
        mod._target(None, None, "base", "/p", "/e", frozen=False)


def test_read_lock_rejects_foreign_files(tmp_path):
    path = tmp_path / "pixi.lock"
    path.write_text("version: 6\nenvironments: {}\n")
    with pytest.raises(CommandExecutionError, match="not a conda_env lock"):
        mod._read_lock(str(path))
    path.write_text("version: 1\nspec: {channels: [c], dependencies: [a]}\npackages: [{name: a}]\n")
    with pytest.raises(CommandExecutionError, match="bad package entry"):
        mod._read_lock(str(path))
    path.write_text(
        "version: 1\nspec: {channels: [c], dependencies: [a]}\n"
        "packages: [{name: a, version: '1', build: b, subdir: noarch}]\n"
    )
    lock = mod._read_lock(str(path))
    assert lock.idents == [mod.Ident("a", "1", "b", "noarch", None)]
    with pytest.raises(CommandExecutionError, match="bad package entry"):
        lock.records  # noqa: B018  (no fn/url: cannot become an installable record)


# ---- update_report ----------------------------------------------------------------------------


def test_update_report(monkeypatch):
    calls = []

    def install(name, test=False, **kwargs):
        calls.append((test, kwargs["frozen"]))
        return {"conda": {"a": {"old": "1=b", "new": "2=b"}}}

    monkeypatch.setattr(mod, "install", install)
    report = mod.update_report("/e", lock_file="/l.yml")
    assert report["result"] is True and report["applied"] is False and calls == [(True, True)]
    assert "not applied" in report["comment"]
    calls.clear()
    report = mod.update_report("/e", lock_file="/l.yml", apply=True)
    assert report["applied"] is True and calls == [(True, True), (False, True)]

    def failing(name, test=False, **kwargs):
        if not test:
            raise CommandExecutionError("boom")
        return {"conda": {"a": {"old": None, "new": "1=b"}}}

    monkeypatch.setattr(mod, "install", failing)
    report = mod.update_report("/e", lock_file="/l.yml", apply=True)
    assert report["result"] is False and "boom" in report["comment"] and report["applied"] is False


# ---- state module -----------------------------------------------------------------------------


CHANGES = {"conda": {"a": {"old": None, "new": "1=b"}, "b": {"old": "1=b", "new": None}}}


def test_present_passes_test_through_and_returns_exact_changes(opts):
    fake = FakeInstall(CHANGES)
    state.__salt__["conda_env.install"] = fake
    opts["test"] = True
    ret = state.present("jh", spec="salt://env.yml", lock_file="/l.yml")
    assert ret == {
        "name": "jh",
        "result": None,
        "changes": CHANGES,
        "comment": "Conda environment jh would be changed (conda: 1 added, 1 removed, 0 changed)",
    }
    assert fake.calls[0][1]["test"] is True and fake.calls[0][1]["saltenv"] == "base"
    opts["test"] = False
    ret = state.present("jh", spec="salt://env.yml")
    assert ret["result"] is True and ret["changes"] == CHANGES and fake.calls[1][1]["test"] is False


def test_present_noop_and_failure():
    state.__salt__["conda_env.install"] = FakeInstall({})
    ret = state.present("jh", spec="/env.yml")
    assert ret["result"] is True and ret["changes"] == {} and "desired state" in ret["comment"]
    state.__salt__["conda_env.install"] = FakeInstall(
        error=CommandExecutionError("conda_env: solving failed: nope")
    )
    ret = state.present("jh", spec="/env.yml")
    assert ret == {"name": "jh", "result": False, "changes": {}, "comment": "conda_env: solving failed: nope"}


def test_absent(opts):
    removed = {"value": True}
    state.__salt__["conda_env.resolve_prefix"] = lambda name, root=None: f"/c/envs/{name}"
    state.__salt__["conda_env.remove"] = lambda name, root=None, test=False: removed["value"]
    opts["test"] = True
    assert state.absent("x")["result"] is None
    opts["test"] = False
    assert state.absent("x") == {
        "name": "x",
        "result": True,
        "changes": {"removed": "/c/envs/x"},
        "comment": "Conda environment /c/envs/x removed",
    }
    removed["value"] = False
    assert state.absent("x")["changes"] == {}


def test_remove_refuses_non_environments(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(CommandExecutionError, match="not a conda environment"):
        mod.remove(str(tmp_path / "plain"))
    assert mod.remove(str(tmp_path / "nothing")) is False
    (tmp_path / "env/conda-meta").mkdir(parents=True)
    assert mod.remove(str(tmp_path / "env"), test=True) is True
    assert (tmp_path / "env").exists()
    assert mod.remove(str(tmp_path / "env")) is True
    assert not (tmp_path / "env").exists()


def test_prefix_lock_serializes_applies(tmp_path):
    prefix = str(tmp_path / "envs/jh")
    with mod._prefix_lock(prefix):
        with pytest.raises(CommandExecutionError, match="locked by another apply"):
            with mod._prefix_lock(prefix, timeout=0):
                pass
    with mod._prefix_lock(prefix, timeout=0):
        assert (tmp_path / "envs/.jh.conda_env-lock").exists()


# ---- trust: root never uses a lock/spec, or writes next to an environment, where others can ----

NOBODY = 65534


def _plant(tmp_path, mode=0o775):
    """A shared directory with a root-owned lock in it, writable by its group (mode)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    lock = shared / "jh.lock.yml"
    lock.write_text("version: 1\n")
    return shared, lock


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")
def test_lock_in_a_group_writable_directory_is_refused(tmp_path):
    shared, lock = _plant(tmp_path)
    with pytest.raises(CommandExecutionError) as err:
        mod.install(str(tmp_path / "env"), channels=["file:///nowhere"], dependencies=["alpha"],
                    lock_file=str(lock), test=True)
    text = str(err.value)
    assert f"conda_env: lock {lock} cannot be trusted by root: {shared} is writable by group" in text
    assert f"chmod go-w {shared}" in text and "keep it in the state tree (salt://...)" in text
    # a missing lock that would be recorded there: refused as well
    with pytest.raises(CommandExecutionError, match="writable by group"):
        mod.lock(channels=["file:///nowhere"], dependencies=["alpha"], lock_file=str(shared / "new.lock.yml"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")
def test_spec_of_another_account_is_refused(tmp_path):
    spec = tmp_path / "env.yml"
    spec.write_text("channels: [c]\ndependencies: [a]\n")
    assert mod.parse_spec(str(spec))["dependencies"] == ["a"]
    os.chown(spec, NOBODY, 0)
    with pytest.raises(CommandExecutionError, match=f"conda_env: spec {spec} .* owned by uid {NOBODY}"):
        mod.parse_spec(str(spec))


def test_lock_reached_through_a_symlink_into_a_writable_directory_is_refused(tmp_path):
    shared, lock = _plant(tmp_path, mode=0o777)
    trusted = tmp_path / "etc"
    trusted.mkdir()
    (trusted / "jh.lock.yml").symlink_to(lock)
    with pytest.raises(CommandExecutionError, match=f"reached through the symlink {trusted}/jh.lock.yml"):
        mod._lock_location(str(trusted / "jh.lock.yml"), "base")


def test_prefix_lock_refuses_a_planted_symlink(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    victim = tmp_path / "victim"
    (envs / ".jh.conda_env-lock").symlink_to(victim)
    with pytest.raises(CommandExecutionError, match="a symlink there is refused"):
        with mod._prefix_lock(str(envs / "jh"), timeout=0):
            pass
    assert not victim.exists(), "root created nothing through the link"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")
def test_prefix_lock_refuses_a_file_of_another_account_and_a_writable_parent(tmp_path):
    envs = tmp_path / "envs"
    envs.mkdir()
    planted = envs / ".jh.conda_env-lock"
    planted.write_text("")
    os.chown(planted, NOBODY, 0)
    with pytest.raises(CommandExecutionError, match="not a regular file with one link owned by uid 0"):
        with mod._prefix_lock(str(envs / "jh"), timeout=0):
            pass
    planted.unlink()
    os.chmod(envs, 0o1777)  # sticky /tmp-like: still no place for root's environments
    with pytest.raises(CommandExecutionError, match=f"directory of the environment {envs} .*chmod go-w {envs}"):
        with mod._prefix_lock(str(envs / "jh"), timeout=0):
            pass


def test_marker_write_replaces_a_planted_symlink_never_follows_it(tmp_path):
    prefix = tmp_path / "env"
    (prefix / "conda-meta").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (prefix / "conda-meta" / mod.MARKER).symlink_to(victim)
    mod._write_marker(str(prefix), {"spec_sha256": "x", "pip": []})
    assert victim.read_text() == "untouched\n"
    marker = prefix / "conda-meta" / mod.MARKER
    assert not marker.is_symlink() and mod._read_marker(str(prefix)) == {"spec_sha256": "x", "pip": []}
    assert oct(marker.stat().st_mode & 0o777) == "0o644"
