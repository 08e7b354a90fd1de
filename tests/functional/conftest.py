"""Functional tests: the real Salt loader over this repository, no daemons, nothing applied."""

import pytest
from saltfactories.utils.functional import Loaders


@pytest.fixture(scope="session")
def loaders_by_grains():
    """One set of Loaders per set of extra grains, for the whole session: building them (grains,
    module discovery, a sync, two pillar compiles) takes ~2 s, rendering a role with them ~0.5 s."""
    made = {}
    yield made
    for loaders in made.values():
        loaders.reset_state()


@pytest.fixture
def make_loaders(loaders_by_grains, minion_config, tmp_path_factory):
    """Loaders for a minion with extra grains (e.g. the pillar profile). Each test gets them as
    new: the modules' __context__ emptied and the pillar compiled again for these grains."""
    made = loaders_by_grains

    def make(**grains):
        key = tuple(sorted(grains.items()))
        loaders = made.get(key)
        if loaders is None:
            opts = dict(minion_config)
            opts["cachedir"] = str(tmp_path_factory.mktemp("loaders"))
            loaders = made[key] = Loaders(opts)
            loaders.grains.update(grains)
            loaders.opts["grains"] = loaders.grains
        loaders.context.clear()
        # recompile the pillar for these grains, in place: the loaded modules hold this dict
        # (cleared first: the compile would merge the old one in, and a test may have edited it)
        current = loaders.opts["pillar"]
        current.clear()
        pillar = loaders.pillar
        current.update(pillar)
        loaders.opts["pillar"] = current
        return loaders

    return make
