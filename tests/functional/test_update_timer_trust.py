"""
The env-update scripts (what the root timer runs), rendered with the real Salt loader: they
re-check the checkout and Salt's venv with the system Python before running anything, and
refuse (reason on stderr, i.e. in the journal) when another account could have changed them.
"""

import os
import subprocess

import pytest

from tests.conftest import REPO

TEMPLATES = ["jupyterhub-env-update.sh.j2", "conda/env-update.sh.j2"]


@pytest.fixture
def fake_checkout(tmp_path):
    """A checkout dir and a stand-in salt-call that only records that it ran."""
    checkout = tmp_path / "checkout"
    checkout.mkdir(mode=0o755)
    ran = tmp_path / "salt-call-ran"
    salt_call = tmp_path / "salt-call"
    salt_call.write_text(f"#!/bin/sh\necho ran >> {ran}\necho '{{}}'\n")
    salt_call.chmod(0o755)
    return checkout, salt_call, ran


def render_and_run(make_loaders, tmp_path, template, checkout, salt_call):
    loaders = make_loaders(jupyterhub_profile="dev")
    # dev binds the hub to its address in cluster_net_cidr (default 10.0.0.0/8), which this
    # machine may not have: any address will do here
    loaders.opts["pillar"].setdefault("jupyterhub", {})["cluster_net_cidr"] = "0.0.0.0/0"
    text = loaders.modules.file.apply_template_on_contents(
        (REPO / "salt/jupyterhub/files" / template).read_text(),
        template="jinja",
        context={
            "salt_call": {"cwd": str(checkout), "argv": [str(salt_call)], "trusted": [str(checkout)]},
            "trust_check": str(REPO / "_modules/trusted_path.py"),
            "unattended": False,
        },
        defaults=None,
        saltenv="base",
    )
    script = tmp_path / "env-update.sh"
    script.write_text(text)
    script.chmod(0o700)
    return subprocess.run([str(script)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("template", TEMPLATES)
def test_update_script_runs_salt_call_from_a_root_only_checkout(make_loaders, tmp_path, fake_checkout, template):
    checkout, salt_call, ran = fake_checkout
    out = render_and_run(make_loaders, tmp_path, template, checkout, salt_call)
    assert "REFUSING" not in out.stderr, out.stderr
    if template.startswith("conda"):  # env_provider venv and no cluster env: nothing to check
        assert "no conda env to check" in out.stdout, out.stdout
    else:
        assert out.returncode == 0 and ran.read_text() == "ran\n", out.stdout + out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")
@pytest.mark.parametrize("template", TEMPLATES)
def test_update_script_refuses_a_checkout_others_can_change(make_loaders, tmp_path, fake_checkout, template):
    checkout, salt_call, ran = fake_checkout
    (checkout / "_modules").mkdir()
    planted = checkout / "_modules" / "jupyterhub.py"
    planted.write_text("")
    os.chown(planted, 65534, 0)  # changed after the state run by some other account
    out = render_and_run(make_loaders, tmp_path, template, checkout, salt_call)
    assert out.returncode == 1
    assert f"{planted} is owned by uid 65534" in out.stderr
    assert f"REFUSING to run salt-call as root from {checkout}" in out.stderr
    assert not ran.exists(), "nothing ran from the checkout"
