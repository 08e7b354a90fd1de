"""The spawner package installs the way the role installs it (pip, offline, no build
dependencies: its backend is in its source) and registers the `jupyterhub.spawners` entry point
`sge`; the role's `unless` check tells an installed copy of this tree from any other."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

SOURCE = REPO / "salt/jupyterhub/files/sgespawner"


def pip_install(source, target):
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-input", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--force-reinstall", "--upgrade", "--target", str(target), str(source)],
        check=True, cwd="/", env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )


def python(code, target, *args):
    return subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + code,
                           *args], capture_output=True, text=True, cwd="/")


def installed(source, target):
    """The role's `unless`: backend.py --installed, run with `target` on the path."""
    code = ("import runpy; sys.argv = ['backend.py', '--installed']; "
            f"runpy.run_path({str(source / '_build/backend.py')!r}, run_name='__main__')")
    return python(code, target).returncode == 0


@pytest.fixture
def source(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_installs_offline_with_the_entry_point(source, tmp_path):
    target = tmp_path / "site"
    assert not installed(source, target)
    pip_install(source, target)
    result = python(
        "from importlib.metadata import entry_points, version; "
        "(ep,) = entry_points(group='jupyterhub.spawners', name='sge'); print(ep.value, version('sgespawner'))",
        target)
    assert result.stdout.split() == ["sgespawner.spawner:SGESpawner", "2.0.0"], result.stderr
    modules = sorted(p.name for p in (target / "sgespawner").glob("*.py"))
    assert modules == ["__init__.py", "api.py", "gridengine.py", "jobs.py", "options.py", "spawner.py", "tokenfile.py"]
    # jobs.py is the Salt module's job model (_utils/sgejobs.py), installed as a file of its own
    installed_jobs = target / "sgespawner/jobs.py"
    assert not installed_jobs.is_symlink()
    assert installed_jobs.read_bytes() == (REPO / "_utils/sgejobs.py").read_bytes()
    assert installed(source, target)
    assert not list(source.rglob("__pycache__")) and not (source / "build").exists()  # source left as it was


def test_a_changed_source_is_not_the_installed_one(source, tmp_path):
    target = tmp_path / "site"
    pip_install(source, target)
    options = source / "sgespawner/options.py"
    options.write_text(options.read_text() + "\n# changed\n")
    assert not installed(source, target)
    pip_install(source, target)  # what the role then does
    assert installed(source, target)


def test_the_plain_modules_need_no_jupyterhub(source, tmp_path):
    target = tmp_path / "site"
    pip_install(source, target)
    result = python("import sgespawner.options, sgespawner.tokenfile, sgespawner.gridengine, sgespawner; "
                    "print(sgespawner.__version__, 'jupyterhub' in sys.modules)", target)
    assert result.stdout.split() == ["2.0.0", "False"], result.stderr
