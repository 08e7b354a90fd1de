"""
The conda SLS (jupyterhub.conda, jupyterhub.env.conda, jupyterhub.cluster_env) and the
env-update script, through the real Salt loader: rendered for several pillars, and APPLIED for
real against a generated local channel (hub env + cluster env from one spec and one lock), then
the rendered update script run with a real salt-call.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from saltfactories.utils.functional import Loaders

from tests.conftest import REPO
from tests.support.conda_channel import LocalChannel

pytest.importorskip("rattler")


def make_loaders(minion_config, tmp_path, pillar):
    """Loaders whose pillar is `pillar` (written to a pillar root, also used by salt-call)."""
    # any address of this machine will do for the hub API (the default 10.0.0.0/8 may not exist)
    pillar.setdefault("jupyterhub", {}).setdefault("cluster_net_cidr", "0.0.0.0/0")
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir(parents=True, exist_ok=True)
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - test\n")
    (pillar_root / "test.sls").write_text(yaml.safe_dump(pillar))
    opts = dict(minion_config)
    opts["cachedir"] = str(tmp_path / "cache")
    opts["pillar_roots"] = {"base": [str(pillar_root)]}
    opts["grains"] = {"jupyterhub_profile": "dev"}
    loaders = Loaders(opts)
    return loaders


@pytest.fixture
def loaders_for(minion_config, tmp_path):
    made = []

    def make(pillar):
        loaders = make_loaders(minion_config, tmp_path / f"l{len(made)}", pillar)
        made.append(loaders)
        return loaders

    yield make
    for loaders in made:
        loaders.reset_state()


def args_of(rendered, state_id):
    (mod,) = [k for k in rendered[state_id] if not k.startswith("__")]
    out = {}
    for item in rendered[state_id][mod]:
        if isinstance(item, dict):
            out.update(item)
    return mod, out


def test_provider_conda_renders_a_locked_conda_env(loaders_for, tmp_path):
    loaders = loaders_for({"jupyterhub": {"env_provider": "conda"}})
    rendered = loaders.modules.state.show_sls("jupyterhub.env")
    assert isinstance(rendered, dict), rendered
    fun, args = args_of(rendered, "jupyterhub-python-env")
    assert fun == "conda_env"
    assert args["name"] == "/opt/conda/envs/jupyterhub"
    assert args["dependencies"][0] == "python=3.11"
    assert "jupyterhub=6.1" in args["dependencies"]
    assert args["channels"] == ["conda-forge"]
    assert args["lock_file"] == "/opt/conda/locks/jupyterhub.lock.yml"
    assert args["frozen"] is False
    fun, base = args_of(rendered, "jupyterhub-conda-base-env")
    assert fun == "conda_env" and base["name"] == "/opt/conda"
    assert base["dependencies"] == ["python=3.11", "conda", "mamba"]
    fun, condarc = args_of(rendered, "jupyterhub-conda-condarc-managed")
    assert condarc["name"] == "/opt/conda/.condarc"
    assert condarc["dataset"]["channel_priority"] == "strict"


def test_cluster_env_shares_spec_and_lock(loaders_for, tmp_path):
    pillar = {
        "jupyterhub": {
            "env_provider": "conda",
            "conda": {"cluster_env": {"prefix": "/shared/conda/envs/jupyterhub"}, "pip": ["x==1"]},
        }
    }
    loaders = loaders_for(pillar)
    hub = args_of(loaders.modules.state.show_sls("jupyterhub.env"), "jupyterhub-python-env")[1]
    cluster = args_of(loaders.modules.state.show_sls("jupyterhub.cluster_env"), "jupyterhub-cluster-env")[1]
    assert cluster["name"] == "/shared/conda/envs/jupyterhub"
    assert cluster["pkgs_dir"] == "/shared/conda/envs/pkgs"
    assert hub["lock_file"] == cluster["lock_file"] == "/shared/conda/envs/jupyterhub.lock.yml"
    for key in ("channels", "dependencies", "pip", "pip_args", "frozen"):
        assert hub[key] == cluster[key], key

    # no prefix: applying the cluster env fails with a clear message
    loaders = loaders_for({"jupyterhub": {}})
    fun, args = args_of(loaders.modules.state.show_sls("jupyterhub.cluster_env"), "jupyterhub-cluster-env")
    assert fun == "test" and "conda:cluster_env:prefix" in args["name"]


def test_miniconda_installer_is_checksum_checked(loaders_for, tmp_path):
    loaders = loaders_for(
        {
            "jupyterhub": {
                "env_provider": "conda",
                "miniconda_vers": "py311_24.1.2-0",
                "miniconda_dl_md5": "ab" * 16,
            }
        }
    )
    rendered = loaders.modules.state.show_sls("jupyterhub.conda")
    _, dl = args_of(rendered, "jupyterhub-conda-installer-downloaded")
    assert dl["source"].endswith("/Miniconda3-py311_24.1.2-0-Linux-x86_64.sh")
    assert dl["source_hash"] == "md5=" + "ab" * 16
    fun, run = args_of(rendered, "jupyterhub-conda-base-env")
    assert fun == "cmd" and run["creates"] == "/opt/conda/bin/conda"


def test_spec_file_and_bad_pillar(loaders_for, tmp_path):
    loaders = loaders_for(
        {
            "jupyterhub": {
                "env_provider": "conda",
                "conda": {"env_spec": "salt://envs/jh.yml", "env_lock": "salt://envs/jh.lock.yml"},
            }
        }
    )
    _, args = args_of(loaders.modules.state.show_sls("jupyterhub.env"), "jupyterhub-python-env")
    assert args["spec"] == "salt://envs/jh.yml" and "dependencies" not in args
    assert args["lock_file"] == "salt://envs/jh.lock.yml"
    loaders = loaders_for({"jupyterhub": {"conda": {"packages": "jupyterhub", "nosuchkey": 1}}})
    out = loaders.modules.state.show_sls("jupyterhub.env")
    text = json.dumps(out)
    assert "conda:packages" in text and "conda:nosuchkey" in text


# ---- applied for real ---------------------------------------------------------------------------


@pytest.fixture
def channel(tmp_path):
    chan = LocalChannel(tmp_path / "channel")
    # a `python` record (no interpreter: none can be built here) so that python=<py_vers> solves
    chan.add("python", "3.11.9", files={"lib/python3.11/os.py": "# stub\n"})
    chan.add("alpha", "1.0")
    chan.add("alpha", "2.0")
    chan.add("beta", "1.0", depends=["alpha"])
    return chan.index()


def test_apply_hub_and_cluster_env_then_update_script(loaders_for, tmp_path, channel):
    root = tmp_path / "conda"
    shared = tmp_path / "shared/envs/jupyterhub"
    pillar = {
        "jupyterhub": {
            "env_provider": "conda",
            "conda_root": str(root),
            "conda": {
                "channels": [channel.url],
                "packages": ["beta"],
                "base_packages": [],
                "cluster_env": {"prefix": str(shared)},
            },
        }
    }
    loaders = loaders_for(pillar)
    ret = loaders.modules.state.sls("jupyterhub.env.conda")
    assert not ret.failed, ret
    hub = root / "envs/jupyterhub"
    assert ret["jupyterhub-python-env"].changes["conda"]["alpha"]["new"] == "2.0=h0_0"
    lock = pathlib.Path(str(shared) + ".lock.yml")
    assert lock.is_file()

    # the channel moves on before the cluster env is applied: the lock keeps it identical
    channel.add("alpha", "3.0")
    channel.index()
    ret = loaders.modules.state.sls("jupyterhub.cluster_env")
    assert not ret.failed, ret
    listing = loaders.modules.conda_env.list
    assert listing(str(hub)) == listing(str(shared))
    assert listing(str(shared))["alpha"] == "2.0=h0_0"

    assert all(not r.changes for r in loaders.modules.state.sls("jupyterhub.env.conda"))
    assert loaders.modules.conda_env.drift(str(shared), lock_file=str(lock))["in_sync"] is True

    # the update script (what the timer runs), rendered and run with a real salt-call
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(
        yaml.safe_dump(
            {
                "file_client": "local",
                "file_roots": {"base": [str(REPO / "salt")]},
                "pillar_roots": loaders.opts["pillar_roots"],
                "module_dirs": [str(REPO / "_modules")],
                "states_dirs": [str(REPO / "_states")],
                "utils_dirs": [str(REPO / "_utils")],
                "root_dir": str(tmp_path / "salt-root"),
                "grains": {"jupyterhub_profile": "dev"},
            }
        )
    )
    salt_call = [str(pathlib.Path(sys.executable).parent / "salt-call"), "--local", f"--config-dir={conf}"]

    def render(unattended, loaders=loaders):
        path = tmp_path / "env-update.sh"
        text = loaders.modules.file.apply_template_on_contents(
            (REPO / "salt/jupyterhub/files/conda/env-update.sh.j2").read_text(),
            template="jinja",
            context={
                "salt_call": {"cwd": str(tmp_path), "argv": salt_call, "trusted": [str(tmp_path)]},
                "trust_check": str(REPO / "_modules/trusted_path.py"),
                "unattended": unattended,
            },
            defaults=None,
            saltenv="base",
        )
        path.write_text(text)
        path.chmod(0o755)
        return path

    def run(script):
        return subprocess.run([str(script)], capture_output=True, text=True, timeout=120)

    out = run(render(False))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("matches the lock") == 2, out.stdout

    # manual change in the shared env: reported, not applied (unattended off)
    meta = shared / "conda-meta"
    (meta / "beta-1.0-h0_0.json").unlink()
    out = run(render(False))
    assert out.returncode == 0 and "differs from the lock; not applied" in out.stdout, out.stdout
    assert "beta" not in listing(str(shared))
    # unattended on: applied back to the lock
    out = run(render(True))
    assert out.returncode == 0 and "updated to the lock" in out.stdout, out.stdout + out.stderr
    assert listing(str(shared)) == listing(str(hub))

    # a pillar spec change that nobody re-recorded the lock for: the timer refuses (frozen)
    pillar["jupyterhub"]["conda"]["packages"] = ["beta", "alpha >=3"]
    (pathlib.Path(loaders.opts["pillar_roots"]["base"][0]) / "test.sls").write_text(yaml.safe_dump(pillar))
    out = run(render(True, loaders_for(pillar)))  # rendered from the new pillar, as a state apply does
    assert out.returncode == 1 and "frozen" in out.stdout and "FAILED" in out.stderr, out.stdout
    assert listing(str(hub))["alpha"] == "2.0=h0_0"
    assert os.access(lock, os.R_OK)
