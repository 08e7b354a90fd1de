"""Roles by data (salt/top.sls, pillar/top.sls) with the real Salt loader: a host's pillar file
hosts/<minion id>.sls gives it roles and a profile; the masterless profile is the default only where
conf/minion says so (a salt-master's minions get nothing they were not given)."""

import shutil

import pytest
from saltfactories.utils.functional import Loaders


@pytest.fixture
def top_of(minion_config, repo, tmp_path):
    """top_of(host_file=None, masterless=True, **grains) -> (state top's sls list, pillar)."""
    roots = tmp_path / "pillar"
    shutil.copytree(repo / "pillar", roots)
    (roots / "site.sls").unlink(missing_ok=True)
    created = []

    def top(host_file=None, masterless=True, **grains):
        if host_file is not None:
            (roots / "hosts").mkdir(exist_ok=True)
            (roots / "hosts" / f"{minion_config['id']}.sls").write_text(host_file)
        opts = dict(minion_config, pillar_roots={"base": [str(roots)]},
                    cachedir=str(tmp_path / f"cache{len(created)}"))
        if not masterless:  # as a salt-master compiles it: no default profile
            opts.pop("jupyterhub_default_profile")
        opts["grains"] = dict(opts.get("grains") or {}, **grains)
        loaders = Loaders(opts)
        created.append(loaders)
        loaders.grains.update(grains)
        pillar = loaders.pillar
        loaders.opts["pillar"] = pillar
        return loaders.modules.state.show_top(), pillar

    yield top
    for loaders in created:
        loaders.reset_state()


def test_masterless_profiles_keep_their_roles(top_of):
    assert top_of()[0]["base"] == ["jupyterhub.sge.cell", "jupyterhub.sge.local_submit_host", "jupyterhub"]
    assert top_of(jupyterhub_profile="prod")[0]["base"] == ["jupyterhub"]


def test_a_minion_of_a_master_gets_no_role_and_no_profile_unless_its_pillar_says_so(top_of):
    top, pillar = top_of(masterless=False)
    assert top == {} and "jupyterhub" not in pillar and "roles" not in pillar


def test_a_host_file_gives_roles_and_a_profile(top_of):
    host = "include:\n  - jupyterhub.dev\nroles: [jupyterhub-hub]\njupyterhub:\n  jh_whitelist_users: [alice]\n"
    top, pillar = top_of(host, masterless=False)
    assert top["base"] == ["jupyterhub"]
    assert pillar["jupyterhub"]["is_devel_env"] is True  # the profile's
    assert pillar["jupyterhub"]["jh_whitelist_users"] == ["alice"]  # the host file wins
    top, _ = top_of("roles: [sge-cell, sge-admin]\n", masterless=False)
    assert top["base"] == ["jupyterhub.sge.cell", "jupyterhub.sge.submit_hosts"]
    top, _ = top_of("roles: [cluster-env]\n", masterless=False)
    assert top["base"] == ["jupyterhub.cluster_env"]


def test_pillar_roles_override_the_masterless_profile(top_of):
    top, _ = top_of("roles: [sge-admin]\n")
    assert top["base"] == ["jupyterhub.sge.submit_hosts"]


@pytest.mark.parametrize("roles, message", [
    ("[jupyterhub-hubb]", 'unknown role "jupyterhub-hubb"'),
    ("jupyterhub-hub", "a list of roles"),
])
def test_a_bad_role_is_refused_by_name(top_of, roles, message):
    top, _ = top_of(f"roles: {roles}\n", masterless=False)
    assert message in str(top)
