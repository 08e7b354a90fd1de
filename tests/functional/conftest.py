"""Functional tests: the real Salt loader over this repository, no daemons, nothing applied."""

import pytest
from saltfactories.utils.functional import Loaders


@pytest.fixture
def make_loaders(minion_config, tmp_path):
    """Loaders for a minion with extra grains (e.g. the pillar profile)."""
    created = []

    def make(**grains):
        opts = dict(minion_config)
        opts["cachedir"] = str(tmp_path / f"cache{len(created)}")
        loaders = Loaders(opts)
        loaders.grains.update(grains)
        loaders.opts["grains"] = loaders.grains
        loaders.refresh_pillar()
        created.append(loaders)
        return loaders

    yield make
    for loaders in created:
        loaders.reset_state()
