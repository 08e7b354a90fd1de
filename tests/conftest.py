"""Shared test configuration: repository paths and the Salt loader for functional tests."""

import logging
import pathlib

import pytest
import salt.config
import yaml  # noqa: F401  (import first: Salt sets up logging handlers on import)

REPO = pathlib.Path(__file__).resolve().parent.parent

# Salt's handlers otherwise write to closed files at interpreter exit.
for _handler in list(logging.root.handlers):
    logging.root.removeHandler(_handler)


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def session_markers_loader(salt_factories):
    """Let `requires_salt_modules` see the repository's own modules."""
    minion_id = "markers-loader"
    factory = salt_factories.salt_minion_daemon(
        minion_id, overrides={"module_dirs": [str(REPO / "_modules")], "utils_dirs": [str(REPO / "_utils")]}
    )
    return salt.loader.minion_mods(factory.config.copy())


@pytest.fixture(scope="session")
def minion_config(salt_factories):
    """Minion options that load this repository like bin/salt-call does (masterless)."""
    factory = salt_factories.salt_minion_daemon(
        "functional",
        overrides={
            "file_client": "local",
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(REPO / "pillar")]},
            "module_dirs": [str(REPO / "_modules")],
            "states_dirs": [str(REPO / "_states")],
            "utils_dirs": [str(REPO / "_utils")],
            "fileserver_list_cache_time": 0,
            # masterless: the default profile, as conf/minion sets it
            "jupyterhub_default_profile": yaml.safe_load((REPO / "conf/minion").read_text())[
                "jupyterhub_default_profile"
            ],
        },
    )
    return factory.config.copy()
