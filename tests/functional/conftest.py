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
        # recompile the pillar for these grains, in place: the loaded modules hold this dict
        # (cleared first: the compile would merge the old one in)
        current = loaders.opts["pillar"]
        current.clear()
        pillar = loaders.pillar
        current.update(pillar)
        loaders.opts["pillar"] = current
        created.append(loaders)
        return loaders

    yield make
    for loaders in created:
        loaders.reset_state()
