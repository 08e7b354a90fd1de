"""
conda_env execution + state modules through the REAL Salt loader (state.single), driving real
py-rattler solves and installs against a generated local ``file://`` channel of real conda
packages (no conda channel is reachable from these machines).
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from saltfactories.utils.functional import Loaders

from tests.support.conda_channel import LocalChannel, build_wheel

pytest.importorskip("rattler")


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def channel(tmp_path):
    chan = LocalChannel(tmp_path / "channel")
    chan.add("alpha", "1.0")
    chan.add("alpha", "2.0")
    chan.add("beta", "1.0", depends=["alpha >=2"])
    chan.add("gamma", "1.0")
    chan.add("delta", "1.0", depends=["gamma"])
    chan.add("broken", "1.0", depends=["nosuchthing"])
    return chan.index()


@pytest.fixture
def root(tmp_path):
    """conda root of one test (environments given by name live in <root>/envs)."""
    path = tmp_path / "conda"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def file_root(tmp_path_factory):
    return tmp_path_factory.mktemp("file_root")


@pytest.fixture(scope="module")
def loaders(minion_config, tmp_path_factory, file_root):
    """One real Salt loader for the module (building it is the slow part of a test)."""
    opts = dict(minion_config)
    opts["cachedir"] = str(tmp_path_factory.mktemp("cache"))
    opts["file_roots"] = {"base": [str(file_root)] + list(minion_config["file_roots"]["base"])}
    # module calls without root= (lock, drift, ...) keep their package cache in here
    opts["conda_env.root"] = str(tmp_path_factory.mktemp("conda-default-root"))
    loaders = Loaders(opts)
    yield loaders
    loaders.reset_state()


@pytest.fixture
def present(loaders, root):
    """conda_env.present through state.single, conda root = this test's root."""

    def run(name, **kwargs):
        kwargs.setdefault("root", str(root))
        return loaders.states.conda_env.present(name=name, **kwargs)

    return run


def write_spec(path, channel, deps, pip=None):
    data = {"name": "ignored", "channels": [channel.url], "dependencies": list(deps)}
    if pip is not None:
        data["dependencies"].append({"pip": list(pip)})
    pathlib.Path(path).write_text(yaml.safe_dump(data))
    return str(path)


def listing(loaders, prefix):
    return loaders.modules.conda_env.list(str(prefix))


def tree(prefix):
    """Every file of a prefix with its content (to prove 'untouched')."""
    out = {}
    for dirpath, _, files in os.walk(prefix):
        for fname in files:
            path = os.path.join(dirpath, fname)
            with open(path, "rb") as fh_:
                out[os.path.relpath(path, prefix)] = fh_.read()
    return out


# ---- tests ------------------------------------------------------------------------------------


def test_create_noop_change_and_test_prediction(loaders, present, channel, tmp_path, root):
    spec = write_spec(tmp_path / "env.yml", channel, ["beta", "gamma"])
    ret = present("hub", spec=spec)
    assert ret.result is True, ret.comment
    assert ret.changes == {
        "conda": {
            "alpha": {"old": None, "new": "2.0=h0_0"},
            "beta": {"old": None, "new": "1.0=h0_0"},
            "gamma": {"old": None, "new": "1.0=h0_0"},
        }
    }
    prefix = root / "envs" / "hub"
    assert (prefix / "share/beta/VERSION").read_text() == "beta 1.0 h0_0\n"
    assert (prefix / "conda-meta/alpha-2.0-h0_0.json").is_file()

    again = present("hub", spec=spec)
    assert again.result is True and again.changes == {}, again.comment
    assert "desired state" in again.comment

    # spec change: drop beta, downgrade alpha, keep gamma, add delta (already-satisfied dep)
    write_spec(spec, channel, ["alpha ==1.0", "delta"])
    expected = {
        "conda": {
            "alpha": {"old": "2.0=h0_0", "new": "1.0=h0_0"},
            "beta": {"old": "1.0=h0_0", "new": None},
            "delta": {"old": None, "new": "1.0=h0_0"},
        }
    }
    before = tree(prefix)
    predicted = present("hub", spec=spec, test=True)
    assert predicted.result is None
    assert predicted.changes == expected
    assert tree(prefix) == before, "test=True touched the environment"

    applied = present("hub", spec=spec)
    assert applied.result is True, applied.comment
    assert applied.changes == expected
    assert listing(loaders, prefix) == {"alpha": "1.0=h0_0", "delta": "1.0=h0_0", "gamma": "1.0=h0_0"}
    assert not (prefix / "share/beta").exists()
    assert (prefix / "share/alpha/VERSION").read_text() == "alpha 1.0 h0_0\n"
    assert present("hub", spec=spec).changes == {}


def test_inline_spec_and_salt_url(loaders, present, channel, file_root, root):
    ret = present("inline", channels=[channel.url], dependencies=["gamma"])
    assert ret.result is True, ret.comment
    assert listing(loaders, root / "envs/inline") == {"gamma": "1.0=h0_0"}

    (file_root / "envs").mkdir(exist_ok=True)
    write_spec(file_root / "envs/salty.yml", channel, ["delta"])
    ret = present(str(root / "abs-prefix"), spec="salt://envs/salty.yml")
    assert ret.result is True, ret.comment
    assert set(ret.changes["conda"]) == {"delta", "gamma"}
    assert listing(loaders, root / "abs-prefix") == {"delta": "1.0=h0_0", "gamma": "1.0=h0_0"}


@pytest.mark.parametrize(
    "deps,message",
    [
        (["alpha >=9"], "alpha >=9"),
        (["nosuchpackage"], "nosuchpackage"),
        (["broken"], "nosuchthing"),
        (["beta", "alpha ==1.0"], "alpha"),
    ],
    ids=["unsatisfiable-pin", "unknown-package", "missing-dependency", "conflict"],
)
def test_bad_spec_fails_and_leaves_env_untouched(loaders, present, channel, tmp_path, root, deps, message):
    spec = write_spec(tmp_path / "env.yml", channel, ["beta"])
    assert present("hub", spec=spec).result is True
    prefix = root / "envs/hub"
    before = tree(prefix)
    write_spec(spec, channel, deps)
    for test in (True, False):
        ret = present("hub", spec=spec, test=test)
        assert ret.result is False
        assert "solving" in ret.comment and message in ret.comment, ret.comment
        assert ret.changes == {}
    assert tree(prefix) == before


def test_unreachable_channel_and_malformed_yaml_fail(loaders, present, channel, tmp_path, root):
    spec = write_spec(tmp_path / "env.yml", channel, ["gamma"])
    assert present("hub", spec=spec).result is True
    before = tree(root / "envs/hub")

    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump({"channels": [(tmp_path / "nochannel").as_uri()], "dependencies": ["gamma"]})
    )
    ret = present("hub", spec=str(bad))
    assert ret.result is False and "nochannel" in ret.comment, ret.comment

    bad.write_text("channels: [a\ndependencies: - x: : :\n")
    ret = present("hub", spec=str(bad))
    assert ret.result is False and "malformed YAML" in ret.comment, ret.comment

    ret = present("hub", spec=str(tmp_path / "missing.yml"))
    assert ret.result is False and "not found" in ret.comment
    assert tree(root / "envs/hub") == before


def test_lock_keeps_two_prefixes_identical(loaders, present, channel, tmp_path):
    """Hub prefix and a 'shared filesystem' prefix from the same spec + lock, channel moving on."""
    spec = write_spec(tmp_path / "jupyterhub.yml", channel, ["beta", "gamma"])
    lock = tmp_path / "locks/jupyterhub.lock.yml"
    hub = tmp_path / "hub/envs/jupyterhub"
    shared = tmp_path / "shared/envs/jupyterhub"

    ret = present(str(hub), spec=spec, lock_file=str(lock))
    assert ret.result is True, ret.comment
    assert ret.changes["lock"] == {"old": None, "new": str(lock)}
    recorded = yaml.safe_load(lock.read_text())
    assert [p["name"] for p in recorded["packages"]] == ["alpha", "beta", "gamma"]
    assert all(len(p["sha256"]) == 64 for p in recorded["packages"])

    # the channel moves on: newer builds that an unlocked solve would pick
    channel.add("alpha", "2.1")
    channel.add("gamma", "1.0", build_number=1)
    channel.index()
    unlocked = present(str(tmp_path / "unlocked"), spec=spec)
    assert unlocked.changes["conda"]["alpha"]["new"] == "2.1=h0_0"

    ret = present(str(shared), spec=spec, lock_file=str(lock))
    assert ret.result is True, ret.comment
    assert "lock" not in ret.changes
    hub_list = loaders.modules.conda_env.list(str(hub))
    assert hub_list == loaders.modules.conda_env.list(str(shared))
    assert hub_list == {"alpha": "2.0=h0_0", "beta": "1.0=h0_0", "gamma": "1.0=h0_0"}
    # byte-identical payload and identical package records (same builds, same sha256)
    assert {k: v for k, v in tree(hub).items() if not k.startswith("conda-meta")} == {
        k: v for k, v in tree(shared).items() if not k.startswith("conda-meta")
    }
    assert sorted(os.listdir(hub / "conda-meta")) == sorted(os.listdir(shared / "conda-meta"))
    assert present(str(hub), spec=spec, lock_file=str(lock)).changes == {}

    # spec change: the local lock is re-recorded, unchanged packages keep their locked builds
    write_spec(spec, channel, ["beta", "gamma", "delta"])
    ret = present(str(hub), spec=spec, lock_file=str(lock))
    assert ret.changes["conda"] == {"delta": {"old": None, "new": "1.0=h0_0"}}
    assert ret.changes["lock"]["old"] == "stale"
    ret = present(str(shared), spec=spec, lock_file=str(lock))
    assert ret.changes == {"conda": {"delta": {"old": None, "new": "1.0=h0_0"}}}
    assert loaders.modules.conda_env.list(str(hub)) == loaders.modules.conda_env.list(str(shared))


def test_conda_env_lock_and_salt_url_lock(loaders, present, channel, tmp_path, file_root):
    spec = write_spec(tmp_path / "env.yml", channel, ["delta"])
    (file_root / "locks").mkdir(exist_ok=True)
    lock = file_root / "locks/env.lock.yml"
    out = loaders.modules.conda_env.lock(spec, str(lock))
    assert out["packages"] == {"delta": "1.0=h0_0", "gamma": "1.0=h0_0"}
    ret = present(str(tmp_path / "p"), lock_file="salt://locks/env.lock.yml")
    assert ret.result is True, ret.comment
    assert set(ret.changes) == {"conda"}

    # a salt:// lock is never re-recorded: a spec that changed makes the state fail
    write_spec(spec, channel, ["delta", "alpha"])
    ret = present(str(tmp_path / "p"), spec=spec, lock_file="salt://locks/env.lock.yml")
    assert ret.result is False and "different spec" in ret.comment
    ret = present(str(tmp_path / "p"), spec=spec, lock_file="salt://locks/missing.yml")
    assert ret.result is False and "not found" in ret.comment


def test_drift_detected_and_repaired(loaders, present, channel, tmp_path):
    spec = write_spec(tmp_path / "env.yml", channel, ["beta", "gamma"])
    lock = str(tmp_path / "env.lock.yml")
    prefix = tmp_path / "env"
    assert present(str(prefix), spec=spec, lock_file=lock).result is True
    drift = loaders.modules.conda_env.drift(str(prefix), spec=spec, lock_file=lock)
    assert drift["in_sync"] is True

    # manual change: someone installs alpha 1.0 by hand and adds an extra package
    (prefix / "conda-meta/alpha-2.0-h0_0.json").rename(prefix / "conda-meta/alpha-1.0-h0_0.json.bak")
    import asyncio  # pylint: disable=import-outside-toplevel

    import rattler  # pylint: disable=import-outside-toplevel

    recs = asyncio.run(
        rattler.solve([channel.url], ["alpha ==1.0", "delta"], platforms=["linux-64", "noarch"])
    )
    asyncio.run(
        rattler.install(recs, target_prefix=str(prefix), show_progress=False, cache_dir=str(tmp_path / "pk"))
    )
    drift = loaders.modules.conda_env.drift(str(prefix), lock_file=lock)
    assert drift["in_sync"] is False
    assert drift["conda"] == {
        "alpha": {"old": "1.0=h0_0", "new": "2.0=h0_0"},
        "beta": {"old": None, "new": "1.0=h0_0"},
        "delta": {"old": "1.0=h0_0", "new": None},
    }

    ret = present(str(prefix), spec=spec, lock_file=lock)
    assert ret.changes == {"conda": drift["conda"]}
    assert loaders.modules.conda_env.drift(str(prefix), lock_file=lock)["in_sync"] is True


def test_update_report_frozen(loaders, present, channel, tmp_path):
    spec = write_spec(tmp_path / "env.yml", channel, ["gamma"])
    lock = str(tmp_path / "env.lock.yml")
    prefix = str(tmp_path / "env")
    assert present(prefix, spec=spec, lock_file=lock).result is True
    report = loaders.modules.conda_env.update_report(prefix, spec=spec, lock_file=lock)
    assert report["result"] is True and report["changes"] == {} and report["applied"] is False

    # the spec changed but nobody reviewed/re-recorded the lock: the timer refuses to solve
    write_spec(spec, channel, ["gamma", "alpha"])
    report = loaders.modules.conda_env.update_report(prefix, spec=spec, lock_file=lock, apply=True)
    assert report["result"] is False and "frozen" in report["comment"]
    assert loaders.modules.conda_env.list(prefix) == {"gamma": "1.0=h0_0"}

    # reviewed lock (recorded by conda_env.lock) -> reported, applied only when allowed
    loaders.modules.conda_env.lock(spec, lock)
    report = loaders.modules.conda_env.update_report(prefix, spec=spec, lock_file=lock)
    assert report["result"] is True and report["applied"] is False
    assert report["changes"] == {"conda": {"alpha": {"old": None, "new": "2.0=h0_0"}}}
    assert loaders.modules.conda_env.list(prefix) == {"gamma": "1.0=h0_0"}
    report = loaders.modules.conda_env.update_report(prefix, spec=spec, lock_file=lock, apply=True)
    assert report["result"] is True and report["applied"] is True
    assert loaders.modules.conda_env.list(prefix) == {"alpha": "2.0=h0_0", "gamma": "1.0=h0_0"}


def test_noarch_python_package(loaders, present, channel, tmp_path):
    """
    conda-forge's jupyterhub is ``noarch: python``: linking it needs the env's python record,
    also in the throw-away staging prefix that pre-fetches new packages. (The generated
    ``python`` package is a record with no interpreter: enough for rattler to place the files.)
    """
    channel.add("python", "3.11.9", files={"lib/python3.11/os.py": "# stub\n"})
    channel.add(
        "pyfoo", "1.0", noarch="python", depends=["python >=3.8"], files={"site-packages/pyfoo.py": "X = 1\n"}
    )
    channel.add(
        "pyfoo", "1.1", noarch="python", depends=["python >=3.8"], files={"site-packages/pyfoo.py": "X = 2\n"}
    )
    channel.index()
    prefix = tmp_path / "pyenv"
    ret = present(str(prefix), channels=[channel.url], dependencies=["pyfoo ==1.0", "python 3.11.*"])
    assert ret.result is True, ret.comment
    assert (prefix / "lib/python3.11/site-packages/pyfoo.py").read_text() == "X = 1\n"
    # upgrading only the noarch package: the staging prefix needs python's record too
    ret = present(str(prefix), channels=[channel.url], dependencies=["pyfoo ==1.1", "python 3.11.*"])
    assert ret.result is True, ret.comment
    assert ret.changes == {"conda": {"pyfoo": {"old": "1.0=h0_0", "new": "1.1=h0_0"}}}
    assert (prefix / "lib/python3.11/site-packages/pyfoo.py").read_text() == "X = 2\n"


def test_absent(loaders, present, channel, root):
    assert present("gone", channels=[channel.url], dependencies=["gamma"]).result is True
    prefix = root / "envs/gone"
    ret = loaders.states.conda_env.absent(root=str(root), name="gone", test=True)
    assert ret.result is None and ret.changes == {"removed": str(prefix)}
    assert prefix.is_dir()
    ret = loaders.states.conda_env.absent(root=str(root), name="gone")
    assert ret.result is True and ret.changes == {"removed": str(prefix)}
    assert not prefix.exists()
    ret = loaders.states.conda_env.absent(root=str(root), name="gone")
    assert ret.result is True and ret.changes == {}
    (root / "envs/notconda").mkdir()
    ret = loaders.states.conda_env.absent(root=str(root), name="notconda")
    assert ret.result is False and "not a conda environment" in ret.comment


# ---- pip section ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv_python_template(tmp_path_factory):
    """
    A generated channel has no ``python`` conda package (a real one cannot be built here), so the
    pip tests give the prefix a real interpreter the honest way: ``python -m venv`` into the
    prefix (bin/python, lib/pythonX.Y/site-packages, pip), made once and copied per test.
    """
    path = tmp_path_factory.mktemp("venv") / "template"
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(path)], check=True)
    return path


@pytest.fixture
def wheelhouse(tmp_path):
    path = tmp_path / "wheels"
    build_wheel(path, "tinywheel", "1.0")
    build_wheel(path, "tinywheel", "2.0")
    build_wheel(path, "otherwheel", "0.5")
    return path


def test_pip_section_from_local_wheelhouse(
    loaders, present, channel, tmp_path, venv_python_template, wheelhouse
):
    prefix = tmp_path / "pyenv"
    shutil.copytree(venv_python_template, prefix, symlinks=True)
    python = prefix / "bin/python"
    pip_args = ["--no-index", "--find-links", str(wheelhouse)]
    spec = write_spec(tmp_path / "env.yml", channel, ["gamma"], pip=["tinywheel==1.0", "otherwheel"])

    ret = present(str(prefix), spec=spec, pip_args=pip_args)
    assert ret.result is True, ret.comment
    assert ret.changes == {
        "conda": {"gamma": {"old": None, "new": "1.0=h0_0"}},
        "pip": {
            "otherwheel": {"old": None, "new": "0.5"},
            "tinywheel": {"old": None, "new": "1.0"},
        },
    }
    out = subprocess.run(
        [str(python), "-c", "import tinywheel, otherwheel; print(tinywheel.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "1.0"
    assert present(str(prefix), spec=spec, pip_args=pip_args).changes == {}

    # upgrade one, drop the other: predicted exactly, then applied
    write_spec(spec, channel, ["gamma"], pip=["tinywheel==2.0"])
    expected = {
        "pip": {
            "otherwheel": {"old": "0.5", "new": None},
            "tinywheel": {"old": "1.0", "new": "2.0"},
        }
    }
    predicted = present(str(prefix), spec=spec, pip_args=pip_args, test=True)
    assert predicted.result is None and predicted.changes == expected
    applied = present(str(prefix), spec=spec, pip_args=pip_args)
    assert applied.result is True and applied.changes == expected, applied.comment
    out = subprocess.run(
        [str(python), "-c", "import tinywheel; print(tinywheel.__version__)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "2.0"

    # a requirement pip cannot satisfy fails with pip's message, the env stays as it was
    write_spec(spec, channel, ["gamma"], pip=["tinywheel==9.9"])
    ret = present(str(prefix), spec=spec, pip_args=pip_args)
    assert ret.result is False and "tinywheel==9.9" in ret.comment, ret.comment


def test_pip_section_without_python_fails(loaders, present, channel, tmp_path):
    spec = write_spec(tmp_path / "env.yml", channel, ["gamma"], pip=["tinywheel"])
    ret = present(str(tmp_path / "nopy"), spec=spec)
    assert ret.result is False and "no python" in ret.comment
    assert not (tmp_path / "nopy").exists()
