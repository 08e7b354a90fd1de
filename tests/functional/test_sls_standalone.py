"""Every SLS of the formula renders on its own (`state.apply jupyterhub.nginx` alone) and every
requisite in it names a state that is part of that render, for each hub env provider: Salt looks
requisites up by (state module, ID or name), by a bare ID, or by `sls:`, exactly as checked here.
A requisite naming a state of the wrong module (`cmd: jupyterhub-python-env` when the conda
provider makes it a `conda_env` state) or an SLS the file does not include fails here."""

import pathlib

import pytest
from saltfactories.utils.functional import Loaders

from tests.conftest import REPO

ROOT = REPO / "salt"
SLS = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".init")
    for path in (ROOT / "jupyterhub").rglob("*.sls")
)
PROVIDERS = {
    "venv": {},
    "conda": {"env_provider": "conda", "conda": {"packages": ["jupyterhub"]}},
}
REQUISITES = {
    base + suffix
    for base in ("require", "watch", "onchanges", "onfail", "prereq", "listen", "use")
    for suffix in ("", "_in", "_any")
}


def unresolved(high):
    """The requisites of rendered high data that name no state of it: ["ID: key: target"]."""
    ids, by_module, sls_names = set(high), set(), set()
    for state_id, body in high.items():
        sls_names.add(body.get("__sls__"))
        for module, args in body.items():
            if module.startswith("__"):
                continue
            module = module.split(".")[0]
            by_module.add((module, state_id))
            for arg in args:
                if isinstance(arg, dict) and "name" in arg:
                    by_module.add((module, arg["name"]))
                if isinstance(arg, dict) and "names" in arg:
                    for name in arg["names"]:
                        by_module.add((module, next(iter(name)) if isinstance(name, dict) else name))
    names = {name for _, name in by_module}
    missing = []
    for state_id, body in high.items():
        for module, args in body.items():
            if module.startswith("__"):
                continue
            for arg in args:
                if not isinstance(arg, dict):
                    continue
                for key, targets in arg.items():
                    if key not in REQUISITES:
                        continue
                    for target in targets:
                        if isinstance(target, str):
                            found = target in ids or target in names
                        else:
                            ((kind, value),) = target.items()
                            found = (value in sls_names if kind == "sls" else
                                     value in ids if kind == "id" else (kind, value) in by_module)
                        if not found:
                            missing.append(f"{state_id}: {key}: {target}")
    return missing


@pytest.fixture(scope="module")
def loaders(minion_config, tmp_path_factory):
    opts = dict(minion_config, cachedir=str(tmp_path_factory.mktemp("cache")))
    opts["grains"] = {"jupyterhub_profile": "dev"}
    made = Loaders(opts)
    yield made
    made.reset_state()


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("sls", SLS)
def test_each_sls_renders_alone_with_its_requisites(loaders, sls, provider):
    pillar = {"jupyterhub": {"cluster_net_cidr": "0.0.0.0/0", **PROVIDERS[provider]}}
    high = loaders.modules.state.show_sls(sls, pillar=pillar)
    assert isinstance(high, dict), high
    assert unresolved(high) == []


def test_the_checker_sees_a_requisite_of_the_wrong_module():
    high = {
        "jupyterhub-python-env": {"conda_env": ["present"], "__sls__": "jupyterhub.env.conda"},
        "jupyterhub-config-loads": {"cmd": ["run", {"require": [{"cmd": "jupyterhub-python-env"}]}],
                                    "__sls__": "jupyterhub.config"},
    }
    assert unresolved(high) == ["jupyterhub-config-loads: require: {'cmd': 'jupyterhub-python-env'}"]
    high["jupyterhub-config-loads"]["cmd"][1]["require"] = ["jupyterhub-python-env", {"sls": "jupyterhub.env.conda"}]
    assert unresolved(high) == []


def test_every_sls_is_checked():
    assert {"jupyterhub", "jupyterhub.nginx", "jupyterhub.service", "jupyterhub.env.conda"} <= set(SLS)
    assert pathlib.Path(ROOT / "jupyterhub/nginx.sls").exists()
