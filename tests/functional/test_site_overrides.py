"""Site overrides without forking: a site's own file under salt://jupyterhub_site/ (in any file
root) replaces the formula's form, job template, nginx site and jupyterhub_config.py additions.
The role's rendered file states are APPLIED here (real file.managed, real fileserver) into a
temporary directory, once with and once without a site file root."""

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import REPO

PILLAR = {"jupyterhub": {"cluster_net_cidr": "0.0.0.0/0"}}
OVERRIDES = {
    # state ID, its file (name under config_dir / nginx), site file
    "form": ("jupyterhub-templates-installed", "sgespawner-form.html", "templates/sgespawner-form.html"),
    "job": ("jupyterhub-templates-installed", "sgespawner-job.sh.j2", "templates/sgespawner-job.sh.j2"),
    "config": ("jupyterhub-config-site-installed", "jupyterhub_config_site.py", "jupyterhub_config_site.py"),
    "nginx": ("jupyterhub-nginx-site-installed", "jupyterhub.conf", "nginx-site.conf.j2"),
}


def make_loaders(minion_config, cachedir, site_root=None):
    roots = [str(REPO / "salt")] + ([str(site_root)] if site_root else [])
    opts = dict(minion_config, file_roots={"base": roots}, cachedir=str(cachedir))
    opts["grains"] = {"jupyterhub_profile": "dev"}
    return Loaders(opts)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def loaders(minion_config, tmp_path_factory, site):
    """A minion with a second file root, `site`, for a site's own files."""
    made = make_loaders(minion_config, tmp_path_factory.mktemp("cache"), site)
    yield made
    made.reset_state()


def file_state(loaders, state_id, filename):
    """The rendered arguments of the file.managed state that writes `filename`."""
    high = loaders.modules.state.show_sls("jupyterhub.config,jupyterhub.nginx", pillar=PILLAR)
    args = {}
    for item in high[state_id]["file"]:
        if isinstance(item, dict):
            args.update(item)
    for entry in args.pop("names", []):
        ((name, extra),) = entry.items()
        if name.endswith("/" + filename):
            args.update(name=name)
            for item in extra:
                args.update(item)
    assert args["name"].endswith("/" + filename), args
    return args


def apply(loaders, args, target):
    """file.managed with the role's sources and template settings, into `target`."""
    kwargs = {k: args[k] for k in ("source", "template", "context") if k in args}
    ret = loaders.states.file.managed(name=str(target), **kwargs)
    assert ret.result, ret
    return target.read_text()


@pytest.mark.parametrize("what", sorted(OVERRIDES))
def test_a_site_file_replaces_the_formula_file(loaders, site, tmp_path, what):
    state_id, filename, site_file = OVERRIDES[what]
    default = apply(loaders, file_state(loaders, state_id, filename), tmp_path / "default")
    path = site / "jupyterhub_site" / site_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# the site's own {{ 'file' }}\n")
    try:
        overridden = apply(loaders, file_state(loaders, state_id, filename), tmp_path / "overridden")
    finally:
        path.unlink()
    assert "the site's own" not in default and default.strip()
    assert overridden.startswith("# the site's own")
