"""A custom module whose Python dependency is missing from Salt's Python says so in __virtual__
(with the command that installs it, also for packaged onedir Salt), not with a traceback."""

import pytest

from tests.conftest import REPO
from tests.unit.test_sge_support import load


@pytest.fixture
def conda_env(monkeypatch):
    module = load("conda_env_no_rattler", REPO / "_modules/conda_env.py")
    monkeypatch.setattr(module, "HAS_RATTLER", False)
    return module


def test_conda_env_without_py_rattler_names_it_and_how_to_install_it(conda_env):
    loaded, reason = conda_env.__virtual__()
    assert loaded is False
    assert "py-rattler" in reason and "salt-pip install py-rattler" in reason
