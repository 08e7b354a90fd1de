"""
Hash-pinned locks: every lock the project installs pins each requirement with hashes, pip
refuses a file whose hash differs (a real pip into a real venv, offline from a local wheel
house), check-lock.py reads the hashed format, and requirements/lock.py keeps what is not a pin.
"""

import hashlib
import importlib.util
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.support.conda_channel import build_wheel

LOCKS = [
    "requirements/pip.lock",
    "requirements/build.lock",
    "requirements/salt.lock",
    "requirements/hubenv-tests.lock",
    "requirements/browser-tests.lock",
    "salt/jupyterhub/files/hub-requirements.lock",
    "salt/jupyterhub/files/hub-installer.lock",
]


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_lock = _module("salt/jupyterhub/files/check-lock.py", "check_lock")
lock_py = _module("requirements/lock.py", "lock_py")


def requirements(text):
    """Logical lines of a requirements file (continuations joined), comments dropped."""
    return [ln.strip() for ln in re.sub(r"\\\n", " ", text).splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_of_every_lock_has_a_sha256(lock):
    lines = requirements((REPO / lock).read_text())
    pins = [ln for ln in lines if not ln.startswith("-r ")]
    assert pins, lock
    for line in pins:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ ", line), f"{lock}: not a pin: {line[:80]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), f"{lock}: no hash: {line[:80]}"


def test_pip_refuses_a_tampered_file(tmp_path):
    house = tmp_path / "wheels"
    wheel = build_wheel(house, "lockdemo", "1.0")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = tmp_path / "demo.lock"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "--isolated", "install",
           "--no-index", "--find-links", str(house), "--require-hashes", "--no-deps", "-r", str(lock)]

    lock.write_text(f"lockdemo==1.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{'1' * 64}\n")
    bad = subprocess.run(pip, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE" in bad.stderr, bad.stderr
    assert f"Got        {digest}" in bad.stderr

    lock.write_text(f"lockdemo==1.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{digest}\n")
    good = subprocess.run(pip, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert subprocess.run([str(venv / "bin/python"), str(REPO / "salt/jupyterhub/files/check-lock.py"), str(lock)],
                          capture_output=True, text=True).returncode == 0


def test_check_lock_reads_hashed_pins(tmp_path, capsys):
    text = (
        "# header\n-r other.lock\n"
        "pytest==0.0.1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "PyYAML==6.0.4 --hash=sha256:cc\n"
    )
    assert check_lock.pins(text) == [("pytest", "0.0.1"), ("PyYAML", "6.0.4")]
    lock = tmp_path / "x.lock"
    lock.write_text(text)
    assert check_lock.main(str(lock)) == 1
    assert "pytest: want 0.0.1, have" in capsys.readouterr().out


def test_lock_py_rehashes_pins_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_py, "hashes", lambda name, version: [f"{name}-{version}-a", f"{name}-{version}-b"])
    lock = tmp_path / "x.lock"
    lock.write_text("# keep me\n-r ../base.lock\nfoo==1.0 \\\n    --hash=sha256:old\nBar_Baz==2.0; python_version >= '3'\n")
    lock_py.main([str(lock)])
    assert lock.read_text() == (
        "# keep me\n-r ../base.lock\n"
        "foo==1.0 \\\n    --hash=sha256:foo-1.0-a \\\n    --hash=sha256:foo-1.0-b\n"
        "Bar_Baz==2.0 ; python_version >= '3' \\\n    --hash=sha256:Bar_Baz-2.0-a \\\n    --hash=sha256:Bar_Baz-2.0-b\n"
    )
    assert lock_py._file_version("bar_baz-2.0-py3-none-any.whl", "Bar-Baz") == "2.0"
    assert lock_py._file_version("zc_lockfile-4.0.tar.gz", "zc.lockfile") == "4.0"
    assert lock_py._file_version("other-2.0.tar.gz", "bar-baz") is None


def test_the_hub_lock_leaves_out_what_it_says_and_lock_py_keeps_it_out(tmp_path, monkeypatch):
    """rfc3987-syntax (and lark, which only it needs) stay out of the hub lock, also when it is
    re-resolved: the resolver still wants them (jsonschema[format-nongpl] through jupyter-events)."""
    hub_lock = (REPO / "salt/jupyterhub/files/hub-requirements.lock").read_text()
    assert set(check_lock.left_out(hub_lock)) == {"rfc3987-syntax", "lark"}
    pinned = {lock_py.canonical(name) for name, _ in check_lock.pins(hub_lock)}
    assert {"jsonschema", "jupyter-events"} <= pinned
    assert not pinned & {"rfc3987-syntax", "lark"}

    monkeypatch.setattr(lock_py, "hashes", lambda name, version: [f"{name}-a"])
    monkeypatch.setattr(lock_py, "resolve", lambda infile: [("jsonschema", "4.26.0"), ("lark", "1.3.1"),
                                                            ("rfc3987_syntax", "1.1.0"), ("tornado", "6.5")])
    infile, lock = tmp_path / "x.in", tmp_path / "x.lock"
    infile.write_text("# left-out: rfc3987-syntax  (why)\njupyter-events\n")
    lock.write_text("# header\n# left-out: lark\n")
    lock_py.main([str(lock), "--from", str(infile)])
    assert check_lock.pins(lock.read_text()) == [("jsonschema", "4.26.0"), ("tornado", "6.5")]


def test_check_lock_finds_and_removes_a_left_out_package_in_a_real_venv(tmp_path):
    house = tmp_path / "wheels"
    build_wheel(house, "leftdemo", "1.0")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin/python")
    subprocess.run([python, "-m", "pip", "--isolated", "install", "--quiet", "--no-index", "--find-links",
                    str(house), "leftdemo==1.0"], check=True)
    lock = tmp_path / "x.lock"
    lock.write_text("# left-out: leftdemo  (slow to import)\n")
    checker = [python, str(REPO / "salt/jupyterhub/files/check-lock.py")]

    found = subprocess.run([*checker, "--left-out", str(lock)], capture_output=True, text=True)
    assert (found.returncode, found.stdout) == (1, "leftdemo: left out of the lock, installed 1.0\n")
    removed = subprocess.run([*checker, "--remove-left-out", str(lock)], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert subprocess.run([python, "-c", "import leftdemo"], capture_output=True).returncode != 0
    assert subprocess.run([*checker, "--left-out", str(lock)]).returncode == 0
