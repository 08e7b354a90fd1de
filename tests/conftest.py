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


# Parallel runs (bin/test: pytest-xdist, --dist loadfile --no-loadscope-reorder). A worker takes
# whole modules, so a module's hosts live in one worker, in the order the workers collected them:
# the integration modules first, longest first (seconds they took in CI on this 2-core machine; a
# module not listed counts as 0), then the unit and functional tests fill in at the end.
# Refresh: python -m tests.support.module_seconds <junit file of a bin/test run> (2026-12-07: a warm
# 3-worker run, 13:14; test_hub_role before its static shape ran only the checks the name can change).
MODULE_SECONDS = {
    "integration/test_hub_role.py": 440,
    "integration/test_master.py": 408,
    "integration/test_admin_guide.py": 296,
    "integration/test_spawn.py": 287,
    "integration/test_salt_ssh.py": 194,
    "integration/test_trust_boundaries.py": 156,
    "integration/test_demo.py": 141,
    "integration/test_browser.py": 97,
    "integration/test_sge_cell.py": 81,
    "integration/test_harness.py": 15,
}


class _LongestModulesFirst:
    @pytest.hookimpl(trylast=True)  # after pytest's own ordering by parametrized fixtures
    def pytest_collection_modifyitems(self, items):
        def seconds(item):
            return MODULE_SECONDS.get(pathlib.Path(item.path).relative_to(REPO / "tests").as_posix(), 0)
        items.sort(key=lambda item: -seconds(item))  # stable: the order within a module is kept


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # a pytest-xdist worker
        config.pluginmanager.register(_LongestModulesFirst(), "jhsalt-longest-modules-first")
