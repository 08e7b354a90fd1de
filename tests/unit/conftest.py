"""Make the repository's Salt modules importable under unambiguous names for unit tests."""

import importlib.util
import sys

from tests.conftest import REPO


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load("jupyterhub_module", REPO / "_modules/jupyterhub.py")
_load("jupyterhub_state", REPO / "_states/jupyterhub.py")
